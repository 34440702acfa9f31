"""Sans-IO FreeSWITCH Event Socket (ESL) parser: bytes in, frames and events out.

Why our own: the python-esl binding does not build with SWIG 4 and is synchronous, and a
parser that decodes each socket read on its own loses a UTF-8 character split across two
reads. Here bytes stay in a buffer until a whole frame is there; only then is anything
decoded.

Wire format (see ../shared/traces/freeswitch-1.10/MANIFEST.md): a frame is a block of
``Name: value`` header lines ended by a blank line, then ``Content-Length`` bytes of body.
Content types: ``auth/request``, ``command/reply``, ``api/response``, ``text/event-plain``
(the body is itself a header block with URL-encoded values; an event with its own body -
MESSAGE, SMS::* - carries an inner ``Content-Length``, a blank line and the raw body with
no trailing newline), ``text/event-json``, ``text/disconnect-notice``, ``log/data``.

Bad input never raises: a cut or garbled frame is counted in ``StreamStats.dropped`` and
the parser resynchronises on the next frame start. For ``text/event-plain`` the body's own
structure (headers up to a blank line, plus the inner Content-Length) is authoritative, so
a wrong outer Content-Length is repaired rather than allowed to swallow the next frames.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from textback.pbx.stream import StreamStats

MAX_HEADER_BYTES = 64 * 1024  # an outer header block is ~60 bytes; anything this big is junk
MAX_BODY_BYTES = 16 * 1024 * 1024

CT_AUTH = "auth/request"
CT_REPLY = "command/reply"
CT_API = "api/response"
CT_PLAIN = "text/event-plain"
CT_JSON = "text/event-json"
CT_DISCONNECT = "text/disconnect-notice"
CT_LOG = "log/data"
KNOWN_TYPES = frozenset({CT_AUTH, CT_REPLY, CT_API, CT_PLAIN, CT_JSON, CT_DISCONNECT, CT_LOG,
                         "text/event-xml", "text/rude-rejection"})

_FRAME_START = re.compile(rb"Content-(?:Length: \d+\n|Type: [a-z]+/[a-z-]+\n)")
_NAME_KEY = b"Event-Name: "
_JSON_DECODER = json.JSONDecoder()


@dataclass(slots=True)
class EslEvent:
    """One FreeSWITCH event, plain or json, with one accessor for both.

    Plain events keep their values URL-encoded until asked for (``get`` decodes on access):
    most of an event's ~200 headers are never read, and decoding them all would cost more
    than everything else the tracker does.
    """

    name: str
    headers: dict[str, str]
    body: str = ""
    encoded: bool = False

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.headers.get(key)
        if value is None:
            return default
        if self.encoded and "%" in value:
            return unquote(value)
        return value

    @property
    def subclass(self) -> str:
        return self.get("Event-Subclass") or ""

    def as_dict(self) -> dict[str, str]:
        """All headers decoded (for logs, tests and the JSON form)."""
        out = {k: self.get(k) or "" for k in self.headers}
        if self.body:
            out["_body"] = self.body
        return out


@dataclass(slots=True)
class Frame:
    """One ESL frame: outer headers, raw body, and where it started in the stream."""

    content_type: str
    headers: dict[str, str]
    body: bytes = b""
    offset: int = 0
    event_name: str | None = field(default=None)

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def is_event(self) -> bool:
        return self.content_type in (CT_PLAIN, CT_JSON)


def _parse_header_block(block: bytes) -> dict[str, str] | None:
    """Outer headers; None when a line is not ``Name: value`` (garbage, not a frame)."""
    headers: dict[str, str] = {}
    for line in block.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        name, sep, value = line.partition(b": ")
        if not sep or not name or b" " in name:
            return None
        headers[name.decode("ascii", "replace")] = value.decode("utf-8", "replace")
    return headers


def decode_plain(body: bytes) -> EslEvent | None:
    """A ``text/event-plain`` body as an event; None when it is not one."""
    head, sep, rest = body.partition(b"\n\n")
    text = head.decode("utf-8", "replace")
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        k, s, v = line.partition(": ")
        if s:
            headers[k] = v
    name = headers.get("Event-Name")
    if not name:
        return None
    payload = rest.decode("utf-8", "replace") if sep and rest else ""
    return EslEvent(name=unquote(name), headers=headers, body=payload, encoded=True)


def decode_json(body: bytes) -> EslEvent | None:
    """A ``text/event-json`` body as an event; None when it is not one (bad JSON included)."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("Event-Name"), str):
        return None
    headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
    payload = headers.pop("_body", "")
    return EslEvent(name=headers["Event-Name"], headers=headers, body=payload, encoded=False)


def decode_event(frame: Frame) -> EslEvent | None:
    """The event a frame carries (plain or json, chosen by its Content-Type), else None."""
    if frame.content_type == CT_PLAIN:
        return decode_plain(frame.body)
    if frame.content_type == CT_JSON:
        return decode_json(frame.body)
    return None


def peek_event_name(frame: Frame) -> str | None:
    """The Event-Name without decoding the whole event (cheap filter for uninteresting events)."""
    body = frame.body
    if frame.content_type == CT_PLAIN:
        i = body.find(_NAME_KEY)
        if i < 0:
            return None
        j = body.find(b"\n", i)
        return body[i + len(_NAME_KEY): j if j >= 0 else len(body)].decode("ascii", "replace")
    if frame.content_type == CT_JSON:
        i = body.find(b'"Event-Name":"')
        if i < 0:
            return None
        j = body.find(b'"', i + 14)
        return body[i + 14: j].decode("utf-8", "replace") if j > 0 else None
    return None


class EslParser:
    """Receive buffer + frame reader. ``feed`` bytes, then drain ``next_frame`` until None.

    Never raises on bad input: what it cannot use is counted in ``stats.dropped`` and
    skipped. ``frames`` tells the caller whether anything ESL-like was seen at all.
    """

    def __init__(self, stats: StreamStats | None = None) -> None:
        self.stats = stats if stats is not None else StreamStats()
        self._buf = bytearray()
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self.frames = 0
        # byte offset of the first data that was not a frame (skipped or cut), None while
        # every byte was part of a frame: ``textback replay`` refuses a file with bad data
        self.first_bad: int | None = None

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet consumed."""
        return self._base + self._pos

    @property
    def pending(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        self._buf += data
        self.stats.bytes_in += len(data)

    def _resync(self, start: int, why: str) -> None:
        """Drop bytes from ``_pos`` up to the next plausible frame start after ``start``."""
        self.stats.drop(why)
        if self.first_bad is None:
            self.first_bad = self._base + self._pos
        m = _FRAME_START.search(self._buf, start)
        if m is None:
            # keep a short tail: a frame start may be split across reads; but always move
            # past ``start`` (the bytes before it are known garbage), or a short garbage
            # block at the end of the buffer would be parsed again forever
            keep = max(start, len(self._buf) - 24)
            self._pos = keep
            return
        self._pos = m.start()

    def next_frame(self, final: bool = False) -> Frame | None:
        """The next complete frame, or None when more bytes are needed.

        ``final``: no more bytes will come, so a JSON frame whose Content-Length runs past
        the end is recovered from the object's own end instead of waited for.
        """
        buf = self._buf
        while self._pos < len(buf):
            pos = self._pos
            # tolerate stray blank lines between frames
            while pos < len(buf) and buf[pos] in (10, 13):
                pos += 1
            self._pos = pos
            if pos >= len(buf):
                return None
            he = buf.find(b"\n\n", pos)
            if he < 0:
                if len(buf) - pos > MAX_HEADER_BYTES:
                    self._resync(pos + 1, "garbage")
                    continue
                return None
            if he - pos > MAX_HEADER_BYTES:
                self._resync(pos + 1, "garbage")
                continue
            headers = _parse_header_block(bytes(buf[pos:he]))
            ctype = headers.get("Content-Type") if headers else None
            if headers is None or ctype is None:
                self._resync(pos + 1, "garbage")
                continue
            body_start = he + 2
            raw_len = headers.get("Content-Length")
            length = 0
            if raw_len is not None:
                if not raw_len.isdigit() or int(raw_len) > MAX_BODY_BYTES:
                    self._resync(pos + 1, "bad-content-length")
                    continue
                length = int(raw_len)
            if ctype == CT_PLAIN:
                end = self._plain_end(body_start, length)
                if end is None:
                    return None  # incomplete: at the very end, finish() counts it as cut
                if end < 0:
                    self._resync(body_start, "truncated-event")
                    continue
            else:
                end = body_start + length
                if end > len(buf):
                    if not final or ctype != CT_JSON:
                        return None
                    end = len(buf)
                if ctype == CT_JSON:
                    end = self._json_end(body_start, end)
                    if end < 0:
                        self._resync(body_start, "bad-json")
                        continue
            frame = Frame(ctype, headers, bytes(buf[body_start:end]), self._base + pos)
            self._pos = end
            self.frames += 1
            self.stats.messages += 1
            if ctype not in KNOWN_TYPES:
                self.stats.drop("unknown-content-type")
            return frame
        return None

    def _plain_end(self, body_start: int, length: int) -> int | None:
        """End of a plain event from its own structure; None = need more bytes, -1 = cut."""
        buf = self._buf
        he = buf.find(b"\n\n", body_start)
        if he < 0:
            if len(buf) - body_start > MAX_BODY_BYTES:
                return -1
            # the outer length is normally right: if that many bytes are here and they
            # already hold a frame start, the event was cut short
            if length and len(buf) >= body_start + length and \
                    buf.find(b"\nContent-Type: ", body_start, body_start + length) >= 0:
                return -1
            return None
        # a frame start inside the header part means this event was cut in the middle
        if buf.find(b"\nContent-Type: ", body_start, he) >= 0:
            return -1
        inner = buf.rfind(b"\nContent-Length: ", body_start, he)
        if inner < 0 and buf.startswith(b"Content-Length: ", body_start):
            inner = body_start - 1
        end = he + 2
        if inner >= 0:
            line_end = buf.find(b"\n", inner + 1)
            # only the LAST header may be the inner body length (sendevent copies a
            # Content-Length header earlier in the block too)
            if line_end == he:
                digits = bytes(buf[inner + 17: line_end])
                if digits.isdigit():
                    end = he + 2 + int(digits)
                    if end > len(buf):
                        return None
        if length and end != body_start + length:
            self.stats.drop("content-length-mismatch")
        return end

    def _json_end(self, body_start: int, end: int) -> int:
        """End of a json event: its Content-Length when the object parses, else the object's
        own end (raw_decode); -1 when no JSON object starts here."""
        chunk = bytes(self._buf[body_start:end])
        try:
            json.loads(chunk)
            return end
        except (ValueError, UnicodeDecodeError):
            pass
        text_end = min(len(self._buf), body_start + MAX_BODY_BYTES)
        text = bytes(self._buf[body_start:text_end]).decode("utf-8", "replace")
        try:
            _, n = _JSON_DECODER.raw_decode(text)
        except ValueError:
            return -1
        self.stats.drop("content-length-mismatch")
        return body_start + len(text[:n].encode("utf-8"))

    def finish(self) -> list[Frame]:
        """End of input: frames still recoverable, then the rest counts as cut."""
        out: list[Frame] = []
        while (f := self.next_frame(final=True)) is not None:
            out.append(f)
        if self.pending and bytes(self._buf[self._pos:]).strip():
            self.stats.drop("truncated-at-end")
            if self.first_bad is None:
                self.first_bad = self.offset
        self._buf.clear()
        self._base += self._pos
        self._pos = 0
        return out


def iter_frames(data: bytes) -> list[Frame]:
    """Every frame of a complete capture (tests, tools)."""
    p = EslParser()
    p.feed(data)
    out: list[Frame] = []
    while (f := p.next_frame()) is not None:
        out.append(f)
    out.extend(p.finish())
    return out
