"""A sans-IO AT command session (in the style of h11): bytes in, events out, bytes to write.

No I/O and no clock here: the asyncio driver feeds what the port gave with
``receive_data`` and collects events with ``events()``; it asks for the bytes of a command
with ``command()`` / ``submit_pdu()`` / ``abort()``. Timeouts belong to the driver, which
calls ``cancel()`` when one fires. Keeping the protocol pure lets the tests replay real
captures (../shared/modem-data/transcripts.jsonl) byte for byte.

What real modems do that this handles:
- unsolicited result codes arrive at ANY point, also between a command and its answer
  (Huawei's ^RSSI every ~10 s, +CMTI while AT+CMGS runs); +CMT / +CDS carry their PDU on
  the next line;
- the AT+CMGS prompt is "> " without a line end on most modems, ">\\r\\n" on SIM7670
  (gammu issue #1176), after an echo that ends in "\\r\\r\\n" (Huawei E3531, gammu #438);
- echo on until ATE0 (and some modems turn it back on after a reset);
- Huawei answers "COMMAND NOT SUPPORT" instead of ERROR; Wavecom answers AT+CPIN? with no OK;
- line noise: undecodable or control-character lines are counted and dropped, never raised;
  after a PDU's Ctrl-Z an OK without its "+CMGS: <mr>" line is noise too (dropped, counted
  in ``stats.noise_after_pdu``): taking it for the answer sent texts twice (issue 12).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from textback.errors import TextbackError
from textback.modem.errors import AtError

CTRL_Z = b"\x1a"
ESC = b"\x1b"

# A command we write must be plain printable ASCII: no CR/LF/Ctrl-Z/ESC can be smuggled in.
_SAFE_COMMAND = re.compile(r"^AT[\x20-\x7e]*$", re.IGNORECASE)
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
_FINAL_CODED = re.compile(r"^\+(CME|CMS) ERROR:\s*(.*)$")

# Prefixes that are always unsolicited (3GPP TS 27.005/27.007 and the vendors in the data).
_URC_ALWAYS = (
    "+CMTI:", "+CDSI:", "+CMT:", "+CDS:", "+CBM:", "+CRING:", "+CLIP:", "+CCWA:", "+CUSD:",
    "+CIEV:", "+CTZV:", "+CTZE:", "+QIND:", "*PSUTTZ:", "+PSUTTZ:", "DST:", "+WIND:",
    "MISSED_CALL:", "VOICE CALL:", "+RXDTMF:", "+CGEV:", "+CPIN: NOT READY",
)
_URC_WORDS = frozenset({
    "RING", "SMS Ready", "Call Ready", "RDY", "SMS DONE", "PB DONE", "NORMAL POWER DOWN",
    "UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE WARNNING", "OVER-VOLTAGE WARNNING",
    "START", "PB Ready", "+CPIN: READY", "+CPIN: SIM PIN", "+CPIN: NOT INSERTED",
})
# Prefixes unsolicited unless the running command asked for them (AT+CREG? answers +CREG:).
_URC_UNLESS_ASKED = ("+CREG:", "+CGREG:", "+CEREG:", "+C5GREG:", "+CFUN:", "+CPIN:", "+CSQ:")
# URCs followed by one PDU line.
_URC_WITH_PDU = ("+CMT:", "+CDS:", "+CBM:")
_DIAL_RESULTS = frozenset({"NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "CONNECT"})


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class CommandOk:
    """The running command ended with OK; ``lines`` are its information lines."""

    command: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """The running command ended with ERROR / +CME ERROR / +CMS ERROR / COMMAND NOT SUPPORT."""

    command: str
    lines: tuple[str, ...]
    error: AtError


@dataclass(frozen=True, slots=True)
class Prompt:
    """The modem waits for the PDU of AT+CMGS / AT+CMGW ("> " or ">\\r\\n")."""

    command: str


@dataclass(frozen=True, slots=True)
class Unsolicited:
    """An unsolicited result code. ``name`` is the part before ':' ("+CMTI", "^RSSI",
    "RING", "SMS Ready"); ``args`` the rest; ``pdu`` the PDU line of +CMT/+CDS/+CBM."""

    name: str
    args: str
    line: str
    pdu: str | None = None


@dataclass(frozen=True, slots=True)
class Garbled:
    """Bytes that were neither a response nor a URC (line noise, a baud-rate mismatch)."""

    data: bytes


Event = CommandOk | CommandFailed | Prompt | Unsolicited | Garbled


@dataclass
class SessionStats:
    garbled: int = 0
    stray: int = 0  # final results or lines with no command running
    urcs: int = 0
    commands: int = 0
    noise_after_pdu: int = 0  # OKs with no +CMGS: line after a Ctrl-Z, dropped (issue 12)


class SessionError(TextbackError):
    """The caller broke the protocol (a command while one runs, an unsafe command)."""


# ---------------------------------------------------------------- session


@dataclass
class _Pending:
    command: str
    expects_prompt: bool
    asked: str  # the response prefix the command asks for, e.g. "+CREG:"
    lines: list[str] = field(default_factory=list)
    prompted: bool = False
    pdu: str | None = None


def _asked_prefix(command: str) -> str:
    body = command[2:].upper()
    m = re.match(r"^([+^$][A-Z0-9]+)", body)
    return (m.group(1) + ":") if m else ""


def _urc_name(line: str) -> tuple[str, str]:
    if ":" in line and (line[0] in "+^*$" or line.split(":", 1)[0].isupper()):
        name, _, args = line.partition(":")
        return name, args.strip()
    return line, ""


class AtSession:
    """The AT protocol state machine of one serial port."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._events: list[Event] = []
        self._pending: _Pending | None = None
        self._urc_awaiting_pdu: tuple[str, str, str] | None = None
        self.stats = SessionStats()

    # ---- state

    @property
    def busy(self) -> bool:
        return self._pending is not None

    @property
    def at_prompt(self) -> bool:
        return self._pending is not None and self._pending.prompted and self._pending.pdu is None

    # ---- bytes out

    def command(self, command: str) -> bytes:
        """The bytes for ``command``. Refuses anything but printable ASCII starting with AT,
        so nothing that came from a caller or a text can end a line or open a prompt."""
        if self._pending is not None:
            raise SessionError(f"{self._pending.command} is still running")
        if not _SAFE_COMMAND.fullmatch(command):
            raise SessionError(f"refusing unsafe AT command {command!r}")
        upper = command.upper()
        self._pending = _Pending(
            command=command,
            expects_prompt=upper.startswith(("AT+CMGS=", "AT+CMGW=")),
            asked=_asked_prefix(command),
        )
        self.stats.commands += 1
        return command.encode("ascii") + b"\r"

    def submit_pdu(self, pdu_hex: str) -> bytes:
        """The PDU bytes (hex + Ctrl-Z) answering a prompt. Only hex digits ever go out."""
        p = self._pending
        if p is None or not p.prompted or p.pdu is not None:
            raise SessionError("no AT+CMGS prompt to answer")
        if not _HEX.fullmatch(pdu_hex):
            raise SessionError("a PDU must be an even number of hex digits")
        p.pdu = pdu_hex.upper()
        return p.pdu.encode("ascii") + CTRL_Z

    def abort(self) -> bytes:
        """ESC: leave the prompt without sending. The modem still answers OK (or ERROR)."""
        p = self._pending
        if p is not None and p.prompted and p.pdu is None:
            p.pdu = ""
        return ESC

    def cancel(self) -> None:
        """Forget the running command (its timeout fired). A late answer is counted stray."""
        self._pending = None

    # ---- bytes in

    def receive_data(self, data: bytes) -> None:
        self._buf += data
        while True:
            idx = -1
            for i, b in enumerate(self._buf):
                if b in (0x0D, 0x0A):
                    idx = i
                    break
            if idx < 0:
                break
            raw = bytes(self._buf[:idx])
            del self._buf[: idx + 1]
            if raw:
                self._line(raw)
        self._check_prompt()
        if len(self._buf) > 4096:  # no line end for 4 KiB: noise, not a modem
            self._garbled(bytes(self._buf))
            self._buf.clear()

    def events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    # ---- internals

    def _check_prompt(self) -> None:
        p = self._pending
        if p is None or not p.expects_prompt or p.prompted:
            return
        head = bytes(self._buf).lstrip(b"\r\n")
        if head.startswith(b">"):
            rest = head[1:].lstrip(b" ")
            if not rest:
                self._buf.clear()
                self._prompt()

    def _prompt(self) -> None:
        assert self._pending is not None
        self._pending.prompted = True
        self._events.append(Prompt(self._pending.command))

    def _garbled(self, raw: bytes) -> None:
        self.stats.garbled += 1
        self._events.append(Garbled(raw))

    def _line(self, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._garbled(raw)
            return
        if any(ord(c) < 0x20 and c != "\t" for c in line) or "\x7f" in line:
            self._garbled(raw)
            return
        if not line.strip():
            return
        if self._urc_awaiting_pdu is not None:
            name, args, head = self._urc_awaiting_pdu
            self._urc_awaiting_pdu = None
            pdu = line.strip()
            if _HEX.fullmatch(pdu):
                self._urc(Unsolicited(name, args, head, pdu))
                return
            self._urc(Unsolicited(name, args, head, None))
            # fall through: this line is something else
        p = self._pending
        stripped = line.strip()
        if p is not None:
            if not p.lines and stripped.upper() == p.command.upper():
                return  # echo
            if p.pdu and p.pdu in stripped.upper():
                return  # echo of the PDU (echo on)
            if p.expects_prompt and not p.prompted and stripped in (">", "> "):
                self._prompt()
                return
            if p.expects_prompt and not p.prompted and stripped.startswith("> "):
                self._prompt()
                return
        if self._final(stripped):
            return
        if self._is_urc(stripped):
            name, args = _urc_name(stripped)
            if stripped.startswith(_URC_WITH_PDU):
                self._urc_awaiting_pdu = (name, args, stripped)
                return
            self._urc(Unsolicited(name, args, stripped))
            return
        if p is None:
            self.stats.stray += 1
            self._events.append(Unsolicited("", stripped, stripped))
            return
        p.lines.append(line.rstrip())

    def _urc(self, ev: Unsolicited) -> None:
        self.stats.urcs += 1
        self._events.append(ev)

    def _is_urc(self, line: str) -> bool:
        p = self._pending
        asked = p.asked if p is not None else ""
        if line in _URC_WORDS:
            return not (line.startswith("+CPIN:") and asked == "+CPIN:")
        if line.startswith("^"):
            return not (asked and line.upper().startswith(asked))
        if line.startswith(_URC_ALWAYS):
            return not (asked and line.startswith(asked))
        if line.startswith(_URC_UNLESS_ASKED):
            return not (asked and line.startswith(asked))
        return line in _DIAL_RESULTS and not (p and p.command.upper().startswith(("ATD", "ATA")))

    def _final(self, line: str) -> bool:
        p = self._pending
        error: AtError | None = None
        if line == "OK":
            if p is None:
                self.stats.stray += 1
                return True
            if p.pdu and not any(x.lstrip().startswith("+CMGS:") for x in p.lines):
                # after the Ctrl-Z only "+CMGS: <mr>" then OK answers the PDU (27.005
                # §3.5.1): an OK without it is line noise, not the answer. Drop it (and any
                # junk before it) and keep waiting for the real one, or the send timeout.
                self.stats.stray += 1
                self.stats.noise_after_pdu += 1
                p.lines.clear()
                return True
            self._pending = None
            self._events.append(CommandOk(p.command, tuple(p.lines)))
            return True
        if line == "ERROR":
            error = AtError("ERROR")
        elif line == "COMMAND NOT SUPPORT":
            error = AtError("UNSUPPORTED")
        elif (p is not None and line in _DIAL_RESULTS
              and p.command.upper().startswith(("ATD", "ATA"))):
            error = AtError("ERROR", None, line)
        else:
            m = _FINAL_CODED.match(line)
            if m:
                value = m.group(2).strip()
                if value.isdigit():
                    error = AtError(m.group(1), int(value))
                else:
                    error = AtError(m.group(1), None, value)
        if error is None:
            return False
        if p is None:
            self.stats.stray += 1
            return True
        self._pending = None
        self._events.append(CommandFailed(p.command, tuple(p.lines), error))
        return True
