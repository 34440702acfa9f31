"""A fake FreeSWITCH Event Socket server on loopback that serves real captured events.

For tests, demos and benchmarks: it speaks the inbound ESL dialogue exactly as the shared
captures show it (auth/request, ``+OK accepted`` / ``-ERR invalid`` then
text/disconnect-notice, ``+OK event listener enabled plain``, api/response with a
Content-Length and no trailing newline, bgapi ``+OK Job-UUID: ...`` then BACKGROUND_JOB),
and replays the event frames of a capture byte for byte. Per connection it follows a plan:
send the next N frames, then drop the link, go silent (half-open: socket open, nothing
read or answered), or hold. Frames can be skipped while the client is away, like events
a real PBX emits while nobody listens; ``show channels``/``show calls`` answer from the
channels the served-or-skipped frames left up, so resync sees what the PBX would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from textback.pbx.freeswitch.parser import CT_JSON, CT_PLAIN, decode_event, iter_frames

DISCONNECT_NOTICE = (b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
                     b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n")


@dataclass(slots=True)
class Plan:
    """What one connection gets: ``count`` frames (None = all the rest), then ``after``;
    ``skip`` frames are dropped (the PBX moved on) before the next connection starts."""

    count: int | None = None
    after: Literal["drop", "silent", "hold"] = "hold"
    skip: int = 0


def capture_event_frames(data: bytes) -> list[bytes]:
    """The raw bytes of every event frame of a capture, exactly as FreeSWITCH sent them."""
    out: list[bytes] = []
    frames = iter_frames(data)
    for i, fr in enumerate(frames):
        if fr.content_type in (CT_PLAIN, CT_JSON):
            end = frames[i + 1].offset if i + 1 < len(frames) else len(data)
            out.append(data[fr.offset:end])
    return out


@dataclass(frozen=True)
class Delayed:
    """An ``api_handler`` result answered ``after_s`` late (a chat api waiting on a far end
    that answers slowly). FreeSWITCH runs an inbound connection's commands one after the
    other, so nothing after it on the connection is answered before it."""

    after_s: float
    text: str


# an ``api_handler`` result: the command is read and never answered (a stalled switch);
# nothing after it on the connection is answered either
NO_REPLY = Delayed(float("inf"), "")


@dataclass
class FakeEslServer:
    frames: list[bytes]
    password: str = "ClueCon"
    plans: list[Plan] = field(default_factory=lambda: [Plan()])
    api_handler: Callable[[str], str | Delayed | None] | None = None
    pace_s: float = 0.0
    host: str = "127.0.0.1"
    port: int = 0
    commands: list[str] = field(default_factory=list)
    connections: int = 0
    cursor: int = 0
    channels: dict[str, dict[str, str]] = field(default_factory=dict)
    bridges: dict[str, str] = field(default_factory=dict)
    _server: asyncio.base_events.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def __aenter__(self) -> FakeEslServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def done(self) -> bool:
        return self.cursor >= len(self.frames)

    # -- PBX state model (for show channels / show calls) ---------------------------------
    def _apply(self, raw: bytes) -> None:
        frames = iter_frames(raw)
        ev = decode_event(frames[0]) if frames else None
        if ev is None:
            return
        uid = ev.get("Unique-ID") or ""
        if ev.name == "CHANNEL_CREATE" and uid:
            self.channels[uid] = {
                "uuid": uid,
                "direction": ev.get("Call-Direction") or "",
                "created_epoch": str(int(ev.get("Event-Date-Timestamp") or "0") // 1_000_000),
                "name": ev.get("Channel-Name") or "",
                "cid_name": ev.get("Caller-Caller-ID-Name") or "",
                "cid_num": ev.get("Caller-Caller-ID-Number") or "",
                "dest": ev.get("Caller-Destination-Number") or "",
                "context": ev.get("Caller-Context") or "",
                "callstate": ev.get("Channel-Call-State") or "",
                "call_uuid": ev.get("Channel-Call-UUID") or "",
            }
        elif ev.name == "CHANNEL_ANSWER" and uid in self.channels:
            self.channels[uid]["callstate"] = "ACTIVE"
        elif ev.name == "CHANNEL_BRIDGE" and uid:
            self.bridges[uid] = ev.get("Other-Leg-Unique-ID") or ""
        elif ev.name == "CHANNEL_UNBRIDGE":
            self.bridges.pop(uid, None)
        elif ev.name in ("CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"):
            self.channels.pop(uid, None)
            self.bridges.pop(uid, None)

    def show(self, what: str) -> str:
        if what == "channels":
            rows = list(self.channels.values())
        else:
            rows = [dict(self.channels[a], b_uuid=b,
                         b_name=self.channels.get(b, {}).get("name", ""))
                    for a, b in self.bridges.items() if a in self.channels]
        return json.dumps({"row_count": len(rows), "rows": rows} if rows else {"row_count": 0})

    # -- protocol ------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        plan = self.plans[min(self.connections, len(self.plans) - 1)]
        self.connections += 1
        silent = asyncio.Event()
        blocked = False  # an api answered NO_REPLY: nothing after it is answered either
        pump: asyncio.Task[None] | None = None
        try:
            writer.write(b"Content-Type: auth/request\n\n")
            await writer.drain()
            while True:
                cmd = await self._read_command(reader)
                if cmd is None:
                    return
                if silent.is_set():  # half-open: read and answer nothing until the peer leaves
                    while await reader.read(4096):
                        pass
                    return
                self.commands.append(cmd.split("\n", 1)[0] if not cmd.startswith("auth ")
                                     else "auth ***")
                head = cmd.split("\n", 1)[0]
                if blocked:
                    continue
                if head.startswith("auth "):
                    if head[5:] != self.password:
                        writer.write(b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n"
                                     + DISCONNECT_NOTICE)
                        await writer.drain()
                        return
                    self._reply(writer, "+OK accepted")
                elif head.startswith("event "):
                    fmt = head.split()[1]
                    self._reply(writer, f"+OK event listener enabled {fmt}")
                    pump = asyncio.create_task(self._pump(writer, plan, silent))
                elif head.startswith("api "):
                    blocked = not await self._api(writer, head[4:])
                elif head.startswith("bgapi "):
                    job = ""
                    for line in cmd.split("\n")[1:]:
                        if line.lower().startswith("job-uuid: "):
                            job = line[10:]
                    job = job or str(uuid.uuid4())
                    self._reply(writer, f"+OK Job-UUID: {job}")
                    answer = self._api_result(head[6:])
                    result = (answer.text if isinstance(answer, Delayed) else answer).encode()
                    body = (f"Event-Name: BACKGROUND_JOB\nJob-UUID: {job}\n"
                            f"Job-Command: {head[6:].split()[0]}\n"
                            f"Content-Length: {len(result)}\n\n").encode() + result
                    writer.write(b"Content-Length: %d\nContent-Type: text/event-plain\n\n"
                                 % len(body) + body)
                elif head == "exit":
                    self._reply(writer, "+OK bye")
                    writer.write(DISCONNECT_NOTICE)
                    await writer.drain()
                    return
                else:
                    self._reply(writer, "-ERR command not found")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump
            writer.close()

    async def _pump(self, writer: asyncio.StreamWriter, plan: Plan, silent: asyncio.Event) -> None:
        sent = 0
        while not self.done and (plan.count is None or sent < plan.count):
            raw = self.frames[self.cursor]
            self.cursor += 1
            self._apply(raw)
            writer.write(raw)
            sent += 1
            await writer.drain()
            await asyncio.sleep(self.pace_s)
        if plan.after == "hold":
            return
        for _ in range(plan.skip):
            if self.done:
                break
            self._apply(self.frames[self.cursor])
            self.cursor += 1
        if plan.after == "drop":
            writer.close()
        else:
            silent.set()

    @staticmethod
    async def _read_command(reader: asyncio.StreamReader) -> str | None:
        try:
            raw = await reader.readuntil(b"\n\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        cmd = raw.decode("utf-8", "replace").strip("\n")
        for line in cmd.split("\n"):
            if line.lower().startswith("content-length: ") and line[16:].isdigit():
                await reader.readexactly(int(line[16:]))
        return cmd

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, text: str) -> None:
        writer.write(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())

    def _api_result(self, cmd: str) -> str | Delayed:
        if self.api_handler is not None:
            res = self.api_handler(cmd)
            if res is not None:
                return res
        if cmd == "show channels as json":
            return self.show("channels")
        if cmd == "show calls as json":
            return self.show("calls")
        if cmd == "status":
            return "UP 0 years, 0 days, 0 hours, 1 minute\nFreeSWITCH (Version 1.10.12) is ready\n"
        return f"-ERR {cmd.split()[0]} Command not found!\n"

    async def _api(self, writer: asyncio.StreamWriter, cmd: str) -> bool:
        """Answer ``api <cmd>`` (late, for a Delayed result); False: never (NO_REPLY)."""
        reply = self._api_result(cmd)
        if isinstance(reply, Delayed):
            if reply.after_s == float("inf"):
                return False
            await asyncio.sleep(reply.after_s)
            reply = reply.text
        body = reply.encode()
        writer.write(b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body)
        return True
