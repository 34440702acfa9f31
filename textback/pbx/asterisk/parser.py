"""Sans-IO Asterisk Manager Interface (AMI) parser: bytes in, messages out.

Why our own and not panoramisk's reader: panoramisk 1.4 decodes every socket read with
``errors='ignore'`` (a UTF-8 character split across two reads vanishes), only knows
``\\r\\n\\r\\n`` as a message end, and buffers without bound. This parser keeps raw bytes
until a message is complete, decodes each batch of complete messages once (a message
boundary is an ASCII newline, which can never sit inside a UTF-8 sequence, so decoding a
batch equals decoding each message), accepts CRLF or bare LF line ends, understands the
legacy ``Response: Follows`` command output (which may contain blank lines and ends with
``--END COMMAND--``), and bounds its buffer: an over-long message is dropped, counted, and
the parser resynchronises on the next blank line.

Messages are parsed lazily. A busy PBX sends mostly events nobody needs (``VarSet`` for
every variable, ``CEL``, device states); splitting each of their ~16 lines into a dict is
what makes a Python AMI reader slow. An ``AmiMessage`` knows its kind and name at once,
``get(key)`` finds one header in the raw text without splitting the rest, and
``headers()`` builds (and caches) the full dict only when someone wants it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

BANNER_PREFIX: Final = "Asterisk Call Manager/"
TIMESTAMP_PREFIX: Final = "#TS "
END_COMMAND: Final = "--END COMMAND--"
DEFAULT_MAX_MESSAGE: Final = 256 * 1024

_FOLLOWS_B: Final = b"Response: Follows"
_END_COMMAND_B: Final = b"--END COMMAND--"
_BANNER_B: Final = b"Asterisk Call Manager/"


class AmiMessage:
    """One AMI message: an event, a response, or the connection banner.

    ``kind`` is "event", "response" or "banner"; ``name`` is the event name, the response
    status ("Success", "Error", "Follows", ...) or the banner text. ``text`` is the decoded
    message with ``\\n`` line ends. For legacy ``Response: Follows`` command output the raw
    output is in ``output`` (and ``get("Output")``).
    """

    __slots__ = ("_headers", "kind", "name", "output", "text")

    def __init__(self, text: str, output: str | None = None) -> None:
        self.text = text
        self.output = output
        self._headers: dict[str, str] | None = None
        if text.startswith("Event: "):
            self.kind = "event"
            nl = text.find("\n")
            self.name = text[7:] if nl < 0 else text[7:nl]
        elif text.startswith("Response: "):
            self.kind = "response"
            nl = text.find("\n")
            self.name = text[10:] if nl < 0 else text[10:nl]
        elif text.startswith(BANNER_PREFIX):
            self.kind = "banner"
            self.name = text.strip()
        else:
            ev = self.get("Event")
            if ev is not None:
                self.kind, self.name = "event", ev
            else:
                self.kind, self.name = "response", self.get("Response") or ""

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> AmiMessage:
        """Build a message from a dict (tests, the fake server, resync bookkeeping)."""
        return cls("\n".join(f"{k}: {v}" for k, v in headers.items()))

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of header ``key`` (exact case), found without parsing the rest."""
        if self._headers is not None:
            value = self._headers.get(key)
            if value is None:
                return default
            nl = value.find("\n")
            return value if nl < 0 else value[:nl]
        if key == "Output" and self.output is not None:
            return self.output
        text = self.text
        needle = key + ": "
        if text.startswith(needle):
            i = len(needle)
        else:
            i = text.find("\n" + needle)
            if i < 0:
                return default
            i += len(needle) + 1
        j = text.find("\n", i)
        return text[i:] if j < 0 else text[i:j]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def headers(self) -> dict[str, str]:
        """Every header; a header repeated in the message keeps all values, joined by \\n."""
        if self._headers is None:
            h: dict[str, str] = {}
            for line in self.text.split("\n"):
                key, sep, value = line.partition(": ")
                if not sep:
                    if line.endswith(":"):
                        key, value = line[:-1], ""
                    else:
                        continue
                h[key] = h[key] + "\n" + value if key in h else value
            if self.output is not None:
                h["Output"] = self.output
            self._headers = h
        return self._headers

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers().items())

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiMessage):
            return NotImplemented
        return self.text == other.text and self.output == other.output

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"<AmiMessage {self.kind} {self.name!r}>"


def _last_boundary(buf: bytes | bytearray, start: int = 0) -> int:
    """Index just past the last blank line (``\\n\\n`` or ``\\n\\r\\n``) in buf[start:], or -1."""
    a = buf.rfind(b"\n\n", start)
    b = buf.rfind(b"\n\r\n", start)
    if a < 0 and b < 0:
        return -1
    return max(a + 2 if a >= 0 else -1, b + 3 if b >= 0 else -1)


def _block_start(chunk: bytes, index: int) -> int:
    """Byte position in ``chunk`` of its ``index``-th blank-line-separated block (the same
    split ``_parse_batch`` makes on the decoded text; only used to name a bad block)."""
    if index == 0:
        return 0
    for n, m in enumerate(_BLANK_LINE.finditer(chunk), start=1):
        if n == index:
            return m.end()
    return len(chunk)


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _first_boundary(buf: bytes | bytearray, start: int = 0) -> int:
    """Index just past the first blank line in buf[start:], or -1."""
    a = buf.find(b"\n\n", start)
    b = buf.find(b"\n\r\n", start)
    if a < 0:
        return b + 3 if b >= 0 else -1
    if b < 0 or a < b:
        return a + 2
    return b + 3


class AmiParser:
    """Incremental AMI reader. ``feed(bytes)`` returns every message completed by them.

    ``dropped`` counts what could not be a message (reason → count; bytes for
    ``oversize-bytes``); nothing is dropped silently. ``offset`` is the number of bytes
    consumed so far (for error messages naming a byte position); ``first_bad`` is the byte
    offset of the first data that was dropped (the start of its block), None while every
    byte was part of a message: ``textback replay`` refuses a file with bad data there.
    """

    __slots__ = (
        "_buf",
        "_discarding",
        "_tail",
        "banner",
        "bytes_in",
        "dropped",
        "first_bad",
        "max_message",
        "offset",
    )

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._discarding = False
        self._tail = b""
        self.max_message = max_message
        self.banner: str | None = None
        self.bytes_in = 0
        self.offset = 0
        self.dropped: dict[str, int] = {}
        self.first_bad: int | None = None

    # ------------------------------------------------------------------ public
    def feed(self, data: bytes) -> list[AmiMessage]:
        """Consume ``data`` (any chunking); return the messages it completed, in order."""
        self.bytes_in += len(data)
        if self._discarding:
            data = self._skip_garbage(data)
            if not data:
                return []
        buf = self._buf
        buf += data
        out: list[AmiMessage] = []
        if self.banner is None and self.offset == 0 and buf.startswith(_BANNER_B):
            nl = buf.find(b"\n")
            if nl < 0:
                return out
            self.banner = buf[:nl].decode("utf-8", "replace").strip()
            out.append(AmiMessage(self.banner))
            del buf[: nl + 1]
            self.offset += nl + 1
        # look for a boundary only in the bytes that can hold a new one
        search_from = max(0, len(buf) - len(data) - 2)
        end = _last_boundary(buf, search_from)
        if end < 0:
            if len(buf) > self.max_message:
                self._overflow()
            return out
        if _FOLLOWS_B in buf:
            end = self._follows_end(end)
            if end <= 0:
                if len(buf) > self.max_message:
                    self._overflow()
                return out
        chunk = bytes(buf[:end])
        del buf[:end]
        self.offset += end
        self._parse_batch(chunk, out)
        if len(buf) > self.max_message:
            self._overflow()
        return out

    def finish(self) -> list[AmiMessage]:
        """End of input: a last message without its closing blank line is truncated.

        It is counted in ``dropped["truncated"]`` (not guessed at) and the buffer is
        cleared; every complete message was already returned by ``feed``.
        """
        rest = [line for line in self._buf.decode("utf-8", "replace").splitlines()
                if line.strip() and not line.startswith(TIMESTAMP_PREFIX)]
        if rest and all(line.startswith(BANNER_PREFIX) for line in rest):
            self.banner = rest[-1].strip()  # a timed capture of the banner alone
        elif rest:
            self._bad_at(self.offset)
            self._drop("truncated")
        self.offset += len(self._buf)
        self._buf.clear()
        self._discarding = False
        return []

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the end of a message (bounded by ``max_message``)."""
        return len(self._buf)

    # ---------------------------------------------------------------- internal
    def _drop(self, why: str, n: int = 1) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + n

    def _bad_at(self, offset: int) -> None:
        if self.first_bad is None:
            self.first_bad = offset

    def _overflow(self) -> None:
        """The buffer grew past max_message with no message end: drop it, resync later."""
        n = len(self._buf)
        self._bad_at(self.offset)
        self._drop("oversize-message")
        self._drop("oversize-bytes", n)
        self._tail = bytes(self._buf[-2:])
        self.offset += n
        self._buf.clear()
        self._discarding = True

    def _skip_garbage(self, data: bytes) -> bytes:
        """While discarding: drop bytes up to and including the next blank line."""
        probe = self._tail + data
        end = _first_boundary(probe)
        if end < 0:
            self._drop("oversize-bytes", len(data))
            self.offset += len(data)
            self._tail = probe[-2:]
            return b""
        used = end - len(self._tail)
        self._drop("oversize-bytes", used)
        self.offset += used
        self._tail = b""
        self._discarding = False
        return data[used:]

    def _follows_end(self, end: int) -> int:
        """Cut ``end`` back so an unfinished ``Response: Follows`` stays buffered."""
        buf = self._buf
        pos = 0
        while True:
            f = buf.find(_FOLLOWS_B, pos, end)
            if f < 0:
                return end
            if f > 0 and buf[f - 1] != 0x0A:
                pos = f + 1
                continue
            e = buf.find(_END_COMMAND_B, f)
            if e < 0:
                return f
            after = _first_boundary(buf, e)
            if after < 0:
                return f
            pos = after
            if after > end:
                return after


    def _parse_batch(self, chunk: bytes, out: list[AmiMessage]) -> None:
        # ``feed`` has already counted the chunk in ``offset``
        base = self.offset - len(chunk)
        text = chunk.decode("utf-8", "replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        if END_COMMAND in text:
            before = sum(self.dropped.values())
            self._parse_with_follows(text, out)
            if sum(self.dropped.values()) != before:
                self._bad_at(base)
            return
        append = out.append
        for i, block in enumerate(text.split("\n\n")):
            if block.startswith(("Event: ", "Response: ")):
                append(AmiMessage(block))
            elif block:
                before = sum(self.dropped.values())
                self._odd_block(block, out)
                if self.first_bad is None and sum(self.dropped.values()) != before:
                    self._bad_at(base + _block_start(chunk, i))

    def _odd_block(self, block: str, out: list[AmiMessage]) -> None:
        """A block that does not start like a message: extra blank lines, a banner glued
        to the next message, garbage lines before the headers. Keep what is a message."""
        if TIMESTAMP_PREFIX in block:
            # a timed capture (.ami.ts, tests and check_replay --timed): "#TS <epoch>" before
            # each message is the capture's own clock, not bad data
            block = "\n".join(line for line in block.split("\n")
                              if not line.startswith(TIMESTAMP_PREFIX))
        block = block.strip("\n")
        if not block:
            return
        while block.startswith(BANNER_PREFIX):
            line, _, block = block.partition("\n")
            self.banner = line.strip()
            out.append(AmiMessage(self.banner))
            if not block:
                return
        if block.startswith(("Event: ", "Response: ")):
            out.append(AmiMessage(block))
            return
        good: list[str] = []
        for line in block.split("\n"):
            key, sep, _ = line.partition(": ")
            header = sep and key and " " not in key and key.isprintable()
            if header or (line.endswith(":") and " " not in line):
                good.append(line)
            else:
                self._drop("bad-line")
        msg = AmiMessage("\n".join(good)) if good else None
        if msg is not None and ("Event" in msg or "Response" in msg):
            out.append(msg)
        else:
            self._drop("not-a-message")

    def _parse_with_follows(self, text: str, out: list[AmiMessage]) -> None:
        """Rare path: a batch holding legacy command output (blank lines allowed inside)."""
        blocks = text.split("\n\n")
        i = 0
        while i < len(blocks):
            block = blocks[i].strip("\n")
            i += 1
            if not block:
                continue
            if not block.startswith("Response: Follows"):
                self._odd_block(block, out)
                continue
            while END_COMMAND not in block and i < len(blocks):
                block += "\n\n" + blocks[i]
                i += 1
            lines = block.split("\n")
            n = 1
            # headers (Privilege, ActionID) come first; the rest is raw command output
            while n < len(lines):
                key, sep, _ = lines[n].partition(": ")
                if not (sep and key.isalnum() and key in ("Privilege", "ActionID")):
                    break
                n += 1
            output = "\n".join(lines[n:])
            cut = output.rfind(END_COMMAND)
            if cut >= 0:
                output = output[:cut]
            out.append(AmiMessage("\n".join(lines[:n]), output=output.rstrip("\n")))
