"""Parsing the modem's status answers into a health snapshot an admin can read.

The parsers are lenient because the captures are not tidy: gammu's at-creg-corner dumps
show empty and unbalanced quotes, Huawei answers AT+CSCA? in UCS-2 hex, some phones give an
empty +CPMS. A field that cannot be read becomes None, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

REGISTRATION = {
    0: "not registered", 1: "registered (home)", 2: "searching", 3: "registration denied",
    4: "unknown", 5: "registered (roaming)", 6: "registered (home, SMS only)",
    7: "registered (roaming, SMS only)",
}


@dataclass
class ModemInfo:
    """What ``textback modem probe`` prints and the supervisor's health snapshot holds."""

    port: str
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    sim: str | None = None  # READY, SIM PIN, SIM PUK, not inserted ...
    signal_csq: int | None = None
    signal_dbm: int | None = None
    registration: str | None = None
    registered: bool = False
    operator: str | None = None
    smsc: str | None = None
    storage: str | None = None
    report_mode: str | None = None  # "+CDSI", "+CDS" or None (no delivery reports)
    imei: str | None = None  # AT+CGSN (textback modem probe)
    iccid: str | None = None  # the SIM's serial number, per dialect (iccid_commands)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _fields(text: str) -> list[str]:
    return [f.strip().strip('"') for f in text.split(",")]


def parse_csq(line: str) -> tuple[int | None, int | None]:
    """+CSQ: rssi,ber -> (rssi, dBm); 99 = unknown (27.007 §8.5)."""
    m = re.match(r"^\+CSQ:\s*(\d+)", line)
    if not m:
        return None, None
    rssi = int(m.group(1))
    if rssi == 99 or rssi > 31:
        return rssi, None
    return rssi, -113 + 2 * rssi


def parse_reg(line: str) -> int | None:
    """+CREG: [n,]stat[,lac,ci...] (answer) -> stat. The answer form has n first."""
    m = re.match(r"^\+C(?:E|G)?REG:\s*(.*)$", line)
    if not m:
        return None
    values = _fields(m.group(1))
    if len(values) >= 2 and values[1].isdigit():
        return int(values[1])
    if values and values[0].isdigit():
        return int(values[0])
    return None


def parse_cops(line: str) -> str | None:
    m = re.match(r'^\+COPS:\s*\d+\s*,\s*\d+\s*,\s*"([^"]*)"', line)
    return m.group(1) if m else None


def parse_imei(lines: tuple[str, ...]) -> str | None:
    """AT+CGSN answer -> the IMEI (14-17 digits: IMEI, IMEI with check digit, IMEISV).
    27.007 5.4 gives the bare serial number (the shared transcripts: Huawei K3715/E1752,
    Wavecom, ZTE, Nokia answer ``111111111111111``); some firmwares prefix ``+CGSN:``."""
    for line in lines:
        value = re.sub(r"^\+C?GSN:\s*", "", line.strip()).strip('"').strip()
        if re.fullmatch(r"\d{14,17}", value):
            return value
    return None


def iccid_commands(manufacturer: str | None, model: str | None) -> tuple[str, ...]:
    """The commands that read the SIM's ICCID on this modem, the dialect's own first.
    27.007 has none, so each vendor has its own (their AT manuals): Quectel ``AT+QCCID``
    (``+QCCID: <iccid>``, EC25&EC21 AT Commands Manual), SIMCom LTE ``AT+CICCID``
    (``+ICCID: <iccid>``, SIM7500/SIM7600 AT manual), SIMCom 2G ``AT+CCID`` (bare ICCID,
    SIM800 Series AT Command Manual), Huawei ``AT^ICCID?`` (``^ICCID: <iccid>``; the
    E1752 lists ^ICCID in its AT+CLAC, shared transcripts); ``AT+CCID`` elsewhere."""
    maker = (manufacturer or "").lower()
    name = (model or "").upper()
    if "quectel" in maker:
        return ("AT+QCCID", "AT+CCID")
    if "huawei" in maker:
        return ("AT^ICCID?",)
    if "simcom" in maker and "SIM800" not in name and "SIM900" not in name:
        return ("AT+CICCID", "AT+CCID")
    return ("AT+CCID",)


def parse_iccid(lines: tuple[str, ...]) -> str | None:
    """An ICCID answer (``+QCCID:``, ``+ICCID:``, ``^ICCID:``, ``+CCID:`` or bare) -> the
    ICCID digits (18-20; a trailing F pad dropped). Read raw from the SIM (AT+CRSM) the
    digits come nibble-swapped, ``98…`` instead of ``89…`` (every ICCID starts with the
    telecom prefix 89, ITU-T E.118): those are swapped back."""
    for line in lines:
        value = re.sub(r"^[+^#$]?[A-Z]*CCID:\s*", "", line.strip(), flags=re.I)
        value = value.strip().strip('"').strip()
        if not re.fullmatch(r"[0-9]{18,20}[Ff]?|[0-9]{17,19}[Ff][0-9]", value):
            continue
        if value.startswith("98") and len(value) % 2 == 0:
            value = "".join(value[i + 1] + value[i] for i in range(0, len(value), 2))
        return value.rstrip("Ff")
    return None


def parse_csca(line: str) -> str | None:
    """+CSCA: "number",toa; Huawei may give the number as UCS-2 hex (gammu at-smsc 01/05)."""
    m = re.match(r'^\+CSCA:\s*"?([^",]*)"?', line)
    if not m:
        return None
    value = m.group(1).strip()
    if re.fullmatch(r"(?:00[0-9A-Fa-f]{2})+", value) and len(value) % 4 == 0 and len(value) > 8:
        try:
            value = bytes.fromhex(value).decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            return value or None
    return value or None


def parse_cpms(line: str) -> str | None:
    """+CPMS: used,total,... or "mem",used,total,... -> a short "SM 3/30" summary."""
    m = re.match(r"^\+CPMS:\s*(.*)$", line)
    if not m:
        return None
    values = _fields(m.group(1))
    if values and values[0] and not values[0].isdigit():
        if len(values) >= 3 and values[1].isdigit() and values[2].isdigit():
            return f"{values[0]} {values[1]}/{values[2]}"
        return None
    if len(values) >= 2 and values[0].isdigit() and values[1].isdigit():
        return f"{values[0]}/{values[1]}"
    return None


def parse_cpms_storages(line: str) -> list[str]:
    """Storages offered for reading in AT+CPMS=? (first group)."""
    m = re.match(r"^\+CPMS:\s*\(?\(?([^)]*)\)?", line)
    if not m:
        return []
    return re.findall(r'"([A-Z_]+)"', m.group(1))


def parse_cmgs(lines: tuple[str, ...]) -> int | None:
    for line in lines:
        m = re.match(r"^\+CMGS:\s*(\d+)", line)
        if m:
            return int(m.group(1))
    return None


def parse_storage_urc(args: str) -> tuple[str, int] | None:
    """+CMTI / +CDSI arguments "SM",3 -> ("SM", 3)."""
    values = _fields(args)
    if len(values) >= 2 and values[1].isdigit():
        return values[0] or "SM", int(values[1])
    return None


def parse_listing(lines: tuple[str, ...]) -> list[tuple[int, str]]:
    """AT+CMGL=4 (PDU mode) -> [(index, pdu hex)]. Truncated trailing entries are skipped."""
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^\+CMGL:\s*(\d+)", lines[i])
        if m and i + 1 < len(lines) and re.fullmatch(r"[0-9A-Fa-f]+", lines[i + 1].strip()):
            out.append((int(m.group(1)), lines[i + 1].strip()))
            i += 2
            continue
        i += 1
    return out


def parse_cmgr(lines: tuple[str, ...]) -> str | None:
    """AT+CMGR answer -> the PDU line (the one after +CMGR:)."""
    for i, line in enumerate(lines):
        if line.startswith("+CMGR:") and i + 1 < len(lines):
            pdu = lines[i + 1].strip().rstrip('"')
            return pdu or None
    return None
