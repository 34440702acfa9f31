"""A replaying AMI server on loopback: a real capture served at its recorded pace.

For tests and ``make demo``: no Asterisk needed, yet every event byte is one Asterisk 22
really sent (../shared/traces/asterisk-22/*.ami.ts, each message stamped with the time it
arrived; read by textback.pbx.asterisk.timed_capture, the reader ``textback replay``
uses too). The server answers what textback asks of a PBX, in Asterisk's own words (taken
from the captures login-failure.ami and messagesend.ami):

* ``Login`` → ``Success`` / ``Authentication accepted``, or ``Error`` /
  ``Authentication failed`` and the socket closed (as Asterisk does);
* ``Ping`` → ``Pong``; ``Events`` → ``Events: On``; ``Logoff`` → ``Goodbye``;
* ``CoreShowChannels`` → the channels alive at this point of the capture (followed from
  its Newchannel/Hangup/Linkedid events, delivered or not), then
  ``CoreShowChannelsComplete``;
* ``MessageSend`` → ``Message successfully sent`` for ``pjsip:<endpoint>/…`` when the
  endpoint is known, ``Message failed to send.`` when not, ``Message technology not
  found.`` without a technology prefix; every accepted text is kept in ``sent``.

Faults for reliability tests: ``drop_at`` (event index: close the socket abruptly there),
``silent_at`` (event index: keep the socket open but send and answer nothing: a half-open
link), ``hold_at`` (event index: the timeline stops there until ``release()``, so a test can
change something between two calls of a capture, e.g. reload the daemon's config),
``lost_on_fault`` (that many events "happen" while the client is away and are never
delivered to it). The capture's timeline pauses while no client is logged in, so a test
is deterministic whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from textback.pbx.asterisk.timed_capture import TimedMessage, load_ts_capture

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
KNOWN_ENDPOINTS = ("trunk", "101", "102", "103", "104")


def _headers(raw: bytes) -> dict[str, str]:
    h: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").replace("\r\n", "\n").split("\n"):
        key, sep, value = line.partition(": ")
        if sep and key not in h:
            h[key] = value
    return h


@dataclass
class _Channel:
    headers: dict[str, str]
    bridge: str = ""
    app: str = ""
    app_data: str = ""
    state: str = ""


@dataclass
class FakeAmi:
    """The server. ``events`` are the capture's messages after its own banner and login."""

    events: list[TimedMessage]
    user: str = "textback"
    secret: str = "textback-lab-secret"
    speed: float = 1.0
    drop_at: int | None = None
    silent_at: int | None = None
    lost_on_fault: int = 0
    hold_at: int | None = None
    sent: list[dict[str, str]] = field(default_factory=list)
    connections: int = 0
    logins: int = 0
    cursor: int = 0
    _channels: dict[str, _Channel] = field(default_factory=dict)
    _server: asyncio.base_events.Server | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)  # set when the hold is reached

    @classmethod
    def from_capture(cls, path: Path, **kwargs: object) -> FakeAmi:
        msgs = load_ts_capture(path, strict=False)
        body = [m for m in msgs if not m.raw.startswith((b"Asterisk Call Manager/",
                                                         b"Response: "))]
        return cls(events=body, **kwargs)  # type: ignore[arg-type]

    @property
    def finished(self) -> asyncio.Event:
        """Set once every event of the capture has happened."""
        return self._done

    def release(self) -> None:
        """Let the timeline go on past ``hold_at`` (its pace measured from now)."""
        self._released.set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port)
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    # -------------------------------------------------------------- the PBX side
    def _happen(self, raw: bytes) -> None:
        """Apply one event to the live-channel table (what CoreShowChannels reports)."""
        h = _headers(raw)
        ev, uid = h.get("Event"), h.get("Uniqueid", "")
        if ev == "Newchannel":
            self._channels[uid] = _Channel(h, state=h.get("ChannelStateDesc", ""))
            return
        chan = self._channels.get(uid)
        if chan is None:
            return
        if ev == "Hangup":
            del self._channels[uid]
            return
        for key in ("Linkedid", "Context", "Exten", "CallerIDNum", "CallerIDName", "Channel"):
            if key in h:
                chan.headers[key] = h[key]
        if "ChannelStateDesc" in h:
            chan.state = h["ChannelStateDesc"]
        if ev == "BridgeEnter":
            chan.bridge = h.get("BridgeUniqueid", "")
        elif ev == "BridgeLeave":
            chan.bridge = ""
        elif ev == "Newexten":
            chan.app, chan.app_data = h.get("Application", ""), h.get("AppData", "")

    def _skip_lost(self) -> None:
        for _ in range(self.lost_on_fault):
            if self.cursor >= len(self.events):
                break
            self._happen(self.events[self.cursor].raw)
            self.cursor += 1
        if self.cursor >= len(self.events):
            self._done.set()

    def _core_show_channels(self, action_id: str) -> bytes:
        aid = f"ActionID: {action_id}\r\n" if action_id else ""
        out = [f"Response: Success\r\n{aid}EventList: start\r\n"
               "Message: Channels will follow\r\n\r\n".encode()]
        for uid, ch in self._channels.items():
            h = ch.headers
            lines = [
                "Event: CoreShowChannel", f"{aid.strip()}" if aid else "",
                f"Channel: {h.get('Channel', '')}", f"ChannelStateDesc: {ch.state}",
                f"CallerIDNum: {h.get('CallerIDNum', '')}",
                f"CallerIDName: {h.get('CallerIDName', '')}",
                f"Context: {h.get('Context', '')}", f"Exten: {h.get('Exten', '')}",
                f"Uniqueid: {uid}", f"Linkedid: {h.get('Linkedid', uid)}",
                f"Application: {ch.app}", f"ApplicationData: {ch.app_data}",
                "Duration: 00:00:01", f"BridgeId: {ch.bridge}",
            ]
            out.append(("\r\n".join(x for x in lines if x) + "\r\n\r\n").encode())
        out.append((f"Event: CoreShowChannelsComplete\r\n{aid}EventList: Complete\r\n"
                    f"ListItems: {len(self._channels)}\r\n\r\n").encode())
        return b"".join(out)

    def _message_send(self, h: dict[str, str], aid: str) -> bytes:
        dest = h.get("Destination", "")
        tech, sep, rest = dest.partition(":")
        if not sep or tech not in ("pjsip", "sip", "iax2", "xmpp") or rest.startswith("+"):
            msg, ok = "Message technology not found.", False
        elif rest.partition("/")[0].partition("@")[0] in KNOWN_ENDPOINTS:
            msg, ok = "Message successfully sent", True
        else:
            msg, ok = "Message failed to send.", False
        if ok:
            self.sent.append(h)
        status = "Success" if ok else "Error"
        return f"Response: {status}\r\n{aid}Message: {msg}\r\n\r\n".encode()

    # --------------------------------------------------------------- one client
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        state = {"logged_in": False, "silent": False}
        streamer: asyncio.Task[None] | None = None
        try:
            writer.write(BANNER)
            await writer.drain()
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                if state["silent"]:
                    continue
                h = _headers(raw)
                action = h.get("Action", "").lower()
                action_id = h.get("ActionID", "")
                aid = f"ActionID: {action_id}\r\n" if action_id else ""
                if action == "login":
                    if h.get("Username") == self.user and h.get("Secret") == self.secret:
                        self.logins += 1
                        state["logged_in"] = True
                        writer.write(f"Response: Success\r\n{aid}"
                                     "Message: Authentication accepted\r\n\r\n".encode())
                        streamer = asyncio.create_task(self._stream(writer, state))
                    else:
                        await asyncio.sleep(0.05)
                        writer.write(f"Response: Error\r\n{aid}"
                                     "Message: Authentication failed\r\n\r\n".encode())
                        await writer.drain()
                        break
                elif not state["logged_in"]:
                    writer.write(f"Response: Error\r\n{aid}"
                                 "Message: Permission denied\r\n\r\n".encode())
                elif action == "ping":
                    writer.write(f"Response: Success\r\n{aid}Ping: Pong\r\n"
                                 f"Timestamp: {time.time():.6f}\r\n\r\n".encode())
                elif action == "events":
                    writer.write(f"Response: Success\r\n{aid}Events: On\r\n\r\n".encode())
                elif action == "coreshowchannels":
                    writer.write(self._core_show_channels(action_id))
                elif action == "messagesend":
                    writer.write(self._message_send(h, aid))
                elif action == "logoff":
                    writer.write(f"Response: Goodbye\r\n{aid}"
                                 "Message: Thanks for all the fish.\r\n\r\n".encode())
                    await writer.drain()
                    break
                else:
                    writer.write(f"Response: Error\r\n{aid}"
                                 "Message: Invalid/unknown command\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            state["logged_in"] = False
            if streamer is not None:
                streamer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await streamer
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _stream(self, writer: asyncio.StreamWriter, state: dict[str, bool]) -> None:
        """Send the capture's events at their recorded pace (divided by ``speed``)."""
        if self.cursor >= len(self.events):
            self._done.set()
            return
        base_at = self.events[self.cursor].at
        t0 = time.monotonic()
        while self.cursor < len(self.events) and state["logged_in"]:
            i = self.cursor
            if self.drop_at is not None and i >= self.drop_at:
                self.drop_at = None
                self._skip_lost()
                transport = writer.transport
                transport.abort()
                return
            if self.silent_at is not None and i >= self.silent_at:
                self.silent_at = None
                state["silent"] = True
                self._skip_lost()
                return
            msg = self.events[i]
            if self.hold_at is not None and i >= self.hold_at:
                self.held.set()
                await self._released.wait()
                self.hold_at = None
                base_at, t0 = msg.at, time.monotonic()
            delay = (msg.at - base_at) / self.speed - (time.monotonic() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
            self._happen(msg.raw)
            self.cursor += 1
            writer.write(msg.raw)
            await writer.drain()
        if self.cursor >= len(self.events):
            self._done.set()


async def serve(capture: Path, host: str = "127.0.0.1", port: int = 5038, *,
                speed: float = 1.0, user: str = "textback",
                secret: str = "textback-lab-secret") -> FakeAmi:
    """Start a replaying AMI server for ``capture`` (a ``.ami.ts`` file); return it."""
    server = FakeAmi.from_capture(capture, speed=speed, user=user, secret=secret)
    await server.start(host, port)
    return server
