"""From a FastAGI request (and the variables we asked for) to a :class:`CallOutcome`.

The dialplan runs the trigger once per inbound call when its Dial ends or the channel hangs
up (dialplan/asterisk/extensions_textback.conf), so the channel's DIALSTATUS is the verdict:

===========  ==========  ===========
DIALSTATUS   verdict     reason
===========  ==========  ===========
ANSWER       answered    answered
NOANSWER     missed      noanswer
BUSY         missed      busy
CHANUNAVAIL  missed      unavailable
CONGESTION   missed      unavailable
CANCEL       missed      abandon     (the caller hung up while it rang)
===========  ==========  ===========

With no Dial (empty DIALSTATUS) the queue and voicemail results decide: QUEUESTATUS TIMEOUT
→ queue-timeout, any other queue exit → queue-abandon, VMSTATUS SUCCESS → voicemail (message
left). Anything else is "ignored" with reason ``no-dialstatus``: only the AMI path can tell
an IVR hang-up from an internal test call, and a text sent on a guess is worse than none.

Where each value comes from, first found wins: the URL query (``?status=…&did=…``), the AGI
arguments in the order of the shared captures (``agi_arg_1`` DIALSTATUS, ``agi_arg_2`` caller
number, ``agi_arg_3`` DID), the variables read with GET VARIABLE, the AGI environment.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from textback.numbers import clean_caller_id, is_withheld_number, normalise_caller, to_e164
from textback.pbx.asterisk.agi_session import AgiRequest
from textback.pbx.outcome import CallOutcome, Verdict

DIALSTATUS_VERDICTS: dict[str, tuple[Verdict, str]] = {
    "ANSWER": ("answered", "answered"),
    "NOANSWER": ("missed", "noanswer"),
    "BUSY": ("missed", "busy"),
    "CHANUNAVAIL": ("missed", "unavailable"),
    "CONGESTION": ("missed", "unavailable"),
    "CANCEL": ("missed", "abandon"),
}

# Query keys (short, so the dialplan line stays readable) → what they carry.
Q_STATUS, Q_CALLER, Q_DID, Q_PRES = "status", "caller", "did", "pres"
Q_QUEUE, Q_VM, Q_RING, Q_LINKEDID = "queue", "vm", "ring", "linkedid"

# Variables the server may read with GET VARIABLE when the dialplan did not pass them.
VAR_DIALSTATUS = "DIALSTATUS"
VAR_NUMPRES = "CALLERID(num-pres)"
VAR_LINKEDID = "CHANNEL(linkedid)"
VAR_QUEUESTATUS = "QUEUESTATUS"
VAR_VMSTATUS = "VMSTATUS"

_MAX_NAME = 64


def first(*values: str | None) -> str | None:
    """The first value that is not None and not blank."""
    for v in values:
        if v is not None and v.strip() != "":
            return v.strip()
    return None


def dialstatus_of(request: AgiRequest, variables: Mapping[str, str | None]) -> str | None:
    args = request.args
    return first(request.query.get(Q_STATUS), args[0] if args else None,
                 variables.get(VAR_DIALSTATUS))


def presentation_withheld(num_pres: str | None, callingpres: str | None) -> bool:
    """Presentation says hide the number: ``CALLERID(num-pres)`` "prohib…" / "unavailable",
    or ``agi_callingpres`` (the Q.931 octet) with the restricted (0x20) or unavailable (0x40)
    bits."""
    if num_pres:
        p = num_pres.strip().lower()
        if p.startswith("prohib") or p == "unavailable":
            return True
        if p.startswith("allowed"):
            return False
        if p.isdigit():
            return (int(p) & 0x60) in (0x20, 0x40)
    if callingpres and callingpres.strip().isdigit():
        return (int(callingpres.strip()) & 0x60) in (0x20, 0x40)
    return False


def clean_name(raw: str | None) -> str | None:
    """The caller name without control, format or line-separator characters, at most 64."""
    if raw is None:
        return None
    s = "".join(ch for ch in raw if unicodedata.category(ch)[0] not in "CZ" or ch == " ")
    s = " ".join(s.split())[:_MAX_NAME]
    if s.lower() in {"", "<unknown>", "unknown", "anonymous"}:
        return None
    return s


def _float(raw: str | None) -> float:
    try:
        value = float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0
    return value if value >= 0 and value == value and value != float("inf") else 0.0


def build_outcome(
    request: AgiRequest,
    variables: Mapping[str, str | None],
    *,
    ended_at: float | None,
    default_region: str | None = None,
) -> CallOutcome:
    """The outcome of the call this FastAGI request reports (see the module docstring)."""
    q = request.query
    args = request.args
    status_raw = dialstatus_of(request, variables)
    status = (status_raw or "").upper()
    voicemail_left = (first(q.get(Q_VM), variables.get(VAR_VMSTATUS)) or "").upper() == "SUCCESS"
    queue = (first(q.get(Q_QUEUE), variables.get(VAR_QUEUESTATUS)) or "").upper()
    verdict: Verdict
    if status in DIALSTATUS_VERDICTS:
        verdict, reason = DIALSTATUS_VERDICTS[status]
        if verdict == "missed" and voicemail_left:
            reason = "voicemail"
    elif queue == "TIMEOUT":
        verdict, reason = "missed", "queue-timeout"
    elif queue:
        verdict, reason = "missed", "queue-abandon"
    elif voicemail_left:
        verdict, reason = "missed", "voicemail"
    else:
        verdict, reason = "ignored", "no-dialstatus" if not status else "unknown-dialstatus"

    raw_caller = first(q.get(Q_CALLER), args[1] if len(args) > 1 else None,
                       request.get("callerid"))
    withheld = is_withheld_number(raw_caller) or presentation_withheld(
        first(q.get(Q_PRES), variables.get(VAR_NUMPRES)), request.get("callingpres")
    )
    caller = None if withheld else normalise_caller(raw_caller, default_region)
    raw_did = first(q.get(Q_DID), args[2] if len(args) > 2 else None, request.get("dnid"))
    did = None
    if raw_did is not None and raw_did.lower() not in {"unknown", "s"}:
        did = to_e164(raw_did, default_region) or clean_caller_id(raw_did)
    call = first(q.get(Q_LINKEDID), variables.get(VAR_LINKEDID), request.get("uniqueid")) or ""
    extra: dict[str, object] = {"trigger": "fastagi"}
    if status_raw is not None:
        extra["dialstatus"] = clean_caller_id_like(status_raw)
    channel = request.get("channel")
    if channel:
        extra["channel"] = clean_caller_id_like(channel, keep="/-.@_:")
    return CallOutcome(
        call=clean_caller_id_like(call, keep="._-"),
        direction="inbound",
        caller=caller,
        withheld=withheld,
        did=did,
        verdict=verdict,
        reason=reason,
        voicemail_left=voicemail_left,
        ring_s=_float(q.get(Q_RING)),
        pbx="asterisk",
        ended_at=ended_at,
        caller_name=None if withheld else clean_name(request.get("calleridname")),
        connected=verdict == "answered",
        extra=extra,
    )


def clean_caller_id_like(raw: str, keep: str = "") -> str:
    """Letters, digits and the characters in ``keep`` only, at most 128: identifiers from
    the PBX (uniqueids, channel names, statuses) reach logs and JSON, never raw bytes."""
    return "".join(ch for ch in raw if (ch.isascii() and ch.isalnum()) or ch in keep)[:128]
