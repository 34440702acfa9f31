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


# ---------------------------------------------------------------- after the Ctrl-Z (issue 12)
# Once a PDU and its Ctrl-Z are written, the network may have the text. An answer can then
# only PROVE that it did not go; where it does not, a second copy would reach the customer.
# So: a numeric +CMS ERROR listed here as RETRY (nothing went; this modem may get it through
# later) or REJECTED (nothing went; this modem cannot send it, the next sender may) lets the
# text go again. Every other ending - an unlisted code, a bare ERROR, +CME ERROR, COMMAND NOT
# SUPPORT, a verbose +CMS ERROR text, a stray OK, garbage, no answer, the port gone - is
# UNCONFIRMED: recorded sent-unconfirmed and never resent. This table is the single source
# of truth; docs/modem.md shows it (``submit_table_markdown``; a test keeps the two equal).

RETRY, REJECTED, UNCONFIRMED = "retry", "rejected", "unconfirmed"

SUBMIT_SOURCES: dict[str, str] = {
    "27.005": "3GPP TS 27.005 §3.2.5 (+CMS ERROR values: 0-127 from TS 24.011 E.2, 128-255 "
              "from TS 23.040 §9.2.3.22, 300-340 ME/TA errors, 500 unknown, 512- "
              "manufacturer specific) and §3.5.1 (+CMGS ends in +CMS ERROR when sending "
              "fails in the network or the ME)",
    "24.011": "3GPP TS 24.011 §8.2.5.4 (an RP-Cause travels only in RP-ERROR, \"the negative "
              "result of a RP-DATA message transfer attempt\") and Annex E.2 (the meaning of "
              "each mobile-originating cause)",
    "23.040": "3GPP TS 23.040 §9.2.3.22 (TP-FCS: why the service centre refused the "
              "SMS-SUBMIT, returned in the SMS-SUBMIT-REPORT of an RP-ERROR)",
    "23.540": "3GPP TS 23.540 (MO SMS over the service-based interface): no answer in time "
              "from the SMS-IWMSC is sent to the phone as RP-ERROR cause 38, a service "
              "centre in congestion as cause 42; TS 23.040 §11 likewise maps a timer expiry "
              "or lower-layer failure to cause 38. So 38 may follow a text the centre took",
    "nokia": "Nokia 6090 AT Command Set, +CMS ERROR kinds for +CMGC (its other command "
             "that sends to the network): 0-127 \"RP layer cause value from network\", "
             "128-255 \"TP layer cause value from network\", 304 PDU of invalid format, 330 "
             "no SMSC address, 331 no network service",
    "telit": "Telit HE910 family user manual, SMS chapter, responses to +CMGS: 41 \"may "
             "be that the device is not registered\", 42 \"network congestion: retry "
             "later\", 331 \"no network service\", 1 unassigned number, 96 mandatory "
             "information missing",
    "sim": "3GPP TS 31.102 (EF IMSI is read only after PIN verification) and TS 27.007 "
           "§8.3: without a present, unlocked SIM the ME has no identity to register with, "
           "so nothing can be transmitted",
    "siemens": "Siemens MC55 AT Command Set V01.05 §12.7 (AT+CMGS): a send that timed out "
               "ends in \"+CMS ERROR: Unknown error\" (500)",
    "vendor": "manufacturer-specific range (27.005 §3.2.5): meanings differ between vendors "
              "(Wavecom 512 \"MM establishment failure\"; Multi-Tech/Wavecom 513 \"lower layer "
              "failure (for SMS)\", i.e. the radio link dropped mid-transfer)",
}

# code -> (outcome, why, sources)
SUBMIT_CMS: dict[int, tuple[str, str, str]] = {
    1: (REJECTED, "the network refused it: number not assigned", "24.011 nokia telit"),
    8: (REJECTED, "the network refused it: operator barring", "24.011 nokia"),
    10: (REJECTED, "the network refused it: call barred", "24.011 nokia"),
    21: (REJECTED, "the network refused it: transfer rejected", "24.011 nokia"),
    27: (RETRY, "the network could not reach the destination: it did not go", "24.011 nokia"),
    28: (REJECTED, "the network refused it: unidentified subscriber", "24.011 nokia"),
    29: (REJECTED, "the network refused it: facility rejected", "24.011 nokia"),
    30: (REJECTED, "the network refused it: unknown subscriber", "24.011 nokia"),
    38: (UNCONFIRMED, "also what a timeout towards the service centre is reported as",
         "23.540 24.011"),
    41: (RETRY, "temporary failure: 24.011 E.2 says another attempt may be made at once",
         "24.011 nokia telit"),
    42: (RETRY, "congestion: the network could not serve it", "24.011 23.540 telit"),
    47: (RETRY, "resources unavailable: the network could not serve it", "24.011 nokia"),
    50: (REJECTED, "the network refused it: SMS not subscribed", "24.011 nokia"),
    69: (REJECTED, "the network refused it: facility not implemented", "24.011 nokia"),
    81: (UNCONFIRMED, "the network saw a transfer reference not in use: out of step, a copy "
         "may have gone", "24.011"),
    95: (REJECTED, "the network refused the message as invalid", "24.011 nokia"),
    96: (REJECTED, "the network refused the message: mandatory information invalid",
         "24.011 nokia telit"),
    97: (REJECTED, "the network refused the message type", "24.011 nokia"),
    98: (UNCONFIRMED, "protocol state mismatch: out of step, a copy may have gone", "24.011"),
    99: (REJECTED, "the network refused an information element", "24.011 nokia"),
    111: (UNCONFIRMED, "protocol error, unspecified: no proof either way", "24.011"),
    127: (UNCONFIRMED, "interworking, unspecified: no proof either way", "24.011"),
    128: (REJECTED, "the service centre refused it (TP-PID)", "23.040 nokia"),
    129: (REJECTED, "the service centre refused it (TP-PID)", "23.040 nokia"),
    130: (REJECTED, "the service centre refused it (TP-PID)", "23.040 nokia"),
    143: (REJECTED, "the service centre refused it (TP-PID)", "23.040 nokia"),
    144: (REJECTED, "the service centre refused it (TP-DCS)", "23.040 nokia"),
    145: (REJECTED, "the service centre refused it (TP-DCS)", "23.040 nokia"),
    159: (REJECTED, "the service centre refused it (TP-DCS)", "23.040 nokia"),
    160: (REJECTED, "the service centre refused it (command)", "23.040 nokia"),
    161: (REJECTED, "the service centre refused it (command)", "23.040 nokia"),
    175: (REJECTED, "the service centre refused it (command)", "23.040 nokia"),
    176: (REJECTED, "the service centre refused it: TPDU not supported", "23.040 nokia"),
    192: (RETRY, "the service centre was busy and refused it", "23.040 nokia"),
    193: (REJECTED, "the service centre refused it: no subscription", "23.040 nokia"),
    194: (RETRY, "the service centre failed and refused it", "23.040 nokia"),
    195: (REJECTED, "the service centre refused it: invalid destination address",
          "23.040 nokia"),
    196: (REJECTED, "the service centre refused it: destination barred", "23.040 nokia"),
    197: (UNCONFIRMED, "the service centre already holds this message: a copy went",
          "23.040"),
    198: (REJECTED, "the service centre refused it: TP-VPF not supported", "23.040 nokia"),
    199: (REJECTED, "the service centre refused it: TP-VP not supported", "23.040 nokia"),
    255: (UNCONFIRMED, "unspecified: no proof either way", "23.040"),
    300: (UNCONFIRMED, "ME failure: no proof either way", "27.005"),
    301: (UNCONFIRMED, "SMS service of the ME reserved: no proof either way after the PDU",
          "27.005"),
    302: (REJECTED, "the ME did not carry the command out: operation not allowed", "27.005"),
    303: (REJECTED, "the ME did not carry the command out: operation not supported",
          "27.005"),
    304: (REJECTED, "the ME refused the PDU before sending it", "27.005 nokia"),
    305: (REJECTED, "the ME refused the text-mode parameters", "27.005"),
    310: (RETRY, "no SIM: nothing can be transmitted (the text waits for the SIM)",
          "27.005 sim"),
    311: (RETRY, "SIM PIN required: nothing can be transmitted", "27.005 sim"),
    312: (RETRY, "PH-SIM PIN required: nothing can be transmitted", "27.005 sim"),
    313: (RETRY, "SIM failure: nothing can be transmitted", "27.005 sim"),
    314: (UNCONFIRMED, "SIM busy: no proof either way after the PDU", "27.005"),
    315: (RETRY, "wrong SIM: nothing can be transmitted", "27.005 sim"),
    316: (RETRY, "SIM PUK required: nothing can be transmitted", "27.005 sim"),
    330: (REJECTED, "no SMSC address: the ME had nowhere to send it", "27.005 nokia telit"),
    331: (RETRY, "no network service: nothing could be transmitted", "27.005 nokia telit"),
    332: (UNCONFIRMED, "network timeout: sent, no acknowledgement came", "27.005"),
    500: (UNCONFIRMED, "unknown error: also what a timed-out send ends in", "27.005 siemens"),
    512: (UNCONFIRMED, "manufacturer specific: meanings differ", "vendor"),
    513: (UNCONFIRMED, "lower layer failure: the link dropped mid-transfer", "vendor"),
    514: (UNCONFIRMED, "manufacturer specific: network timeout", "vendor"),
    515: (UNCONFIRMED, "manufacturer specific: meanings differ", "vendor"),
    517: (UNCONFIRMED, "manufacturer specific: meanings differ", "vendor"),
}


def after_submit(error: AtError) -> str:
    """What an error answer to a PDU whose Ctrl-Z was written proves: RETRY, REJECTED or
    UNCONFIRMED. Only a numeric +CMS ERROR listed in ``SUBMIT_CMS`` proves that nothing
    went; any other answer (and any code not listed) is UNCONFIRMED."""
    if error.kind == "CMS" and error.code is not None and error.code in SUBMIT_CMS:
        return SUBMIT_CMS[error.code][0]
    return UNCONFIRMED


def submit_table_markdown() -> str:
    """The table of docs/modem.md "After the Ctrl-Z", generated from ``SUBMIT_CMS``."""
    rows = ["| +CMS ERROR | after the Ctrl-Z | why | sources |", "|---|---|---|---|"]
    for code, (outcome, why, sources) in sorted(SUBMIT_CMS.items()):
        rows.append(f"| {code} | {outcome} | {why} | {', '.join(sources.split())} |")
    rows.append("| any other code, ERROR, +CME ERROR, COMMAND NOT SUPPORT, verbose text, "
                "stray OK, garbage, no answer, port lost | unconfirmed | no proof that "
                "nothing went | 27.005 |")
    rows += ["", "Sources:", ""]
    rows += [f"- **{key}**: {text}" for key, text in SUBMIT_SOURCES.items()]
    return "\n".join(rows) + "\n"


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
