"""Asyncio inbound Event Socket client: the live FreeSWITCH link of ``textback listen``/``run``.

Thin glue around the sans-IO pieces (``EslParser`` + ``FsCallTracker`` inside
``FreeswitchStream``). What it adds, and why:

* auth: a wrong password is answered ``-ERR invalid`` and the socket closed; retrying would
  hammer the PBX and never succeed, so it is a fatal ``EslAuthError`` naming host and port
  (never the secret);
* ``event plain`` for only the events the tracker and the conversations need;
* ``api`` (blocking on the PBX side; replies come back in command order) and ``bgapi``
  (our own Job-UUID, answered by a BACKGROUND_JOB event);
* half-open links: FreeSWITCH's HEARTBEAT is every 20 s, longer than our 15 s budget, so
  when nothing arrived for a third of ``ping_timeout`` we send ``api status``; nothing at
  all for ``ping_timeout`` = dead, reconnect;
* reconnect with exponential backoff capped at 20 s (a PBX back after an outage is found
  within the 30 s recovery target); the tracker survives reconnects, and after
  each (re)connect ``show channels`` / ``show calls`` reconcile calls in progress, so no
  call is lost (legs that ended while we were away are closed) or decided twice (decided
  calls are remembered by the tracker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textback.pbx.due_timer import DueTimer
from textback.pbx.freeswitch import cdr
from textback.pbx.freeswitch.errors import EslAuthError, EslError, EslNotConnected
from textback.pbx.freeswitch.inbound_message import inbound_from_esl
from textback.pbx.freeswitch.parser import CT_API, CT_AUTH, CT_REPLY, EslEvent, EslParser, Frame
from textback.pbx.freeswitch.stream import EslClientEvent, EslReply, FreeswitchStream
from textback.pbx.link import (
    LinkEvents,
    OriginateRequest,
    OriginateResult,
    TextReceived,
    run_emitting_calls,
)
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig
from textback.sender import Sender

__all__ = ["EslAuthError", "EslClient", "EslError", "EslNotConnected", "listen"]
from textback import logfmt

log = logging.getLogger("textback.esl")

SUBSCRIBED_EVENTS = (
    "CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_HANGUP_COMPLETE "
    "MESSAGE_WAITING HEARTBEAT MESSAGE BACKGROUND_JOB "
    "CUSTOM callcenter::info vm::maintenance SMS::DELIVERY_REPORT"
)
CLIENT_EVENTS = frozenset({"HEARTBEAT", "MESSAGE", "BACKGROUND_JOB"})


def _verb(cmd: str) -> str:
    """A command as a log or error may name it: its first words, never a chat's text or
    the password (``api chat sip|...`` → ``api chat``; ``auth <secret>`` → ``auth``)."""
    words = cmd.split("\n", 1)[0].split(" ")
    return " ".join(words[:2] if words[0] in ("api", "bgapi") else words[:1]).split("|")[0]


def _one_line(text: str) -> str:
    """A single printable line (values from the wire never reach a log raw)."""
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()[:200]


class EslClient(LinkEvents):
    """One FreeSWITCH Event Socket connection, kept alive: FreeSWITCH's ``PbxLink``.

    ``next_event()`` returns every decided call (``CallEnded``) and every text a customer
    sent through a sofia profile (``TextReceived``, from MESSAGE events; our own chat
    echoes are not texts). ``api``/``bgapi``/``sendevent`` run commands; texts go out
    through ``message_sender`` (the chat api), callbacks through ``originate`` (bgapi
    originate), and ``recover`` reads the CDR for calls that ended while we were away.
    """

    kind = "freeswitch"
    dial_context = "default"

    def __init__(self, host: str, port: int, secret: str,
                 config: TrackerConfig | None = None, *,
                 ping_timeout: float = 10.0, connect_timeout: float = 5.0,
                 backoff_min: float = 0.5, backoff_max: float = 20.0,
                 events: str = SUBSCRIBED_EVENTS,
                 tick_interval: float = 0.5,
                 clock: Callable[[], float] = time.time,
                 cdr_source: Path | None = None) -> None:
        self.host, self.port = host, port
        self._secret = secret
        self.tracker_config = config or TrackerConfig()
        self.clock = clock
        self.cdr_source = cdr_source
        self.reconnects = 0
        self.refused: dict[str, int] = {}
        LinkEvents.__init__(self)
        self.ping_timeout = ping_timeout
        self.connect_timeout = connect_timeout
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.events = events
        self.tick_interval = tick_interval
        # ``now`` for the tracker: the wall clock, the one FreeSWITCH's event epochs
        # (Event-Date-Timestamp, Caller-Channel-Created-Time) are in. The loop's monotonic
        # clock is only for our own timeouts (silence, pings).
        self.stream = FreeswitchStream(self.tracker_config, live=True)
        self.stream.extra_events = CLIENT_EVENTS
        # finality is event-driven: armed for the tracker's next due time after every
        # input, it decides a call when its settle window closes (no fixed-step tick)
        self.due_timer = DueTimer(self.stream.next_due, self.clock, self._on_due)
        self.connected = asyncio.Event()
        self.connections = 0
        self.decided: list[str] = []  # call ids emitted (tests, diagnostics)
        self._writer: asyncio.StreamWriter | None = None
        self._replies: deque[asyncio.Future[Frame]] = deque()
        self._jobs: dict[str, asyncio.Future[str]] = {}
        self._send_lock = asyncio.Lock()
        self._last_rx = 0.0
        self._stopping = False
        self.reconnects = 0  # /metrics: textback_pbx_reconnects_total
        self._auth: asyncio.Future[Frame] | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"EslClient({self.host}:{self.port})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # -- public --------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, and stay connected until ``stop()``; raises EslAuthError on a bad password."""
        delay = self.backoff_min
        while not self._stopping:
            try:
                await self._session()
                delay = self.backoff_min
            except EslAuthError:
                raise
            except (TimeoutError, OSError, EslError, asyncio.IncompleteReadError) as exc:
                if self._stopping:
                    break
                logfmt.log(log, logging.WARNING, "esl_link_down", where=self.where,
                           error=_one_line(str(exc)) or type(exc).__name__,
                           retry_s=round(delay, 1))
                self.reconnects += 1
                await asyncio.sleep(delay)
                self.reconnects += 1
                delay = min(self.backoff_max, delay * 2)
        self.due_timer.cancel()

    def stop(self) -> None:
        self._stopping = True
        self.due_timer.cancel()
        if self._writer is not None:
            self._writer.close()

    def seed(self, starts: list[Any]) -> int:
        """FreeSWITCH keeps a call's facts on its channels: the reconnect resync
        (``show channels``) finds calls in progress, so nothing needs seeding."""
        return 0

    def message_sender(self, destination: str, from_uri: str,
                       profile: str | None = None) -> Sender:
        """Texts out as SIP MESSAGE through FreeSWITCH's chat api (mod_sms)."""
        from textback.pbx.freeswitch.chat_sender import EslChatSender

        return EslChatSender(self, destination=destination, from_uri=from_uri)

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """``bgapi originate {vars}<ring> <number> XML <context> <name> <did> <timeout>``:
        the BACKGROUND_JOB body is ``+OK <uuid>`` when the staff leg answered, ``-ERR
        <CAUSE>`` otherwise. Raises ``EslError`` when the command could not be run."""
        name = request.caller_name.replace(" ", "_")
        variables = ",".join([
            f"origination_caller_id_number={request.did}",
            f"origination_caller_id_name={name}",
            f"effective_caller_id_number={request.did}",
            f"originate_timeout={request.timeout_s}",
            f"textback_callback={request.tag}",
        ])
        cmd = (f"originate {{{variables}}}{request.ring} {request.number} XML "
               f"{request.context} {name} {request.did} {request.timeout_s}")
        body = (await self.bgapi(cmd, float(request.timeout_s + 15))).strip()
        if body.startswith("+OK"):
            return OriginateResult(True, "staff answered", body[3:].strip()[:64])
        return OriginateResult(False, body.removeprefix("-ERR").strip()[:100] or "no answer")

    async def recover(self, since: float, skip: frozenset[str]) -> list[CallOutcome]:
        """Calls that ended after ``since`` by FreeSWITCH's CDR (mod_cdr_sqlite's file or
        mod_cdr_csv's), decided from the bridge and originate fields; raises
        ``cdr.CdrError`` when the source cannot be read."""
        source = self.cdr_source
        if source is None:
            return []
        if source.suffix.lower() == ".csv":
            rows = await asyncio.to_thread(cdr.read_cdr_csv, source, since=since)
        else:
            rows = await asyncio.to_thread(cdr.read_cdr_sqlite, source, since=since)
        return cdr.decide_from_cdr(rows, self.tracker_config, skip=skip)

    async def api(self, cmd: str, timeout: float = 10.0) -> str:
        """Run ``api <cmd>``; return the response body (``-ERR ...`` included, as FS sent it)."""
        frame = await self._command(f"api {cmd}", timeout)
        return frame.text

    async def bgapi(self, cmd: str, timeout: float = 30.0) -> str:
        """Run ``bgapi <cmd>`` with our own Job-UUID; return the BACKGROUND_JOB body."""
        job = str(uuid.uuid4())
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._jobs[job] = fut
        try:
            reply = await self._command(f"bgapi {cmd}\nJob-UUID: {job}", timeout)
            if not reply.reply_text.startswith("+OK"):
                raise EslError(f"bgapi refused: {_one_line(reply.reply_text)}")
            try:
                return await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise EslError(f"no BACKGROUND_JOB for bgapi {cmd.split()[0]} in "
                               f"{timeout:g} s") from None
        finally:
            self._jobs.pop(job, None)

    async def sendevent(self, headers: dict[str, str], body: str = "",
                        timeout: float = 10.0) -> str:
        """``sendevent`` (e.g. CUSTOM SMS::SEND_MESSAGE); returns the Reply-Text."""
        name = headers.get("Event-Name", "CUSTOM")
        lines = [f"sendevent {name}"]
        for k, v in headers.items():
            if "\n" in k or "\n" in v or "\r" in v:
                raise ValueError(f"header {k!r} holds a line break")
            lines.append(f"{k}: {v}")
        raw = body.encode("utf-8")
        if raw:
            lines.append(f"content-length: {len(raw)}")
        frame = await self._command("\n".join(lines), timeout, body=raw)
        return frame.reply_text

    # -- one connection ------------------------------------------------------------------
    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout)
        self._writer = writer
        self.stream.parser = EslParser(self.stream.stats)  # nothing carries over a new link
        self._auth = loop.create_future()
        self._last_rx = loop.time()
        read_task = asyncio.create_task(self._read_loop(reader))
        try:
            first = await asyncio.wait_for(asyncio.shield(self._auth), self.connect_timeout)
            if first.content_type != CT_AUTH:
                raise EslError(f"expected auth/request, got {first.content_type!r}")
            reply = await self._command(f"auth {self._secret}", self.connect_timeout)
            if not reply.reply_text.startswith("+OK"):
                raise EslAuthError(
                    f"FreeSWITCH event socket at {self.where} refused the password "
                    f"({_one_line(reply.reply_text) or 'no reason given'}); check the "
                    "password in event_socket.conf.xml and the secret given to textback")
            reply = await self._command(f"event plain {self.events}", self.connect_timeout)
            if not reply.reply_text.startswith("+OK"):
                raise EslError(f"event subscription refused: {_one_line(reply.reply_text)}")
            self.connections += 1
            self.connected.set()
            await self._resync()
            watch = asyncio.create_task(self._watchdog())
            try:
                await asyncio.wait({read_task, watch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watch
            if read_task.done() and read_task.exception() is not None:
                raise read_task.exception()  # type: ignore[misc]
            if not self._stopping:
                raise EslError("connection lost" if read_task.done()
                               else f"no data for {self.ping_timeout:.0f} s (half-open link)")
        finally:
            self.connected.clear()
            read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read_task
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._writer = None
            self._fail_pending(EslError("connection closed"))

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await reader.read(65536)
            if not data:
                if self._auth is not None and not self._auth.done():
                    self._auth.set_exception(EslError("closed before auth/request"))
                # a command waiting for its reply (the resync's api calls) fails now, not
                # at its timeout: the reconnect (and the recovery at its login) comes at once
                self._fail_pending(EslError("connection closed"))
                return
            self._last_rx = loop.time()
            self.stream.receive_data(data, self.clock())
            self._drain()

    async def _watchdog(self) -> None:
        """Ping when quiet, give up when silent for ``ping_timeout``. Settle timers are not
        its business: ``due_timer`` wakes at each call's due time (see ``_drain``)."""
        loop = asyncio.get_running_loop()
        ping: asyncio.Task[str] | None = None
        step = min(self.tick_interval, self.ping_timeout / 3)
        while True:
            await asyncio.sleep(step)
            now = loop.time()
            idle = now - self._last_rx
            if idle >= self.ping_timeout:
                if ping is not None:
                    ping.cancel()
                return
            if idle >= self.ping_timeout / 3 and (ping is None or ping.done()):
                ping = asyncio.create_task(self._ping())

    async def _ping(self) -> str:
        with contextlib.suppress(EslError, TimeoutError):
            return await self.api("status", timeout=self.ping_timeout)
        return ""

    async def _resync(self) -> None:
        """Reconcile calls in progress with what FreeSWITCH has now."""
        known = self.stream.tracker.known_legs()
        try:
            chans = _rows(await self.api("show channels as json"))
            calls = _rows(await self.api("show calls as json"))
        except EslError as exc:
            logfmt.log(log, logging.WARNING, "esl_resync_failed", where=self.where,
                       error=_one_line(str(exc)))
            return
        self.stream.resync(chans, calls, self.clock(), known_before=known)
        self._drain()

    # -- frames --------------------------------------------------------------------------
    async def _command(self, cmd: str, timeout: float, body: bytes = b"") -> Frame:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise EslNotConnected("not connected")
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        async with self._send_lock:
            if writer is not self._writer or writer.is_closing():  # dropped while we waited
                raise EslNotConnected("not connected")
            self._replies.append(fut)
            writer.write(cmd.encode("utf-8") + b"\n\n" + body)
            try:
                await writer.drain()
            except (ConnectionError, OSError) as exc:  # some of it may have gone
                raise EslError(f"link failed while writing {_verb(cmd)}: {exc}") from exc
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            # written and not answered: FreeSWITCH may have run it (a chat may have gone),
            # so this is the link's failure after the point of no return, as a lost link is
            raise EslError(f"no reply to {_verb(cmd)} in {timeout:g} s") from None

    def _frame(self, frame: Frame) -> None:
        ctype = frame.content_type
        if ctype == CT_AUTH:
            if self._auth is not None and not self._auth.done():
                self._auth.set_result(frame)
        elif ctype in (CT_REPLY, CT_API) and self._replies:
            # FreeSWITCH answers a connection's commands in the order they came: this is
            # the oldest one's reply, even when its waiter gave up (a late reply must not
            # be taken for the next command's: a chat would read another command's answer)
            fut = self._replies.popleft()
            if not fut.done():
                fut.set_result(frame)
        elif ctype == "text/disconnect-notice":
            logfmt.log(log, logging.INFO, "esl_disconnect_notice", where=self.where)
        elif ctype == "text/rude-rejection":
            logfmt.log(log, logging.ERROR, "esl_rejected", where=self.where, why="ACL",
                       text=_one_line(frame.text))

    def _drain(self) -> None:
        """Route what the stream has: replies to their waiters, our own events (jobs,
        texts) here, calls to ``next_event``."""
        while (item := self.stream.next_event()) is not None:
            if isinstance(item, EslReply):
                self._frame(item.frame)
            elif isinstance(item, EslClientEvent):
                self._event(item.event)
            else:
                self.decided.append(item.outcome.call)
                self._report(item)
        if not self._stopping:
            self.due_timer.rearm()

    def _on_due(self) -> None:
        """The due timer fired: the calls whose settle window closed are decided now."""
        self.stream.advance(self.clock())
        self._drain()

    def _event(self, event: EslEvent) -> None:
        if event.name == "BACKGROUND_JOB":
            job = event.get("Job-UUID") or ""
            fut = self._jobs.get(job)
            if fut is not None and not fut.done():
                fut.set_result(event.body)
            return
        if event.name == "MESSAGE":
            text = inbound_from_esl(event)
            if text is not None:  # else our own chat echo, or not a text
                self._report(TextReceived(text.number, text.did, text.body))

    def _fail_pending(self, exc: Exception) -> None:
        while self._replies:
            fut = self._replies.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self._auth is not None and not self._auth.done():
            self._auth.set_exception(exc)
        if self._auth is not None and self._auth.done() and not self._auth.cancelled():
            self._auth.exception()  # mark retrieved


def _rows(text: str) -> list[dict[str, Any]]:
    """Rows of ``show ... as json`` (``{"row_count": 0}`` when none)."""
    text = text.strip()
    if not text.startswith("{"):
        raise EslError(f"unexpected show output: {_one_line(text)[:80]}")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EslError(f"show output is not JSON: {exc}") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


async def listen(host: str, port: int, secret: str, config: TrackerConfig,
                 emit: Callable[[CallOutcome], None], *, ping_timeout: float = 10.0) -> int:
    """``textback listen --pbx freeswitch``: print outcomes until interrupted."""
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format="textback listen: %(message)s")
    client = EslClient(host, port, secret, config, ping_timeout=ping_timeout)
    try:
        await run_emitting_calls(client, emit)
    except EslAuthError as exc:
        print(f"textback listen: {exc}", file=sys.stderr)
        return 2
    return 0
