"""Calls that ended while textback was away, recovered from FreeSWITCH's own CDR.

The live tracker decides from ESL events; when the daemon or its Event Socket link was
down, the calls that rang and ended meanwhile never reached it. FreeSWITCH writes one CDR
row per channel when it hangs up (``mod_cdr_sqlite`` to a SQLite file, ``mod_cdr_csv`` to a
CSV file), expanding a template of the channel's variables; the template shipped in
dialplan/freeswitch/cdr_sqlite.conf.xml (and cdr_csv.conf.xml) writes the columns below.

The decision is the live tracker's on the same facts, from the customer's leg (the a-leg:
inbound, on an external profile or context, not ``sip_authorized``): a person answered
when that leg was bridged (``bridge_uepoch``) or its ``originate_disposition`` is SUCCESS;
otherwise why comes from where it ended (``last_app`` voicemail, a queue, an IVR that
answered without a bridge), FreeSWITCH's documented originate dispositions (NO_ANSWER,
USER_BUSY, ORIGINATOR_CANCEL, USER_NOT_REGISTERED, ...) and the caller's own CANCEL
(``sip_hangup_disposition = recv_cancel``). The b-legs' rows (``legs="ab"`` in the shipped
templates) are optional: they tell an outbound staff call from an internal one and when
the last ringing leg gave up. Sans-IO: rows in, outcomes out; the readers only read files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from textback.errors import TextbackError
from textback.numbers import clean_caller_id, is_withheld_number, normalise_caller
from textback.pbx import records
from textback.pbx.freeswitch.tracker import (
    ABANDON,
    BUSY,
    NOANSWER,
    QUEUE_TIMEOUT_REASONS,
    UNAVAILABLE,
)
from textback.pbx.outcome import CallOutcome, Direction, Verdict
from textback.pbx.stream import TrackerConfig

# the shipped template's columns, in order (the CSV has no header line); each is the
# channel variable of the same name, expanded when the channel hangs up
COLUMNS = ("uuid", "direction", "sofia_profile", "context", "sip_authorized",
           "caller_id_number", "caller_id_name", "destination_number", "start_uepoch",
           "answer_uepoch", "bridge_uepoch", "end_uepoch", "hangup_cause",
           "originate_disposition", "last_app", "voicemail_message_len", "originator",
           "sip_hangup_disposition", "cc_queue", "cc_cancel_reason")
REQUIRED = frozenset({"uuid", "direction", "caller_id_number", "destination_number",
                      "start_uepoch", "answer_uepoch", "bridge_uepoch", "end_uepoch",
                      "originate_disposition", "last_app", "originator"})

Row = Mapping[str, str | None]


class CdrError(TextbackError):
    """The CDR source cannot be read (missing, locked, or not in the shipped shape)."""


def _epoch(row: Row, key: str) -> float | None:
    """A ``*_uepoch`` column (microseconds; 0 or empty: never happened) as seconds."""
    raw = (row.get(key) or "").strip()
    if not raw or raw == "0":
        return None
    try:
        return int(raw) / 1e6
    except ValueError:
        return None


def _text(row: Row, key: str) -> str:
    return (row.get(key) or "").strip()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1")


def decide_row(row: Row, config: TrackerConfig | None = None,
               legs: Sequence[Row] = ()) -> CallOutcome | None:
    """One call from its a-leg's CDR row (and its b-legs' rows, ``legs``, when the source
    has them); None for a b-leg (it names its ``originator``) or a row without a start.

    The rules are the live tracker's (textback.pbx.freeswitch.tracker), on the same
    facts: a person answered when the a-leg was bridged (``bridge_uepoch``) or the
    originate disposition is SUCCESS; otherwise voicemail (``last_app``), a queue
    (``cc_queue``), then the originate disposition (FreeSWITCH's documented values:
    NO_ANSWER, USER_BUSY, ORIGINATOR_CANCEL, USER_NOT_REGISTERED, ...; the caller's own
    CANCEL, ``sip_hangup_disposition = recv_cancel``, is an abandon), then a PBX answer
    without a bridge (an IVR), then the a-leg's hang-up cause.
    """
    cfg = config or TrackerConfig()
    if _text(row, "originator"):
        return None
    start = _epoch(row, "start_uepoch")
    uuid = _text(row, "uuid")
    if start is None or not uuid:
        return None
    end = _epoch(row, "end_uepoch") or start
    bridged_at = _epoch(row, "bridge_uepoch")
    profile, context = _text(row, "sofia_profile"), _text(row, "context")
    external = profile in cfg.external_profiles or context in cfg.external_contexts
    call_direction = _text(row, "direction").lower()
    region = cfg.default_region
    raw = row.get("caller_id_number")
    withheld = is_withheld_number(raw)
    caller = None if withheld else normalise_caller(raw, region)
    person = bridged_at is not None or _text(row, "originate_disposition").upper() == "SUCCESS"
    ext_out = [b for b in legs if _text(b, "direction").lower() == "outbound"
               and _text(b, "sofia_profile") in cfg.external_profiles]
    did = callee = None
    voicemail_left = False
    connected = person
    direction: Direction
    verdict: Verdict
    if call_direction != "outbound" and external and not _truthy(row.get("sip_authorized")):
        direction = "inbound"
        did = normalise_caller(_text(row, "destination_number") or None, region)
        verdict, reason, ring_end = _inbound(row, legs, person, start, end)
        if reason == "voicemail":
            voicemail_left = _text(row, "voicemail_message_len").replace(":", "").strip("0") != ""
    else:
        direction = "outbound" if ext_out or (
            call_direction == "outbound" and profile in cfg.external_profiles) else "internal"
        verdict, reason = "ignored", direction
        ring_end = (bridged_at or end) if person else end
        if direction == "outbound":
            dest = _text(ext_out[0], "destination_number") if ext_out else _text(
                row, "destination_number")
            callee = normalise_caller(dest or None, region)
            connected = any(_epoch(b, "answer_uepoch") is not None for b in ext_out) or (
                person and not ext_out)
    return CallOutcome(
        call=uuid, direction=direction, caller=caller, withheld=withheld, did=did,
        verdict=verdict, reason=reason, voicemail_left=voicemail_left,
        ring_s=max(0.0, ring_end - start), pbx="freeswitch", started_at=start, ended_at=end,
        caller_name=None if withheld else clean_caller_id(row.get("caller_id_name")),
        callee=callee, connected=connected, extra={"recovered": "cdr"})


def _inbound(row: Row, legs: Sequence[Row], person: bool, start: float,
             end: float) -> tuple[Verdict, str, float]:
    """(verdict, reason, end of the ringing) of a customer's call, as the tracker's
    ``_inbound_reason`` decides it."""
    answered_at = _epoch(row, "answer_uepoch")
    if person:
        return "answered", "answered", _epoch(row, "bridge_uepoch") or answered_at or end
    app = _text(row, "last_app").lower()
    if app == "voicemail" or _text(row, "voicemail_message_len"):
        return "missed", "voicemail", answered_at or end
    if app == "callcenter" or _text(row, "cc_queue"):
        timeout = _text(row, "cc_cancel_reason") in QUEUE_TIMEOUT_REASONS
        return "missed", "queue-timeout" if timeout else "queue-abandon", end
    disposition = _text(row, "originate_disposition").upper()
    if not disposition:
        # the b-legs tell how the bridge ended when the a-leg does not (LOSE_RACE: a
        # losing leg of a ring group, says nothing)
        causes = {_text(b, "hangup_cause").upper() for b in legs} - {"", "LOSE_RACE"}
        for group in (BUSY, ABANDON, NOANSWER, UNAVAILABLE):
            if causes & group:
                disposition = min(causes & group)
                break
    ends = [e for e in (_epoch(b, "end_uepoch") for b in legs) if e is not None and e <= end]
    ring_end = max(ends) if ends else end
    if disposition:
        if _text(row, "sip_hangup_disposition") == "recv_cancel" and \
                disposition not in BUSY | UNAVAILABLE:
            return "missed", "abandon", ring_end
        for group, reason in ((BUSY, "busy"), (UNAVAILABLE, "unavailable"),
                              (ABANDON, "abandon")):
            if disposition in group:
                return "missed", reason, ring_end
        return "missed", "noanswer", ring_end
    if answered_at is not None:
        return "missed", "ivr-abandon", end
    cause = _text(row, "hangup_cause").upper()
    if cause in BUSY:
        return "missed", "busy", end
    if cause in UNAVAILABLE:
        return "missed", "unavailable", end
    if cause in NOANSWER and _text(row, "sip_hangup_disposition") != "recv_cancel":
        return "missed", "noanswer", end
    return "missed", "abandon", end


def decide_from_cdr(rows: Iterable[Row], config: TrackerConfig | None = None, *,
                    skip: frozenset[str] = frozenset()) -> list[CallOutcome]:
    """Every call of ``rows``, oldest first, except the call ids (a-leg uuids) in ``skip``;
    b-leg rows join their a-leg's (``originator``). Outcomes carry
    ``extra["recovered"] = "cdr"``."""
    rows = list(rows)
    legs: dict[str, list[Row]] = {}
    for r in rows:
        parent = _text(r, "originator")
        if parent:
            legs.setdefault(parent, []).append(r)
    out = []
    for r in rows:
        if _text(r, "uuid") in skip:
            continue
        outcome = decide_row(r, config, legs.get(_text(r, "uuid"), ()))
        if outcome is not None:
            out.append(outcome)
    out.sort(key=lambda o: o.started_at or 0.0)
    return out


# ---------------------------------------------------------------- the two sources

# The rows of each call with a row that ended from :since on (microseconds), selected in
# SQLite so a long history is not read into Python at every login; a b-leg belongs to
# the call its ``originator`` names. whole_calls() applies the same bound to the CSV.
_CALL_OF = "coalesce(nullif(originator, ''), uuid)"
_RECENT_CALLS = (
    f"SELECT * FROM {{table}} WHERE {_CALL_OF} IN (SELECT {_CALL_OF} FROM {{table}} "
    "WHERE CAST(end_uepoch AS INTEGER) >= :since)")


def read_cdr_sqlite(path: Path, *, since: float, table: str = "cdr") -> list[dict[str, str]]:
    """The rows of every call in mod_cdr_sqlite's table with a row that ended at
    ``since`` or later (read-only: textback.pbx.records)."""
    rows = records.read_sqlite(
        path, table=table, query=_RECENT_CALLS, params={"since": int(since * 1e6)},
        required=REQUIRED, error=CdrError, kind="CDR",
        config_hint="dialplan/freeswitch/cdr_sqlite.conf.xml")
    return whole_calls(rows, since)


def read_cdr_csv(path: Path, *, since: float,
                 columns: Sequence[str] = COLUMNS) -> list[dict[str, str]]:
    """Rows of mod_cdr_csv's file (no header line; ``columns`` in the shipped order).

    mod_cdr_csv pastes values into its template unescaped, so a caller name with a quote
    garbles that one line: such lines are skipped (the rest still recover); a file with
    no line of the shipped shape is not ours (textback.pbx.records)."""
    rows = records.read_csv(path, columns=columns, required=REQUIRED, error=CdrError,
                            kind="CDR", config_hint="dialplan/freeswitch/cdr_csv.conf.xml")
    return whole_calls(rows, since)


def whole_calls(rows: list[dict[str, str]], since: float) -> list[dict[str, str]]:
    """The rows of each call with a row that ended at ``since`` or later: a b-leg that
    gave up earlier still joins its a-leg (and an a-leg its b-legs)."""
    recent = {_text(r, "originator") or _text(r, "uuid") for r in rows
              if (_epoch(r, "end_uepoch") or 0.0) >= since}
    return [r for r in rows if (_text(r, "originator") or _text(r, "uuid")) in recent]
