"""Timed AMI captures (``.ami.ts``): the one reader of the format.

A timed capture is the raw bytes an AMI client received, with a line
``#TS <unix epoch with decimals>\\r\\n`` before each message: the moment it was received.
Replaying one with those moments as the clock is what makes ``ring_s`` checkable (a plain
``.ami`` only has the seconds some events carry). ``textback replay`` reads it incrementally
(any chunking, stdin too); the fake AMI server of the tests loads a whole file. Both go
through :class:`TimedCaptureReader`, so a capture is accepted or refused the same way.

Refused, with the byte offset of the fault (nothing is guessed): a message with no ``#TS``
line before it (the file does not start with one, or one record holds two messages), a
``#TS`` line whose time is not a finite positive number or that never ends, and a time
earlier than the one before it (a capture's clock never goes backwards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from textback.pbx.stream import StreamError

TS_PREFIX = b"#TS "
# Longest "#TS ..." line worth reading: an epoch with decimals is ~20 bytes.
MAX_TS_LINE = 64
_BANNER = b"Asterisk Call Manager/"
_NEXT = b"\n" + TS_PREFIX
_END_COMMAND = b"--END COMMAND--"


@dataclass(frozen=True, slots=True)
class TimedMessage:
    """One message's bytes, the moment it was received, and the file offset of its first
    byte (after its ``#TS`` line)."""

    at: float
    raw: bytes
    offset: int = 0


def is_timed(head: bytes, name: str = "") -> bool:
    """A timed capture: it starts with ``#TS `` (or, for a file, it is named ``*.ts``)."""
    return head.startswith(TS_PREFIX) or name.endswith(".ts")


class TimedCaptureReader:
    """Incremental ``.ami.ts`` reader: ``feed(bytes)`` returns the messages completed so
    far, ``finish()`` the last one. Raises :class:`StreamError` at the first fault."""

    __slots__ = ("_buf", "_error", "_last", "offset", "strict")

    def __init__(self, *, strict: bool = True) -> None:
        # strict (replay): a record that holds two messages lost a #TS line, an error; not
        # strict (the fake AMI server): a record is served as it is, hostile bytes included
        self.strict = strict
        self._buf = bytearray()
        self._error: StreamError | None = None
        self._last = 0.0
        # file offset of the first byte in _buf
        self.offset = 0

    def feed(self, data: bytes) -> list[TimedMessage]:
        self._buf += data
        return self._messages(final=False)

    def finish(self) -> list[TimedMessage]:
        return self._messages(final=True)

    def _messages(self, final: bool) -> list[TimedMessage]:
        """Every complete message; a fault is raised once the messages before it are
        returned (the next call raises it), so nothing before it is lost."""
        if self._error is not None:
            raise self._error
        out: list[TimedMessage] = []
        try:
            while self._buf:
                msg = self._take(final)
                if msg is None:
                    break
                out.append(msg)
        except StreamError as exc:
            if not out:
                raise
            self._error = exc
        return out

    def _take(self, final: bool) -> TimedMessage | None:
        buf = self._buf
        if not buf:
            return None
        at_pos = self.offset
        if not buf.startswith(TS_PREFIX[: len(buf)]):
            raise StreamError(at_pos, "expected a '#TS <epoch>' line before the message "
                                      "(a timed capture has one before every message)")
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > MAX_TS_LINE or final:
                raise StreamError(at_pos, "malformed #TS line: it does not end")
            return None
        at = self._time(bytes(buf[len(TS_PREFIX):nl]), at_pos)
        nxt = buf.find(_NEXT, nl)
        if nxt < 0 and not final:
            return None
        end = len(buf) if nxt < 0 else nxt + 1
        raw = bytes(buf[nl + 1:end])
        if self.strict:
            self._check_one_message(raw, at_pos + nl + 1)
        del buf[:end]
        self.offset += end
        self._last = at
        return TimedMessage(at, raw, at_pos + nl + 1)

    def _time(self, text: bytes, offset: int) -> float:
        try:
            at = float(text.strip())
        except ValueError:
            at = math.nan
        if not math.isfinite(at) or at <= 0:
            shown = text.strip()[:40].decode("ascii", "replace")
            raise StreamError(offset, f"malformed #TS line: {shown!r} is not a unix time")
        if at < self._last:
            raise StreamError(offset, f"#TS {at:.6f} is earlier than the #TS before it "
                                      f"({self._last:.6f}): the times are out of order")
        return at

    @staticmethod
    def _check_one_message(raw: bytes, offset: int) -> None:
        """A record is one message: a second one in it had its #TS line lost."""
        if raw.startswith(_BANNER):
            cut = raw.find(b"\n") + 1
        elif _END_COMMAND in raw:
            return  # legacy command output may hold blank lines
        else:
            cut = raw.find(b"\r\n\r\n")
            cut = cut + 4 if cut >= 0 else raw.find(b"\n\n") + 2 if b"\n\n" in raw else -1
        if cut <= 0:
            return
        rest = raw[cut:]
        stripped = rest.lstrip(b"\r\n")
        if stripped:
            raise StreamError(offset + cut + len(rest) - len(stripped),
                              "missing #TS line: a message with no '#TS <epoch>' line "
                              "before it")


def load_ts_capture(path: Path, *, strict: bool = True) -> list[TimedMessage]:
    """A whole ``.ami.ts`` file (tests, bench, the fake AMI server). ``strict`` False: each
    record is one message whatever it holds (a test's hostile header values may hold a
    blank line; the fake server must replay them as they are)."""
    reader = TimedCaptureReader(strict=strict)
    try:
        return reader.feed(path.read_bytes()) + reader.finish()
    except StreamError as exc:
        raise StreamError(exc.offset, f"{path}: {exc.message}") from None
