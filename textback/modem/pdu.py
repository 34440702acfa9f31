"""SMS PDU codec: SMS-SUBMIT encode; SMS-DELIVER, SMS-SUBMIT and SMS-STATUS-REPORT decode.

PDU mode is the only way textback talks SMS to a modem: a number is validated before it is
encoded and a text travels as packed septets or UTF-16 octets, so CR, LF, Ctrl-Z or ESC in a
caller ID or a message body can never become an AT command (text mode would put them on the
line raw). References: 3GPP TS 23.040 (TPDU layout), TS 23.038 (alphabets, DCS), TS 27.005
(the SMSC octets in front of the TPDU in AT+CMGS / +CMGR / +CMT / +CDS).

Public interface: ``encode_submit``, ``SubmitPart``, ``plan_segments``, ``SegmentPlan``,
``decode_pdu``, ``DecodedPdu``, ``ConcatInfo``, ``PduError``, ``peek_direction``,
``peek_sender``, ``storable_text``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

from textback.modem import gsm7
from textback.modem.pdu_address import decode_address, decode_smsc, encode_address, encode_smsc
from textback.modem.pdu_error import PduError
from textback.modem.pdu_fields import (
    Dcs,
    decode_dcs,
    decode_timestamp,
    encode_dcs,
    iso,
    status_category,
    status_meaning,
    vp_relative_minutes,
    vp_relative_octet,
)
from textback.modem.pdu_segment import SegmentPlan, plan_segments

__all__ = [
    "ConcatInfo",
    "DecodedPdu",
    "PduError",
    "SegmentPlan",
    "SubmitPart",
    "decode_pdu",
    "encode_submit",
    "peek_direction",
    "peek_sender",
    "plan_segments",
    "storable_text",
]

# TP-MTI (TS 23.040 §9.2.3.1) as seen by the MS: what a modem hands us or we hand it.
_MTI_DIRECTION = {0: "deliver", 1: "submit", 2: "status"}
_DIRECTIONS = ("deliver", "submit", "status")

IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08


# ================================================================ encode


@dataclass(frozen=True)
class SubmitPart:
    """One SMS-SUBMIT ready for ``AT+CMGS=<tpdu_length>`` then ``<pdu>`` + Ctrl-Z."""

    pdu: str  # hex, uppercase, SMSC octets included, as AT+CMGS sends it
    tpdu_length: int  # octets after the SMSC part, the N of AT+CMGS=N
    text: str  # this part's text
    part: int  # 1-based position
    parts: int  # how many parts the message has


_ref_lock = threading.Lock()
_next_ref = random.randrange(1 << 16)


def _pick_concat_ref(ref_bits: int) -> int:
    """A concatenation reference when the caller gives none: a process-wide counter from a
    random start, so two messages in a row to the same phone never share one. A caller that
    persists its own counter (e.g. in the outbox) does better across restarts."""
    global _next_ref
    with _ref_lock:
        _next_ref = (_next_ref + 1) & 0xFFFF
        value = _next_ref
    return value & ((1 << ref_bits) - 1)


def _concat_header(ref: int, ref_bits: int, part: int, parts: int) -> bytes:
    if ref_bits == 8:
        ies = bytes((IEI_CONCAT_8, 3, ref, parts, part))
    else:
        ies = bytes((IEI_CONCAT_16, 4, ref >> 8, ref & 0xFF, parts, part))
    return bytes((len(ies),)) + ies


def _user_data(text: str, encoding: str, header: bytes) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) for one part; UDL counts septets for GSM-7, octets otherwise."""
    if encoding == "gsm7":
        septets = gsm7.encode_septets(text)
        udl = (gsm7.header_septets(len(header)) if header else 0) + len(septets)
        return udl, gsm7.pack_septets(septets, header)
    body = header + text.encode("utf-16-be")
    return len(body), body


def encode_submit(
    number: str,
    text: str,
    *,
    smsc: str | None = None,
    status_report: bool = False,
    validity_minutes: int | None = None,
    message_reference: int = 0,
    concat_ref: int | None = None,
    ref_bits: int = 8,
    reject_duplicates: bool = False,
    msg_class: int | None = None,
) -> list[SubmitPart]:
    """Encode ``text`` to ``number`` as the fewest SMS-SUBMIT PDUs.

    GSM-7 when every character is in the default alphabet or its extension table, else UCS-2
    (UTF-16, surrogate pairs kept whole). ``number`` and ``smsc``: '+digits' (international)
    or 'digits' (national), 1-20 digits, anything else raises PduError before any octet is
    built. ``smsc`` None writes '00' (use the SIM's SMSC). ``validity_minutes`` sets a
    relative TP-VP rounded up to the next step the spec can express. ``concat_ref`` None picks
    one from a process-wide counter; pass your own persistent counter to be safe across
    restarts. ``ref_bits`` 16 uses the 16-bit reference IE (one septet/unit less per part).
    """
    if ref_bits not in (8, 16):
        raise PduError(f"ref_bits must be 8 or 16, got {ref_bits!r}")
    if isinstance(message_reference, bool) or not isinstance(message_reference, int) or not (
        0 <= message_reference <= 255
    ):
        raise PduError(f"message_reference must be 0..255, got {message_reference!r}")
    address = encode_address(number, "destination number")
    smsc_octets = encode_smsc(smsc)
    vp = b"" if validity_minutes is None else bytes((vp_relative_octet(validity_minutes),))
    plan = plan_segments(text, ref_bits)
    dcs = encode_dcs(plan.encoding, msg_class)
    count = len(plan.parts)
    if count > 1:
        if concat_ref is None:
            concat_ref = _pick_concat_ref(ref_bits)
        elif isinstance(concat_ref, bool) or not isinstance(concat_ref, int) or not (
            0 <= concat_ref < (1 << ref_bits)
        ):
            raise PduError(f"concat_ref must be 0..{(1 << ref_bits) - 1}, got {concat_ref!r}")

    first = 0x01  # TP-MTI SMS-SUBMIT
    if reject_duplicates:
        first |= 0x04
    if vp:
        first |= 0x10  # TP-VPF relative
    if status_report:
        first |= 0x20
    if count > 1:
        first |= 0x40  # TP-UDHI

    out: list[SubmitPart] = []
    for i, part_text in enumerate(plan.parts, 1):
        header = _concat_header(concat_ref or 0, ref_bits, i, count) if count > 1 else b""
        udl, ud = _user_data(part_text, plan.encoding, header)
        tpdu = (
            bytes((first, message_reference)) + address + bytes((0x00, dcs)) + vp
            + bytes((udl,)) + ud
        )
        out.append(SubmitPart((smsc_octets + tpdu).hex().upper(), len(tpdu), part_text, i, count))
    return out


# ================================================================ decode


@dataclass(frozen=True)
class ConcatInfo:
    """The concatenation IE of a part. Read as attributes or, like the JSON, as keys."""

    concat_ref: int
    ref_bits: int  # 8 or 16
    part: int
    parts: int

    def __getitem__(self, key: str) -> int:
        if key not in ("concat_ref", "ref_bits", "part", "parts"):
            raise KeyError(key)
        value: int = getattr(self, key)
        return value

    def to_dict(self) -> dict[str, int]:
        return {"concat_ref": self.concat_ref, "ref_bits": self.ref_bits,
                "part": self.part, "parts": self.parts}


@dataclass(frozen=True)
class DecodedPdu:
    """A decoded PDU. Field names follow ../shared/modem-data/pdu-vectors.jsonl.

    ``timestamp`` is TP-SCTS (DELIVER, STATUS-REPORT) as ISO 8601 with its offset;
    ``discharge_time`` is TP-DT of a status report. ``text`` is None for 8-bit data that is
    not printable text (``data`` always holds the user data, UDH excluded, as hex).
    ``vp_relative`` is the raw relative TP-VP octet (``vp_minutes`` what it means).
    ``warnings`` lists oddities tolerated on the way (bad timestamp, trailing octets).
    """

    direction: str  # "submit" | "deliver" | "status"
    smsc: str | None
    number: str | None
    text: str | None
    encoding: str | None  # "gsm7" | "ucs2" | "8bit"; None for a status report without TP-DCS
    udh: ConcatInfo | None
    timestamp: str | None
    message_reference: int | None
    status: int | None
    tpdu_length: int
    number_type: int | None = None  # TOA octet of the number
    status_meaning: str | None = None
    status_category: str | None = None  # "delivered" | "pending" | "failed"
    discharge_time: str | None = None
    vp_relative: int | None = None
    vp_minutes: int | None = None
    vp_absolute: str | None = None
    msg_class: int | None = None
    status_report_request: bool = False
    reject_duplicates: bool = False
    more_messages_to_send: bool | None = None
    protocol_id: int | None = None
    dcs: int | None = None
    udh_hex: str | None = None
    data: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The CLI JSON: every field, udh as a plain object, warnings as a list."""
        d: dict[str, Any] = {
            "direction": self.direction,
            "smsc": self.smsc,
            "number": self.number,
            "text": self.text,
            "encoding": self.encoding,
            "udh": self.udh.to_dict() if self.udh else None,
            "timestamp": self.timestamp,
            "message_reference": self.message_reference,
            "status": self.status,
            "tpdu_length": self.tpdu_length,
        }
        for name in ("number_type", "status_meaning", "status_category", "discharge_time",
                     "vp_relative", "vp_minutes", "vp_absolute", "msg_class",
                     "status_report_request", "reject_duplicates", "more_messages_to_send",
                     "protocol_id", "dcs", "udh_hex", "data"):
            d[name] = getattr(self, name)
        d["warnings"] = list(self.warnings)
        return d


def _to_bytes(data: str | bytes) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if not isinstance(data, str):
        raise PduError(f"PDU must be hex text or bytes, got {type(data).__name__}")
    s = "".join(data.split())
    if not s:
        raise PduError("empty PDU")
    if len(s) % 2:
        raise PduError(f"PDU hex has an odd number of digits ({len(s)})")
    try:
        return bytes.fromhex(s)
    except ValueError:
        bad = next((i for i, c in enumerate(s) if c not in "0123456789abcdefABCDEF"), 0)
        raise PduError(f"PDU is not hex: {s[bad]!r} at hex digit {bad}") from None


class _Reader:
    """Octet reader over the whole PDU that names the field and offset when it runs out."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def octet(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise PduError(f"PDU truncated: {what} expected at octet {self.pos}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise PduError(
                f"PDU truncated: {what} needs {n} octets at octet {self.pos}, "
                f"only {len(self.data) - self.pos} left"
            )
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def address(self, what: str) -> tuple[str | None, int]:
        text, toa, self.pos = decode_address(self.data, self.pos, what)
        return text, toa


def _parse_udh(header: bytes, at: int) -> ConcatInfo | None:
    """The concatenation IE of a UDH (its length octet excluded), unknown IEs skipped."""
    i = 0
    concat: ConcatInfo | None = None
    while i < len(header):
        if i + 2 > len(header):
            raise PduError(f"UDH information element at octet {at + i} is cut short")
        iei, n = header[i], header[i + 1]
        value = header[i + 2 : i + 2 + n]
        if len(value) < n:
            raise PduError(
                f"UDH information element 0x{iei:02X} at octet {at + i} says {n} octets, "
                f"only {len(value)} left in the header"
            )
        if iei == IEI_CONCAT_8 and n == 3:
            concat = ConcatInfo(value[0], 8, value[2], value[1])
        elif iei == IEI_CONCAT_16 and n == 4:
            concat = ConcatInfo((value[0] << 8) | value[1], 16, value[3], value[2])
        i += 2 + n
    return concat


def _printable_8bit(payload: bytes) -> str | None:
    """8-bit data as text when it reads as text (UTF-8, else Latin-1), else None."""
    for codec in ("utf-8", "latin-1"):
        try:
            text = payload.decode(codec)
        except UnicodeDecodeError:
            continue
        if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
            return text
        return None
    return None


def _fits(udl: int, available: int, septets: bool) -> bool:
    return ((udl * 7 + 7) // 8 if septets else udl) == available


def _resolve_encoding(r: _Reader, dcs_octet: int, dcs: Dcs, warnings: list[str]) -> str:
    """The alphabet to read the user data in.

    TS 23.038 leaves bit 3 of coding group 1111 reserved (set to 0); bit 2 chooses GSM-7 or
    8-bit. Real phones and SMSCs do send F8-FF. python-gammu, python-gsmmodem and
    python-messaging all read such user data as 8-bit (shared vectors gammu-at-sms-14 and
    -42), so we do the same and say so in a warning, rather than be the one tool that shows
    a different text for the same message.
    """
    if dcs_octet & 0xF8 != 0xF8 or r.pos >= len(r.data):
        return dcs.encoding
    udl, available = r.data[r.pos], len(r.data) - r.pos - 1
    if dcs.encoding == "gsm7":
        fits = "fits" if _fits(udl, available, True) else "does not fit"
        warnings.append(
            f"TP-DCS 0x{dcs_octet:02X} has reserved bit 3 set: read as 8-bit data as other "
            f"decoders do (TP-UDL {udl} {fits} GSM-7)"
        )
    return "8bit"


@dataclass
class _UserData:
    text: str | None
    udh: ConcatInfo | None
    udh_hex: str | None
    data: str | None
    end: int


def _read_user_data(
    r: _Reader, udhi: bool, encoding: str, compressed: bool, warnings: list[str]
) -> _UserData:
    """TP-UDL and TP-UD. User data cut short (a modem dropped the tail) keeps what is there,
    with a warning: the readable part of a received message is worth more than an error."""
    udl_at = r.pos
    udl = r.octet("TP-UDL")
    start = r.pos
    septets = encoding == "gsm7" and not compressed
    n_octets = (udl * 7 + 7) // 8 if septets else udl
    available = len(r.data) - start
    if n_octets > available:
        unit = "septets" if septets else "octets"
        warnings.append(
            f"user data truncated: TP-UDL at octet {udl_at} says {udl} {unit} "
            f"({n_octets} octets) but only {available} octets follow"
        )
        n_octets = available
        if septets:
            udl = available * 8 // 7
    ud = r.take(n_octets, "TP-UD")
    header = b""
    concat = None
    if udhi:
        if not ud:
            raise PduError(f"TP-UDHI set but the user data at octet {start} is empty")
        udhl = ud[0]
        if 1 + udhl > len(ud):
            raise PduError(
                f"UDH length {udhl} at octet {start} runs past the user data ({len(ud)} octets)"
            )
        header = ud[: 1 + udhl]
        concat = _parse_udh(header[1:], start + 1)
    text: str | None
    data: str | None = None
    if septets:
        if header and gsm7.header_septets(len(header)) > udl:
            raise PduError(f"UDH at octet {start} is longer than TP-UDL ({udl} septets)")
        text = gsm7.decode_septets(gsm7.unpack_septets(ud, udl, len(header)))
    else:
        payload = ud[len(header):]
        data = payload.hex().upper()
        if compressed:
            text = None
            warnings.append("user data is compressed (TS 23.042): not decoded")
        elif encoding == "ucs2":
            # a broken sender's UCS-2 never makes the PDU undecodable: an odd last octet
            # is shown as U+FFFD; a lone surrogate is kept (``pdu decode`` prints it as a
            # JSON escape) and becomes U+FFFD only where text is stored (``storable_text``)
            odd = len(payload) % 2
            if odd:
                warnings.append("UCS-2 user data has an odd octet count: last octet shown "
                                "as U+FFFD")
            text = payload[:len(payload) - odd].decode("utf-16-be", errors="surrogatepass")
            text += "\ufffd" * odd
        else:
            text = _printable_8bit(payload)
    return _UserData(text, concat, header.hex().upper() if header else None, data, r.pos)


def _finish_warnings(data: bytes, end: int, warnings: list[str]) -> None:
    rest = data[end:]
    if rest and rest.strip(b"\xff"):
        warnings.append(f"{len(rest)} octets after the user data (from octet {end}) ignored")


def storable_text(text: str) -> str:
    """``text`` with every lone UTF-16 surrogate (a UCS-2 sender that split a pair, or sent
    garbage) replaced by U+FFFD: what can be stored (UTF-8 cannot hold a lone surrogate, so
    SQLite refuses it) and classified (U+FFFD + "STOP" is still a STOP)."""
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def peek_direction(data: str | bytes, *, has_smsc: bool = True) -> str | None:
    """What a PDU is by its TP-MTI alone ("deliver", "submit", "status"), without decoding
    the rest; None when not even that can be read. The receive path uses it to route a
    PDU before journaling it raw (a DELIVER is journaled before anything decodes it)."""
    try:
        raw = _to_bytes(data)
    except PduError:
        return None
    pos = raw[0] + 1 if has_smsc else 0
    if pos >= len(raw):
        return None
    return _MTI_DIRECTION.get(raw[pos] & 0x03)


def peek_sender(data: str | bytes) -> str | None:
    """The originating address (TP-OA) of an SMS-DELIVER whose later fields cannot be
    read, so that an undecodable text can still be shown as coming from someone; None when
    the PDU is not a DELIVER or not even its address can be read."""
    try:
        raw = _to_bytes(data)
        _smsc, pos = decode_smsc(raw)
        if pos >= len(raw) or raw[pos] & 0x03 != 0:
            return None
        number, _toa, _end = decode_address(raw, pos + 1, "originating (TP-OA)")
    except (PduError, ValueError, IndexError):
        return None
    return number


def decode_pdu(
    data: str | bytes, *, has_smsc: bool = True, direction: str | None = None
) -> DecodedPdu:
    """Decode a PDU as a modem gives it (+CMGR, +CMGL, +CMT, +CDS), SMSC octets first.

    ``has_smsc`` False for a bare TPDU. ``direction`` forces how TP-MTI is read ('deliver',
    'submit', 'status'); by default MTI 0 is SMS-DELIVER, 1 SMS-SUBMIT, 2 SMS-STATUS-REPORT.
    Trailing FF padding is tolerated. Anything malformed raises PduError naming the field
    and the octet offset.
    """
    raw = _to_bytes(data)
    if direction is not None and direction not in _DIRECTIONS:
        raise PduError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}")
    if has_smsc:
        smsc, pos = decode_smsc(raw)
    else:
        smsc, pos = None, 0
    tpdu_length = len(raw) - pos
    r = _Reader(raw, pos)
    first = r.octet("first octet (TP-MTI)")
    mti = first & 0x03
    kind = direction or _MTI_DIRECTION.get(mti)
    if kind is None:
        raise PduError(f"TP-MTI 3 (reserved) in the first octet at octet {pos}: not an SMS "
                       "type this codec reads; pass direction= to force one")
    try:
        if kind == "deliver":
            return _decode_deliver(r, first, smsc, tpdu_length)
        if kind == "submit":
            return _decode_submit(r, first, smsc, tpdu_length)
        return _decode_status(r, first, smsc, tpdu_length)
    except ValueError as exc:  # PduError is one; anything else from a helper becomes one
        if isinstance(exc, PduError):
            raise
        raise PduError(f"malformed {kind} PDU: {exc}") from None


def _decode_deliver(r: _Reader, first: int, smsc: str | None, length: int) -> DecodedPdu:
    warnings: list[str] = []
    number, toa = r.address("originating (TP-OA)")
    pid = r.octet("TP-PID")
    dcs_octet = r.octet("TP-DCS")
    dcs = decode_dcs(dcs_octet)
    ts_at = r.pos
    ts = decode_timestamp(r.take(7, "TP-SCTS"))
    if ts is None:
        warnings.append(f"TP-SCTS at octet {ts_at} is not a valid time")
    encoding = _resolve_encoding(r, dcs_octet, dcs, warnings)
    ud = _read_user_data(r, bool(first & 0x40), encoding, dcs.compressed, warnings)
    _finish_warnings(r.data, ud.end, warnings)
    return DecodedPdu(
        direction="deliver", smsc=smsc, number=number, text=ud.text, encoding=encoding,
        udh=ud.udh, timestamp=iso(ts), message_reference=None, status=None,
        tpdu_length=length, number_type=toa, msg_class=dcs.msg_class,
        status_report_request=bool(first & 0x20), more_messages_to_send=not first & 0x04,
        protocol_id=pid, dcs=dcs_octet, udh_hex=ud.udh_hex, data=ud.data,
        warnings=tuple(warnings),
    )


def _decode_submit(r: _Reader, first: int, smsc: str | None, length: int) -> DecodedPdu:
    warnings: list[str] = []
    mr = r.octet("TP-MR")
    number, toa = r.address("destination (TP-DA)")
    pid = r.octet("TP-PID")
    dcs_octet = r.octet("TP-DCS")
    dcs = decode_dcs(dcs_octet)
    vpf = (first >> 3) & 0x03
    vp_rel: int | None = None
    vp_abs: str | None = None
    if vpf == 2:
        vp_rel = r.octet("TP-VP (relative)")
    elif vpf == 3:
        vp_at = r.pos
        ts = decode_timestamp(r.take(7, "TP-VP (absolute)"))
        if ts is None:
            warnings.append(f"absolute TP-VP at octet {vp_at} is not a valid time")
        vp_abs = iso(ts)
    elif vpf == 1:
        r.take(7, "TP-VP (enhanced)")
    encoding = _resolve_encoding(r, dcs_octet, dcs, warnings)
    ud = _read_user_data(r, bool(first & 0x40), encoding, dcs.compressed, warnings)
    _finish_warnings(r.data, ud.end, warnings)
    return DecodedPdu(
        direction="submit", smsc=smsc, number=number, text=ud.text, encoding=encoding,
        udh=ud.udh, timestamp=None, message_reference=mr, status=None, tpdu_length=length,
        number_type=toa, vp_relative=vp_rel,
        vp_minutes=vp_relative_minutes(vp_rel) if vp_rel is not None else None,
        vp_absolute=vp_abs, msg_class=dcs.msg_class,
        status_report_request=bool(first & 0x20), reject_duplicates=bool(first & 0x04),
        protocol_id=pid, dcs=dcs_octet, udh_hex=ud.udh_hex, data=ud.data,
        warnings=tuple(warnings),
    )


def _decode_status(r: _Reader, first: int, smsc: str | None, length: int) -> DecodedPdu:
    warnings: list[str] = []
    mr = r.octet("TP-MR")
    number, toa = r.address("recipient (TP-RA)")
    ts_at = r.pos
    scts = decode_timestamp(r.take(7, "TP-SCTS"))
    if scts is None:
        warnings.append(f"TP-SCTS at octet {ts_at} is not a valid time")
    dt_at = r.pos
    discharge = decode_timestamp(r.take(7, "TP-DT"))
    if discharge is None:
        warnings.append(f"TP-DT at octet {dt_at} is not a valid time")
    st = r.octet("TP-ST")
    pid: int | None = None
    dcs_octet: int | None = None
    encoding: str | None = None
    msg_class: int | None = None
    ud: _UserData | None = None
    end = r.pos
    # TP-PI and what it announces are optional (§9.2.2.3); FF here is padding, not a PI.
    # A broken optional part costs a warning, not the report: mr and status are what matter.
    if r.pos < len(r.data) and r.data[r.pos] != 0xFF:
        pi_at = r.pos
        try:
            pi = r.octet("TP-PI")
            if pi & 0x01:
                pid = r.octet("TP-PID")
            if pi & 0x02:
                dcs_octet = r.octet("TP-DCS")
            dcs = decode_dcs(dcs_octet or 0)
            if dcs_octet is not None:
                encoding, msg_class = dcs.encoding, dcs.msg_class
            if pi & 0x04:
                enc = _resolve_encoding(r, dcs_octet or 0, dcs, warnings)
                ud = _read_user_data(r, bool(first & 0x40), enc, dcs.compressed, warnings)
            end = r.pos
        except PduError as exc:
            warnings.append(f"optional fields after TP-ST (TP-PI at octet {pi_at}) ignored: {exc}")
            end = len(r.data)
    _finish_warnings(r.data, end, warnings)
    return DecodedPdu(
        direction="status", smsc=smsc, number=number, text=ud.text if ud else None,
        encoding=encoding, udh=ud.udh if ud else None, timestamp=iso(scts),
        message_reference=mr, status=st, tpdu_length=length, number_type=toa,
        status_meaning=status_meaning(st), status_category=status_category(st),
        discharge_time=iso(discharge), msg_class=msg_class,
        more_messages_to_send=not first & 0x04, protocol_id=pid, dcs=dcs_octet,
        udh_hex=ud.udh_hex if ud else None, data=ud.data if ud else None,
        warnings=tuple(warnings),
    )
