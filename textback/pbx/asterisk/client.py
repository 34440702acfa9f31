"""Live AMI client: login, events, actions, reconnect, half-open detection, resync.

Why not panoramisk's ``Manager``: measured on the shared captures (bench/ami_ingest.py),
its reader decodes each socket read with ``errors='ignore'`` (a UTF-8 character split
across two reads silently disappears: a caller's name, a text body), it pings without
ever declaring a silent link dead, and it re-sends queued actions after a reconnect
(a MessageSend could go out twice). Our own transport is a thin asyncio loop around the
sans-IO ``AmiParser``/``CallTracker`` pair, which is also faster than panoramisk's parser.

Behaviour:
* login asks for ``call,agent,user``: the classes the tracker and the inbound-SMS
  ``UserEvent`` need, all granted by the shipped least-privilege manager user
  (dialplan/asterisk/manager_textback.conf, ``read = call,cdr,agent,user``). Not
  ``dialplan``: that user does not get it, and the tracker decides from class ``call``
  alone (VarSet/Newexten are used when an admin grants them anyway); not ``cdr``: the
  live tracker has a clock and Cdr dispositions are never the verdict;
  a refused login is fatal (``AmiLoginError``: one line naming host and user, never the
  secret), a refused or lost connection is retried with exponential backoff, capped at
  20 s (x0.8-1.2 jitter: at most 24 s between tries, so a PBX back after an outage is
  found within the 30 s recovery target; a 30 s cap measured 33 s);
* every received byte proves the link alive; after ``ping_timeout / 5`` of silence a
  ``Ping`` is sent, and a link silent for ``ping_timeout`` is closed and reconnected;
* after each login, ``CoreShowChannels`` resynchronises the tracker: calls it knew whose
  channels vanished meanwhile are finalised once, calls it did not know are picked up,
  and calls already decided are never reported again (the tracker keeps their Linkedids);
* across a restart of the process: a ``CallStarted`` event carries the facts of each
  inbound call as the tracker classifies it (and as its evidence changes), for the daemon
  to keep; ``seed`` puts them back before ``run`` connects, so the first resync attaches
  the calls in progress to calls whose direction, caller and DID are known;
* calls that ended while textback was away altogether come back from Asterisk's own CEL
  records (``recover``, textback.pbx.asterisk.cel).

``AmiClient`` is Asterisk's :class:`~textback.pbx.link.PbxLink`: everything it learns leaves
through ``next_event()`` (calls started and ended, texts received through the dialplan's
``UserEvent``), and texts, callbacks and recovery are its methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from textback import logfmt
from textback.pbx.asterisk import cel
from textback.pbx.asterisk.errors import AmiError, AmiLoginError, AmiNotConnected
from textback.pbx.asterisk.inbound_message import text_from_user_event
from textback.pbx.asterisk.message_send import AmiMessageSender
from textback.pbx.asterisk.parser import AmiMessage
from textback.pbx.asterisk.stream import (
    AmiOriginateResponse,
    AmiReply,
    AmiUserEvent,
    AsteriskStream,
)
from textback.pbx.call_start import CallStart
from textback.pbx.due_timer import DueTimer
from textback.pbx.link import (
    LinkEvents,
    OriginateRequest,
    OriginateResult,
    run_emitting_calls,
)
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig
from textback.sender import Sender

log = logging.getLogger("textback.ami")

DEFAULT_EVENTS = "call,agent,user"
READ_SIZE = 64 * 1024


__all__ = ["AmiClient", "AmiError", "AmiLoginError", "AmiNotConnected", "listen"]


def _printable(s: str, limit: int = 200) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in s)[:limit]


def encode_action(action: dict[str, str]) -> bytes:
    """An AMI action on the wire. CR/LF inside a value would inject headers: refused."""
    lines = []
    for key, value in action.items():
        value = str(value)
        if any(c in key for c in "\r\n: ") or "\r" in value or "\n" in value:
            raise ValueError(f"AMI action header {key!r}: CR/LF or ':' not allowed")
        lines.append(f"{key}: {value}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8")


# Asterisk's OriginateResponse Reason (enum ast_control_frame_type of the outgoing leg)
ORIGINATE_REASONS = {"0": "failed", "1": "hangup", "3": "ring-timeout", "4": "answered",
                     "5": "busy", "8": "congestion"}


class AmiClient(LinkEvents):
    """One PBX connection kept alive: Asterisk's ``PbxLink`` (textback.pbx.link).

    ``run()`` returns after ``stop()``; it raises ``AmiLoginError`` on refused credentials.
    ``next_event()`` returns what the PBX reported, in order. ``send_action(dict)`` sends an
    action (MessageSend, Originate, ...) and returns the response headers once it arrives.
    ``message_context``: the only dialplan context whose ``TextbackMessage`` UserEvents are
    texts from customers (others are refused and counted). ``cel_source``: the CEL file
    ``recover`` reads (None: no recovery).
    """

    kind = "asterisk"
    dial_context = "from-internal"

    def __init__(self, host: str, port: int, user: str, secret: str,
                 config: TrackerConfig | None = None, *,
                 ping_timeout: float = 10.0, events: str = DEFAULT_EVENTS,
                 backoff_initial: float = 0.5, backoff_max: float = 20.0,
                 connect_timeout: float = 10.0,
                 clock: Callable[[], float] = time.time,
                 message_context: str | None = None,
                 cel_source: Path | None = None) -> None:
        self.host, self.port, self.user = host, port, user
        self._secret = secret
        self.tracker_config = config or TrackerConfig()
        self.message_context = message_context
        self.cel_source = cel_source
        self.refused: dict[str, int] = {"user_event": 0}
        LinkEvents.__init__(self)
        self._originates: dict[str, asyncio.Future[OriginateResult]] = {}
        self.ping_timeout = ping_timeout
        self.events = events
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.stream = AsteriskStream(self.tracker_config)
        # finality is event-driven: armed for the tracker's next due time after every
        # input, it decides a call when its settle window closes (no fixed-step tick)
        self.due_timer = DueTimer(self.stream.next_due, self.clock, self._on_due)
        self.sessions = 0
        self.reconnects = 0
        self.logged_in = asyncio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[AmiMessage]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._resync_id: str | None = None
        self._resync_done: asyncio.Future[None] | None = None
        self._last_rx = 0.0

    def __repr__(self) -> str:  # never show the secret
        return f"<AmiClient {self.user}@{self.host}:{self.port}>"

    @property
    def connected(self) -> asyncio.Event:
        """Set while logged in (the PbxLink name of ``logged_in``)."""
        return self.logged_in

    # ------------------------------------------------------------------ public
    def stop(self) -> None:
        self._stopping = True
        self.due_timer.cancel()
        self._stop_event.set()
        if self._writer is not None:
            self._writer.close()

    async def run(self) -> None:
        attempt = 0
        while not self._stopping:
            established = False
            try:
                established = await self._session()
            except AmiLoginError:
                raise
            except (OSError, AmiError, TimeoutError, asyncio.IncompleteReadError) as exc:
                if self._stopping:
                    break
                logfmt.log(log, logging.WARNING, "ami_link_down", host=self.host, port=self.port,
                           error=_printable(str(exc)))
            if self._stopping:
                break
            attempt = 0 if established else attempt + 1
            delay = min(self.backoff_max, self.backoff_initial * (2 ** attempt))
            delay *= random.uniform(0.8, 1.2)
            self.reconnects += 1
            logfmt.log(log, logging.INFO, "ami_reconnecting", host=self.host, port=self.port,
                       retry_s=round(delay, 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), delay)
        self.due_timer.cancel()
        self.stream.advance(self.clock())
        self._drain()

    def seed(self, starts: list[CallStart]) -> int:
        """Inbound calls in progress when the process last stopped (call before ``run``)."""
        return self.stream.tracker.seed(starts)

    def message_sender(self, destination: str, from_uri: str,
                       profile: str | None = None) -> Sender:
        """Texts out as SIP MESSAGE through Asterisk (AMI ``MessageSend``)."""
        return AmiMessageSender(self.send_action, destination=destination, from_uri=from_uri,
                                is_connected=self.logged_in.is_set)

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """AMI ``Originate`` with ``Async: true``: the action returns at once and the result
        arrives later as ``OriginateResponse`` with our ActionID (``Reason: 4``: staff
        answered). Raises ``AmiError`` when the action could not be sent."""
        action_id = f"textback-callback-{request.tag}"
        fut: asyncio.Future[OriginateResult] = asyncio.get_running_loop().create_future()
        self._originates[action_id] = fut
        try:
            reply = await self.send_action({
                "Action": "Originate", "ActionID": action_id, "Channel": request.ring,
                "Context": request.context, "Exten": request.number, "Priority": "1",
                "CallerID": f"\"{request.caller_name}\" <{request.did}>",
                "Timeout": str(request.timeout_s * 1000), "Async": "true",
                "Variable": f"TEXTBACK_CALLBACK={request.tag}",
            })
            if reply.get("Response", "").lower() != "success":
                return OriginateResult(False, f"originate refused: "
                                              f"{_printable(reply.get('Message', ''))}",
                                       action_id)
            try:
                return await asyncio.wait_for(asyncio.shield(fut), request.timeout_s + 15)
            except TimeoutError:
                return OriginateResult(False, "no OriginateResponse", action_id)
        finally:
            self._originates.pop(action_id, None)

    async def recover(self, since: float, skip: frozenset[str]) -> list[CallOutcome]:
        """Calls that ended after ``since`` by Asterisk's CEL records (cel_sqlite3_custom's
        SQLite file, or cel_custom's CSV), decided like live ones; raises ``cel.CelError``
        when the source cannot be read."""
        source = self.cel_source
        if source is None:
            return []
        if source.suffix.lower() == ".csv":
            records = await asyncio.to_thread(cel.read_cel_csv, source, since=since)
        else:
            records = await asyncio.to_thread(cel.read_cel_sqlite, source, since=since)
        return cel.decide_from_cel(records, self.tracker_config, skip=skip)

    async def send_action(self, action: dict[str, str], timeout: float = 10.0) -> dict[str, str]:
        """Send ``action``; return its response headers (``Response``, ``Message``, ...)."""
        try:
            await asyncio.wait_for(self.logged_in.wait(), timeout)
        except TimeoutError:
            raise AmiNotConnected(f"AMI {self.host}:{self.port} not connected") from None
        msg = await self._request(action, timeout)
        return msg.headers()

    # ---------------------------------------------------------------- internal
    async def _request(self, action: dict[str, str], timeout: float) -> AmiMessage:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AmiNotConnected("AMI not connected")
        action = dict(action)
        action_id = action.setdefault("ActionID", f"textback-{next(self._ids)}")
        fut: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        try:
            writer.write(encode_action(action))
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise AmiError(f"no response to {action.get('Action')} in {timeout:g} s") from None
        finally:
            self._pending.pop(action_id, None)

    def _on_due(self) -> None:
        """The due timer fired: the calls whose settle window closed are decided now."""
        self.stream.advance(self.clock())
        self._drain()

    def _drain(self) -> None:
        """Take every event the stream has and route it: the daemon's go to ``next_event``,
        the replies to our own actions to their waiters. Then arm the due timer for the
        next call to become final (the input may have ended one or started its window)."""
        stream = self.stream
        while (event := stream.next_event()) is not None:
            if isinstance(event, AmiReply):
                self._on_response(event.message)
            elif isinstance(event, AmiUserEvent):
                self._on_user_event(event.message)
            elif isinstance(event, AmiOriginateResponse):
                self._on_originate_response(event.message)
            else:
                self._report(event)
        if not self._stopping:
            self.due_timer.rearm()

    def _on_response(self, msg: AmiMessage) -> None:
        if msg.kind == "event":  # CoreShowChannel / CoreShowChannelsComplete
            if msg.get("ActionID") != self._resync_id:
                return
            if msg.name == "CoreShowChannel":
                self.stream.tracker.resync_channel(msg)
            elif msg.name == "CoreShowChannelsComplete":
                self.stream.resync_end()  # its CallEnded events follow in this drain
                if self._resync_done is not None and not self._resync_done.done():
                    self._resync_done.set_result(None)
            return
        action_id = msg.get("ActionID")
        fut = self._pending.get(action_id) if action_id else None
        if fut is None and action_id is None and len(self._pending) == 1:
            fut = next(iter(self._pending.values()))
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _on_user_event(self, msg: AmiMessage) -> None:
        if msg.get("UserEvent") != "TextbackMessage":
            return
        text = text_from_user_event(msg, self.message_context)
        if text is None:
            self.refused["user_event"] += 1
            logfmt.log(log, logging.WARNING, "user_event_refused", name="TextbackMessage",
                       context=_printable(msg.get("Context") or "", 80),
                       expected=self.message_context, refused=self.refused["user_event"])
            return
        self._report(text)

    def _on_originate_response(self, msg: AmiMessage) -> None:
        fut = self._originates.get(msg.get("ActionID") or "")
        if fut is None or fut.done():
            return
        reason = msg.get("Reason") or ""
        answered = (msg.get("Response") or "").lower() == "success" and reason == "4"
        fut.set_result(OriginateResult(
            answered, f"reason {reason} ({ORIGINATE_REASONS.get(reason, 'unknown')})",
            msg.get("ActionID")))

    async def _session(self) -> bool:
        """One connection: login, resync, events until the link ends. True if logged in."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout)
        self._writer = writer
        self.stream.new_connection()
        self._last_rx = time.monotonic()
        banner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pump = asyncio.create_task(self._pump(reader, banner))
        keep = asyncio.create_task(self._keepalive(writer))
        established = False
        try:
            await asyncio.wait_for(asyncio.shield(banner), self.connect_timeout)
            try:
                resp = await self._request({"Action": "Login", "Username": self.user,
                                            "Secret": self._secret, "Events": self.events},
                                           self.connect_timeout)
            except AmiError as exc:
                raise AmiError(f"login to {self.host}:{self.port} as user {self.user!r}: "
                               f"{exc}") from None
            if resp.name != "Success":
                why = _printable(resp.get("Message") or resp.name)
                raise AmiLoginError(
                    f"AMI login to {self.host}:{self.port} as user {self.user!r} failed: "
                    f"{why} (check the secret and the [{_printable(self.user)}] section "
                    "of manager.conf)")
            established = True
            self.sessions += 1
            logfmt.log(log, logging.INFO, "ami_logged_in", host=self.host, port=self.port,
                       user=self.user)
            await self._resync()
            self.logged_in.set()
            done, _ = await asyncio.wait({pump, keep}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                failure = task.exception()
                if failure is not None:
                    raise failure
            return established
        finally:
            self.logged_in.clear()
            self._writer = None
            for task in (pump, keep):
                task.cancel()
            for task in (pump, keep):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(AmiError("AMI connection lost"))
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _resync(self) -> None:
        self._resync_id = f"textback-resync-{next(self._ids)}"
        self._resync_done = asyncio.get_running_loop().create_future()
        self.stream.tracker.resync_begin()
        resp = await self._request({"Action": "CoreShowChannels",
                                    "ActionID": self._resync_id}, self.connect_timeout)
        if resp.name != "Success":
            logfmt.log(log, logging.WARNING, "ami_resync_refused",
                       error=_printable(resp.get("Message") or resp.name),
                       fix="grant 'reporting' write permission",
                       effect="calls in progress are not resynchronised")
            self.stream.resync_end()
            self._drain()
            return
        await asyncio.wait_for(self._resync_done, self.ping_timeout)

    async def _pump(self, reader: asyncio.StreamReader, banner: asyncio.Future[None]) -> None:
        stream = self.stream
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                raise AmiError("connection closed by the PBX")
            self._last_rx = time.monotonic()
            stream.receive_data(data, self.clock())
            if not banner.done() and (stream.parser.banner is not None
                                      or stream.stats.messages):
                banner.set_result(None)
            self._drain()

    async def _keepalive(self, writer: asyncio.StreamWriter) -> None:
        """Ping after silence; a link silent for ping_timeout is dead. Settle timers are not
        its business: ``due_timer`` wakes at each call's due time (see ``_drain``)."""
        step = max(0.02, min(self.ping_timeout / 5, 1.0))
        ping_after = self.ping_timeout / 5
        last_ping = 0.0
        while True:
            await asyncio.sleep(step)
            silent = time.monotonic() - self._last_rx
            if silent >= self.ping_timeout:
                raise AmiError(f"no data for {silent:.1f} s (half-open link?): reconnecting")
            if silent >= ping_after and time.monotonic() - last_ping >= ping_after:
                last_ping = time.monotonic()
                writer.write(encode_action({"Action": "Ping",
                                            "ActionID": f"textback-ping-{next(self._ids)}"}))


async def listen(host: str, port: int, user: str, secret: str, config: TrackerConfig,
                 emit: Callable[[CallOutcome], None], *, ping_timeout: float = 10.0) -> int:
    """``textback listen --pbx asterisk``: run until interrupted; 2 on refused login."""
    client = AmiClient(host, port, user, secret, config, ping_timeout=ping_timeout)
    try:
        await run_emitting_calls(client, emit)
    except AmiLoginError as exc:
        print(f"textback listen: {exc}", file=sys.stderr)
        return 2
    return 0
