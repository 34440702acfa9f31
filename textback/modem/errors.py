"""What a modem's error answers mean, and whether trying again can help.

+CMS ERROR codes come from 3GPP TS 27.005 §3.2.5 (plus the TS 24.011 RP-cause values the
network relays, 1..127), +CME ERROR codes from TS 27.007 §9.2. Each is classed *transient*
(the same text may go through later: no network, SIM busy, network congestion) or
*permanent* (retrying on this modem cannot help: bad number, no SMSC configured, SIM
missing). The outbox uses the class to choose between a retry and the next sender.

Port errors (opening /dev/ttyUSBn) are turned into sentences that name the fix, because the
two usual ones (user not in ``dialout``, ModemManager holding the port) look alike as errno
values and are the first thing an admin hits.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from textback.errors import TextbackError

# code -> (reason, transient)
CMS_ERRORS: dict[int, tuple[str, bool]] = {
    1: ("unassigned (unallocated) number", False),
    8: ("operator determined barring", False),
    10: ("call barred", False),
    21: ("short message transfer rejected by the network", False),
    27: ("destination out of service", True),
    28: ("unidentified subscriber", False),
    29: ("facility rejected", False),
    30: ("unknown subscriber", False),
    38: ("network out of order", True),
    41: ("temporary failure in the network", True),
    42: ("network congestion", True),
    47: ("network resources unavailable", True),
    50: ("requested facility not subscribed (SMS not allowed on this SIM plan)", False),
    69: ("requested facility not implemented", False),
    81: ("invalid short message transfer reference value", True),
    95: ("invalid message, unspecified", False),
    96: ("invalid mandatory information in the PDU", False),
    97: ("message type non-existent or not implemented", False),
    98: ("message not compatible with short message protocol state", True),
    99: ("information element non-existent or not implemented", False),
    111: ("protocol error, unspecified", True),
    127: ("interworking, unspecified", True),
    128: ("telematic interworking not supported", False),
    129: ("short message type 0 not supported", False),
    130: ("cannot replace short message", False),
    143: ("unspecified TP-PID error", False),
    144: ("data coding scheme (alphabet) not supported", False),
    145: ("message class not supported", False),
    159: ("unspecified TP-DCS error", False),
    160: ("command cannot be actioned", False),
    161: ("command unsupported", False),
    175: ("unspecified TP-Command error", False),
    176: ("TPDU not supported", False),
    192: ("SMSC busy", True),
    193: ("no SMSC subscription", False),
    194: ("SMSC system failure", True),
    195: ("invalid SME address (the destination number is not valid)", False),
    196: ("destination SME barred", False),
    197: ("SM rejected: duplicate message", False),
    198: ("TP-VPF not supported", False),
    199: ("TP-VP not supported", False),
    208: ("SIM SMS storage full", True),
    209: ("no SMS storage capability in the SIM", False),
    210: ("error in the mobile station", True),
    211: ("memory capacity exceeded", True),
    212: ("SIM application toolkit busy", True),
    213: ("SIM data download error", True),
    255: ("unspecified error cause", True),
    300: ("modem (ME) failure", True),
    301: ("SMS service of the modem is reserved", True),
    302: ("operation not allowed", False),
    303: ("operation not supported", False),
    304: ("invalid PDU mode parameter (the PDU was refused)", False),
    305: ("invalid text mode parameter", False),
    310: ("SIM not inserted", False),
    311: ("SIM PIN required", False),
    312: ("PH-SIM PIN required", False),
    313: ("SIM failure", False),
    314: ("SIM busy", True),
    315: ("SIM wrong", False),
    316: ("SIM PUK required", False),
    317: ("SIM PIN2 required", False),
    318: ("SIM PUK2 required", False),
    320: ("memory failure", True),
    321: ("invalid memory index", False),
    322: ("memory full", True),
    330: ("SMSC address unknown: set it with AT+CSCA or [modem] smsc in the config", False),
    331: ("no network service", True),
    332: ("network timeout", True),
    340: ("no +CNMA acknowledgement expected", False),
    500: ("unknown error (usually: not registered on the network / no signal)", True),
    512: ("manufacturer specific: message failed (often no network)", True),
    513: ("manufacturer specific: lower layer failure (radio link lost)", True),
    514: ("manufacturer specific: network timeout", True),
    515: ("device busy, try again", True),
    517: ("SIM not ready", True),
}

CME_ERRORS: dict[int, tuple[str, bool]] = {
    0: ("phone failure", True),
    1: ("no connection to phone", True),
    3: ("operation not allowed", False),
    4: ("operation not supported", False),
    5: ("PH-SIM PIN required", False),
    10: ("SIM not inserted", False),
    11: ("SIM PIN required: set [modem] pin in the config", False),
    12: ("SIM PUK required: the SIM is blocked, unlock it in a phone", False),
    13: ("SIM failure", False),
    14: ("SIM busy", True),
    15: ("SIM wrong", False),
    16: ("incorrect password (wrong SIM PIN: check [modem] pin before the SIM locks)", False),
    17: ("SIM PIN2 required", False),
    18: ("SIM PUK2 required", False),
    20: ("memory full", True),
    21: ("invalid index", False),
    22: ("not found", False),
    23: ("memory failure", True),
    30: ("no network service", True),
    31: ("network timeout", True),
    32: ("network not allowed, emergency calls only", True),
    100: ("unknown error", True),
    515: ("device busy, try again", True),
}


@dataclass(frozen=True, slots=True)
class AtError:
    """A final error answer: ``kind`` is ERROR, CME, CMS or UNSUPPORTED (Huawei's
    "COMMAND NOT SUPPORT"); ``code`` the number when the modem gave one; ``text`` the
    modem's own words when it answered in verbose form (AT+CMEE=2)."""

    kind: str
    code: int | None = None
    text: str = ""

    @property
    def reason(self) -> str:
        return describe(self.kind, self.code, self.text)

    @property
    def transient(self) -> bool:
        return is_transient(self.kind, self.code)

    def __str__(self) -> str:
        head = self.kind if self.code is None else f"+{self.kind} ERROR: {self.code}"
        if self.kind == "ERROR":
            head = "ERROR"
        return f"{head} ({self.reason})"


def describe(kind: str, code: int | None, text: str = "") -> str:
    """A sentence for an admin: the table's reason, the modem's own text, or what we know."""
    table = CMS_ERRORS if kind == "CMS" else CME_ERRORS if kind == "CME" else {}
    if code is not None and code in table:
        return table[code][0]
    if text:
        return text
    if kind == "UNSUPPORTED":
        return "command not supported by this modem"
    if kind == "ERROR":
        return "the modem answered ERROR without a code (AT+CMEE=1 was refused or reset)"
    return f"{kind} error {code} (not in the 3GPP table: manufacturer specific)"


def is_transient(kind: str, code: int | None) -> bool:
    """Unknown codes count as transient: a retry costs little, dropping a text costs a lead."""
    table = CMS_ERRORS if kind == "CMS" else CME_ERRORS if kind == "CME" else {}
    if code is not None and code in table:
        return table[code][1]
    return kind != "UNSUPPORTED"


# SIM problems (27.005 +CMS 310-318 but 314 "busy"; 27.007 +CME 5, 10-16): the modem cannot
# send anything until someone acts on the SIM. Not the text's fault: it waits for the SIM.
SIM_CMS = frozenset({310, 311, 312, 313, 315, 316})
SIM_CME = frozenset({5, 10, 11, 12, 13, 15, 16})
# ... and of those, "there is no SIM": the driver polls for its return and initialises again
SIM_ABSENT_CMS = frozenset({310})
SIM_ABSENT_CME = frozenset({10})


def is_sim_problem(error: AtError) -> bool:
    codes = SIM_CMS if error.kind == "CMS" else SIM_CME if error.kind == "CME" else frozenset()
    return error.code in codes


def is_sim_absent(error: AtError) -> bool:
    codes = (SIM_ABSENT_CMS if error.kind == "CMS" else SIM_ABSENT_CME if error.kind == "CME"
             else frozenset())
    return error.code in codes


class ModemError(TextbackError):
    """Anything the modem stack raises. ``transient``: trying again later can help."""

    transient = True


class CommandError(ModemError):
    """A command the modem answered with an error."""

    def __init__(self, command: str, error: AtError) -> None:
        super().__init__(f"{command}: {error}")
        self.command = command
        self.error = error
        self.transient = error.transient


class CommandTimeout(ModemError):
    """No final answer within the command's time limit: the modem may be hung."""

    def __init__(self, command: str, seconds: float) -> None:
        super().__init__(f"{command}: no answer within {seconds:g} s (modem not answering)")
        self.command = command
        self.seconds = seconds


class SimUnavailable(ModemError):
    """A send refused because of the SIM (not inserted, PIN, PUK, failure). Transient for
    the text: the modem is marked degraded, and the text waits for the SIM (or is handed
    to another sender), exactly as with a wrong PIN found at start."""

    def __init__(self, cause: CommandError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class SubmitUnconfirmed(ModemError):
    """The PDU and its Ctrl-Z were written but no answer came (timeout, or the port went):
    the network may have the text. Never resend it: it is recorded sent-unconfirmed."""

    transient = False

    def __init__(self, cause: ModemError) -> None:
        super().__init__(f"{cause}; the PDU was handed to the modem, so it may have gone: "
                         "recorded unconfirmed, not resent")
        self.cause = cause


class ModemLost(ModemError):
    """The port went away (USB unplug, re-enumeration) or was closed under a command."""


class PortError(ModemError):
    """The serial port could not be opened; the message names the fix."""

    def __init__(self, path: str, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.path = path
        self.transient = transient


def port_error(path: str, exc: BaseException) -> PortError:
    """Turn an open() failure into a sentence naming the fix."""
    code = getattr(exc, "errno", None)
    if code is None and exc.__cause__ is not None:
        code = getattr(exc.__cause__, "errno", None)
    text = str(exc)
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return PortError(
            path,
            f"{path}: permission denied. Add the service user to the dialout group "
            "(sudo usermod -aG dialout <user>, then log in again or restart the service).",
            transient=False,
        )
    if code == errno.EBUSY or "busy" in text.lower() or "lock" in text.lower():
        return PortError(
            path,
            f"{path}: port busy, another program holds it (usually ModemManager). "
            "Run `systemctl stop ModemManager` (and disable it), or add a udev rule "
            'with ENV{ID_MM_DEVICE_IGNORE}="1" for this modem.',
            transient=True,
        )
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
        return PortError(
            path,
            f"{path}: no such device. Is the modem plugged in? List /dev/serial/by-id/ "
            "and use the stable name from there.",
            transient=True,
        )
    return PortError(path, f"{path}: cannot open the port: {text}", transient=True)
