"""asyncio FastAGI server: ``AGI(agi://127.0.0.1:4573/missed?…)`` → one CallOutcome per call.

Why not panoramisk.fast_agi (already a dependency, for AMI): its ``Application.handler``
reads the environment with ``while b'\\n\\n' not in buffer: buffer += await reader.read(100)``,
which spins forever on a client that disconnects early (``read`` keeps returning b''), has no
size limit (a 1 MB line is buffered whole), no timeouts, routes on the exact
``agi_network_script`` (so ``missed?status=BUSY`` matches no route) and registers plain
functions with ``asyncio.coroutine``, gone in Python 3.11. The issue asks for a clean close
on garbage and early disconnects, so the protocol lives in :mod:`textback.pbx.asterisk.agi_session`
(sans-IO, tested on the real captures) and this module is thin glue.

Per connection: read the environment (bounded in time and size), refuse it unless its URL
carries the secret token (:mod:`textback.pbx.asterisk.agi_access`: counted as
``refused-token``, logged without the token), ask with GET VARIABLE for
what the dialplan did not pass (DIALSTATUS, CALLERID(num-pres), CHANNEL(linkedid), and
QUEUESTATUS/VMSTATUS when no Dial ran), log a VERBOSE line on the Asterisk console, close the
connection so the dialplan goes on at once, and only then await ``on_outcome(outcome)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

from textback import logfmt
from textback.pbx.asterisk import agi_verdict as v
from textback.pbx.asterisk.agi_access import token_matches
from textback.pbx.asterisk.agi_session import AgiProtocolError, AgiReply, AgiRequest, AgiSession
from textback.pbx.outcome import CallOutcome

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4573
DEFAULT_PATHS = ("missed",)

OutcomeCallback = Callable[[CallOutcome], Awaitable[None]]

VERBOSE_COMMAND = 'VERBOSE "textback: missed-call hook received" 1'


class _Closed(Exception):
    """The connection ended (EOF, timeout or protocol error); the reason is in ``args``."""


class FastAgiServer:
    """Serves FastAGI on ``host:port`` (loopback by default) and reports each call.

    ``on_outcome`` is awaited once per completed request, after the AGI connection is closed;
    its exceptions are logged and counted, never propagated. ``stats`` counts sessions,
    outcomes and each kind of failure (``garbage``, ``early-eof``, ``timeout``, ``oversize``,
    ``unknown-path``, ``callback-error``) and each request refused for a missing or wrong
    ``token`` (``refused-token``). ``token`` is required: there is no open mode.
    """

    def __init__(
        self,
        on_outcome: OutcomeCallback,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        token: str,
        paths: Iterable[str] = DEFAULT_PATHS,
        default_region: str | None = None,
        env_timeout: float = 5.0,
        reply_timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
        max_line: int = 8192,
    ) -> None:
        if not token:
            raise ValueError("FastAgiServer needs a non-empty token (the agi:// URL's "
                             "?token=…); without one any local user could report calls")
        self.on_outcome = on_outcome
        self._token = token
        self.host = host
        self.port = port
        self.paths = frozenset(p.strip("/") for p in paths)
        self.default_region = default_region
        self.env_timeout = env_timeout
        self.reply_timeout = reply_timeout
        self.clock = clock
        self.max_line = max_line
        self.stats: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind and listen. ``port=0`` picks a free port (see :attr:`bound_port`)."""
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, limit=self.max_line * 2
        )

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("FastAgiServer is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening and wait for the sessions in progress (each bounded in time)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> FastAgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection -----------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.stats["sessions"] += 1
        outcome: CallOutcome | None = None
        try:
            outcome = await self._session(reader, writer)
        except _Closed as exc:
            self.stats[str(exc.args[0])] += 1
            logfmt.log(log, logging.WARNING, "fastagi_bad_session", error=exc.args[1])
        except Exception:  # a bug here must not take the server down
            self.stats["internal-error"] += 1
            logfmt.log(log, logging.ERROR, "fastagi_session_failed", exc_info=True)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)
        if outcome is not None:
            self.stats["outcomes"] += 1
            try:
                await self.on_outcome(outcome)
            except Exception:
                self.stats["callback-error"] += 1
                logfmt.log(log, logging.ERROR, "fastagi_callback_failed", call=outcome.call,
                           exc_info=True)

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> CallOutcome | None:
        session = AgiSession(max_line=self.max_line)
        request = await self._read_environment(session, reader)
        if not token_matches(request, self._token):
            peer = writer.get_extra_info("peername")
            raise _Closed("refused-token", f"refused a request without the right token "
                          f"(peer {peer!r}); the dialplan's agi:// URL must carry "
                          "?token=<the [agi] token>")
        if request.path not in self.paths:
            raise _Closed("unknown-path", f"unknown AGI path {request.path[:40]!r}")
        ended_at = self.clock()
        variables: dict[str, str | None] = {}
        status = v.dialstatus_of(request, variables)
        wanted: list[str] = []
        if status is None:
            wanted.append(v.VAR_DIALSTATUS)
        if v.Q_PRES not in request.query:
            wanted.append(v.VAR_NUMPRES)
        if v.Q_LINKEDID not in request.query:
            wanted.append(v.VAR_LINKEDID)
        try:
            for name in wanted:
                reply = await self._command(session, reader, writer, f"GET VARIABLE {name}")
                variables[name] = reply.variable()
            if v.dialstatus_of(request, variables) is None:
                for name in (v.VAR_QUEUESTATUS, v.VAR_VMSTATUS):
                    if name == v.VAR_QUEUESTATUS and v.Q_QUEUE in request.query:
                        continue
                    if name == v.VAR_VMSTATUS and v.Q_VM in request.query:
                        continue
                    reply = await self._command(session, reader, writer, f"GET VARIABLE {name}")
                    variables[name] = reply.variable()
            await self._command(session, reader, writer, VERBOSE_COMMAND)
        except _Closed as exc:
            # The environment already said what happened when the dialplan passed the
            # status; a peer that leaves before answering our extra questions loses nothing.
            if v.dialstatus_of(request, variables) is None:
                raise
            self.stats[f"{exc.args[0]}-after-environment"] += 1
        return v.build_outcome(request, variables, ended_at=ended_at,
                               default_region=self.default_region)

    async def _read_environment(self, session: AgiSession,
                                reader: asyncio.StreamReader) -> AgiRequest:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.env_timeout
        while True:
            for event in await self._receive(session, reader, deadline - loop.time()):
                if isinstance(event, AgiRequest):
                    return event

    async def _command(self, session: AgiSession, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, command: str) -> AgiReply:
        writer.write(session.send_command(command))
        try:
            await asyncio.wait_for(writer.drain(), self.reply_timeout)
        except (OSError, TimeoutError) as exc:
            raise _Closed("early-eof", f"cannot send {command.split()[0]}: {exc}") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reply_timeout
        while True:
            for event in await self._receive(session, reader, deadline - loop.time()):
                if isinstance(event, AgiReply):
                    return event
                # HangupNotice: the channel is gone; the reply still comes.

    async def _receive(self, session: AgiSession, reader: asyncio.StreamReader,
                       timeout: float) -> list[object]:
        if timeout <= 0:
            raise _Closed("timeout", f"no complete AGI data within the time limit "
                                     f"(state {session.state})")
        try:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
        except TimeoutError:
            raise _Closed("timeout", f"AGI peer silent (state {session.state})") from None
        except OSError as exc:
            raise _Closed("early-eof", f"AGI connection lost: {exc}") from None
        try:
            if not chunk:
                session.receive_eof()
                raise _Closed("early-eof", "AGI peer closed the connection")
            return list(session.receive_data(chunk))
        except AgiProtocolError as exc:
            kind = "oversize" if "longer than" in str(exc) else (
                "early-eof" if "closed" in str(exc) else "garbage")
            raise _Closed(kind, f"FastAGI protocol error: {exc}") from None
