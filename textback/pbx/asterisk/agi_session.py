"""Sans-IO FastAGI session: the ``agi_*`` environment block, then ``200 result=…`` replies.

Why sans-IO: the same state machine is driven by the asyncio server and, in tests, straight
by the bytes Asterisk really sent (../shared/traces/asterisk-22/*.fastagi), in any chunking.

What Asterisk sends on a FastAGI connection (res_agi.c, and the shared captures):

* ``agi_name: value\\n`` lines (``agi_accountcode: `` may be empty), ended by an empty line;
* after each command we send, one reply line ``<code> result=<r> [(<data>)] [extra]``;
  ``520-…`` starts a multi-line usage reply ended by ``520 …``;
* ``HANGUP`` on a line of its own when the channel hangs up while the AGI runs (AGISIGHUP);
  the session carries on (a dead channel still answers GET VARIABLE).

Anything else is garbage and raises :class:`AgiProtocolError`; so does a line longer than
``max_line`` bytes (a 1 MB line is refused as soon as the limit is passed, never buffered).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from textback.errors import TextbackError

MAX_LINE = 8192
MAX_ENV_LINES = 256

_ENV_LINE = re.compile(r"^(agi_[A-Za-z0-9_]+):(?: (.*)|)$")
_REPLY_LINE = re.compile(r"^(\d{3})([ -])(.*)$")
_RESULT = re.compile(r"^result=(\S*)\s*(.*)$")


class AgiProtocolError(TextbackError):
    """The peer sent something that is not FastAGI; the message says what and where."""


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """The environment Asterisk sent, with the bits textback reads made easy to reach."""

    env: Mapping[str, str]

    def get(self, name: str) -> str | None:
        """``agi_<name>`` (or the full name), None when absent."""
        key = name if name.startswith("agi_") else f"agi_{name}"
        return self.env.get(key)

    @property
    def network_script(self) -> str:
        return self.env.get("agi_network_script", "")

    @property
    def path(self) -> str:
        """The script part of ``agi://host:port/<path>?<query>``, without slashes."""
        return self.network_script.split("?", 1)[0].strip("/")

    @property
    def query(self) -> dict[str, str]:
        """The URL query string (last value wins), percent-decoded."""
        _, _, qs = self.network_script.partition("?")
        return dict(parse_qsl(qs, keep_blank_values=True))

    @property
    def args(self) -> list[str]:
        """``agi_arg_1`` … ``agi_arg_N`` in order (stops at the first gap)."""
        out: list[str] = []
        n = 1
        while (value := self.env.get(f"agi_arg_{n}")) is not None:
            out.append(value)
            n += 1
        return out


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One reply to a command: ``200 result=1 (value)`` → code 200, result "1", data "value"."""

    code: int
    result: str | None
    data: str | None
    extra: str
    line: str
    usage: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.code == 200

    def variable(self) -> str | None:
        """The value a GET VARIABLE / GET FULL VARIABLE reply carries; None when unset."""
        if self.code != 200 or self.result != "1":
            return None
        return self.data if self.data is not None else ""


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """Asterisk's ``HANGUP`` line: the channel hung up while the AGI was running."""


Event = AgiRequest | AgiReply | HangupNotice


def parse_reply(line: str) -> AgiReply:
    """One reply line → :class:`AgiReply`; raises AgiProtocolError when it is not one."""
    m = _REPLY_LINE.match(line)
    if m is None:
        raise AgiProtocolError(f"not an AGI reply: {line[:60]!r}")
    code, rest = int(m.group(1)), m.group(3)
    result: str | None = None
    data: str | None = None
    extra = rest
    r = _RESULT.match(rest)
    if r is not None:
        result, tail = r.group(1), r.group(2)
        extra = tail
        if tail.startswith("(") and ")" in tail:
            end = tail.rindex(")")  # values may hold parentheses: "(John (Office))"
            data, extra = tail[1:end], tail[end + 1:].strip()
    return AgiReply(code=code, result=result, data=data, extra=extra, line=line)


class AgiSession:
    """FastAGI state machine: ``environment`` → ``idle`` ⇄ ``waiting`` → ``closed``.

    Feed received bytes with :meth:`receive_data` (it returns the complete events), ask for the
    bytes of a command with :meth:`send_command` (only when idle: AGI is strictly one command,
    one reply), tell it about EOF with :meth:`receive_eof`.
    """

    def __init__(self, max_line: int = MAX_LINE, max_env_lines: int = MAX_ENV_LINES) -> None:
        self.max_line = max_line
        self.max_env_lines = max_env_lines
        self.state = "environment"
        self.request: AgiRequest | None = None
        self.bytes_received = 0
        self._buffer = bytearray()
        self._env: dict[str, str] = {}
        self._env_lines = 0
        self._usage: list[str] = []

    def send_command(self, command: str) -> bytes:
        """The bytes for ``command``; refuses CR/LF/NUL (they would smuggle a second one)."""
        if self.state != "idle":
            raise AgiProtocolError(f"cannot send a command in state {self.state}")
        if any(c in command for c in "\r\n\0"):
            raise ValueError("AGI command must be one line")
        self.state = "waiting"
        return command.encode("utf-8") + b"\n"

    def receive_eof(self) -> None:
        """The peer closed. Raises AgiProtocolError if it left something half-said."""
        state, self.state = self.state, "closed"
        if state == "environment":
            raise AgiProtocolError(
                f"connection closed inside the AGI environment after {self.bytes_received} bytes"
            )
        if state == "waiting":
            raise AgiProtocolError("connection closed while a command waited for its reply")
        if self._buffer:
            raise AgiProtocolError(f"connection closed after a partial line "
                                   f"({len(self._buffer)} bytes without a newline)")

    def receive_data(self, data: bytes) -> list[Event]:
        """Append ``data``; return every event it completes. Raises AgiProtocolError."""
        if self.state == "closed":
            raise AgiProtocolError("data after the session was closed")
        self.bytes_received += len(data)
        self._buffer += data
        events: list[Event] = []
        while True:
            nl = self._buffer.find(b"\n")
            if nl < 0:
                if len(self._buffer) > self.max_line:
                    self.state = "closed"
                    raise AgiProtocolError(
                        f"line longer than {self.max_line} bytes at byte "
                        f"{self.bytes_received - len(self._buffer)}"
                    )
                return events
            if nl > self.max_line:
                self.state = "closed"
                raise AgiProtocolError(f"line longer than {self.max_line} bytes")
            raw = bytes(self._buffer[:nl])
            del self._buffer[: nl + 1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> Event | None:
        if self.state == "environment":
            return self._env_line(line)
        if line == "HANGUP":
            return HangupNotice()
        if self._usage:
            self._usage.append(line)
            if line.startswith("520 "):
                return self._finish_usage()
            if len(self._usage) > self.max_env_lines:
                self.state = "closed"
                raise AgiProtocolError("endless 520 usage reply")
            return None
        if self.state != "waiting":
            self.state = "closed"
            raise AgiProtocolError(f"unexpected line with no command outstanding: {line[:60]!r}")
        if line.startswith("520-"):
            self._usage.append(line)
            return None
        try:
            reply = parse_reply(line)
        except AgiProtocolError:
            self.state = "closed"
            raise
        self.state = "idle"
        return reply

    def _finish_usage(self) -> AgiReply:
        lines, self._usage = self._usage, []
        self.state = "idle"
        last = parse_reply(lines[-1])
        return AgiReply(code=520, result=None, data=None, extra=last.extra, line=lines[-1],
                        usage=tuple(lines))

    def _env_line(self, line: str) -> AgiRequest | None:
        if line == "":
            if not self._env:
                self.state = "closed"
                raise AgiProtocolError("empty AGI environment (blank first line)")
            self.state = "idle"
            self.request = AgiRequest(env=dict(self._env))
            return self.request
        self._env_lines += 1
        if self._env_lines > self.max_env_lines:
            self.state = "closed"
            raise AgiProtocolError(f"AGI environment longer than {self.max_env_lines} lines")
        m = _ENV_LINE.match(line)
        if m is None:
            self.state = "closed"
            raise AgiProtocolError(
                f"line {self._env_lines} of the AGI environment is not 'agi_name: value': "
                f"{line[:60]!r}"
            )
        self._env[m.group(1)] = m.group(2) or ""
        return None
