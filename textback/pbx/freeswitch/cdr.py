"""Calls that ended while textback was away, recovered from FreeSWITCH's own CDR.

The live tracker decides from ESL events; when the daemon or its Event Socket link was
down, the calls that rang and ended meanwhile never reached it. FreeSWITCH writes one CDR
row per channel when it hangs up (``mod_cdr_sqlite`` to a SQLite file, ``mod_cdr_csv`` to a
CSV file), expanding a template of the channel's variables; the template shipped in
dialplan/freeswitch/cdr_sqlite.conf.xml (and cdr_csv.conf.xml) writes the columns below.

The decision uses the customer's leg (the a-leg: inbound, on an external profile or
context, not ``sip_authorized``) exactly as the live tracker does: a person answered when
that leg was bridged (``bridge_epoch`` set); otherwise the call was missed, and why comes
from where it ended (``last_app`` voicemail, an IVR that answered without a bridge) and
``originate_disposition`` (NO_ANSWER, USER_BUSY, ORIGINATOR_CANCEL, ...). The b-legs'
rows are not needed. Sans-IO: rows in, outcomes out; the readers only read files.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from textback.errors import TextbackError
from textback.numbers import clean_caller_id, is_withheld_number, normalise_caller, to_e164
from textback.pbx.freeswitch.tracker import ABANDON, BUSY, NOANSWER, UNAVAILABLE
from textback.pbx.outcome import CallOutcome, Direction, Verdict
from textback.pbx.stream import TrackerConfig

# the shipped template's columns, in order (the CSV has no header line)
COLUMNS = ("uuid", "direction", "sofia_profile", "context", "sip_authorized",
           "caller_id_number", "caller_id_name", "destination_number", "start_uepoch",
           "answer_uepoch", "bridge_uepoch", "end_uepoch", "hangup_cause",
           "originate_disposition", "last_app", "voicemail_message_len", "originator")
REQUIRED = frozenset({"uuid", "direction", "caller_id_number", "destination_number",
                      "start_uepoch", "answer_uepoch", "bridge_uepoch", "end_uepoch",
                      "originate_disposition", "last_app"})
IVR_APPS = frozenset({"ivr", "play_and_get_digits", "playback", "read", "lua", "javascript"})

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


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1")


def decide_row(row: Row, config: TrackerConfig | None = None) -> CallOutcome | None:
    """One a-leg's CDR row as the call's outcome; None for a b-leg (it has an
    ``originator``: the a-leg's row decides the call) or a row without a start."""
    cfg = config or TrackerConfig()
    if (row.get("originator") or "").strip():
        return None
    start = _epoch(row, "start_uepoch")
    uuid = (row.get("uuid") or "").strip()
    if start is None or not uuid:
        return None
    end = _epoch(row, "end_uepoch") or start
    answered_at = _epoch(row, "answer_uepoch")
    bridged_at = _epoch(row, "bridge_uepoch")
    external = ((row.get("sofia_profile") or "") in cfg.external_profiles
                or (row.get("context") or "") in cfg.external_contexts)
    customer = (row.get("direction") or "").lower() == "inbound" and external \
        and not _truthy(row.get("sip_authorized"))
    raw = row.get("caller_id_number")
    region = cfg.default_region
    withheld = is_withheld_number(raw)
    caller = None if withheld else normalise_caller(raw, region)
    direction: Direction = "inbound" if customer else "internal"
    did = None
    voicemail_left = False
    ring_end = end
    verdict: Verdict
    if not customer:
        verdict, reason = "ignored", "internal"
    elif bridged_at is not None:
        verdict, reason, ring_end = "answered", "answered", bridged_at
        did = _did(row, region)
    else:
        did = _did(row, region)
        verdict = "missed"
        reason = _missed_reason(row, answered_at)
        if answered_at is not None:
            ring_end = answered_at  # voicemail or an IVR answered: the ringing ended there
        if reason == "voicemail":
            length = (row.get("voicemail_message_len") or "").strip()
            voicemail_left = bool(length) and length.strip("0:") != ""
    return CallOutcome(
        call=uuid, direction=direction, caller=caller, withheld=withheld, did=did,
        verdict=verdict, reason=reason, voicemail_left=voicemail_left,
        ring_s=max(0.0, ring_end - start), pbx="freeswitch", started_at=start, ended_at=end,
        caller_name=None if withheld else clean_caller_id(row.get("caller_id_name")),
        connected=bridged_at is not None, extra={"recovered": "cdr"})


def _did(row: Row, region: str | None) -> str | None:
    dest = row.get("destination_number")
    return to_e164(dest, region) or clean_caller_id(dest)


def _missed_reason(row: Row, answered_at: float | None) -> str:
    app = (row.get("last_app") or "").lower()
    disposition = (row.get("originate_disposition") or "").upper()
    if app == "voicemail":
        return "voicemail"
    if disposition in BUSY:
        return "busy"
    if disposition in UNAVAILABLE:
        return "unavailable"
    if disposition in ABANDON:
        return "abandon"
    if disposition in NOANSWER:
        return "noanswer"
    if answered_at is not None and (app in IVR_APPS or not disposition):
        return "ivr-abandon"
    cause = (row.get("hangup_cause") or "").upper()
    if cause in ABANDON:
        return "abandon"
    return "noanswer"


def decide_from_cdr(rows: Iterable[Row], config: TrackerConfig | None = None, *,
                    skip: frozenset[str] = frozenset()) -> list[CallOutcome]:
    """Every call of ``rows`` (a-legs only; b-legs are skipped), oldest first, except the
    call ids in ``skip``. Outcomes carry ``extra["recovered"] = "cdr"``."""
    out = [o for o in (decide_row(r, config) for r in rows)
           if o is not None and o.call not in skip]
    out.sort(key=lambda o: o.started_at or 0.0)
    return out


# ---------------------------------------------------------------- the two sources

def read_cdr_sqlite(path: Path, *, since: float, table: str = "cdr") -> list[dict[str, str]]:
    """Rows of mod_cdr_sqlite's table that ended at ``since`` or later (read-only)."""
    if not table.isidentifier():
        raise CdrError(f"CDR table name {table!r} is not a plain SQL identifier")
    if not path.exists():
        raise CdrError(f"CDR database {path} does not exist (is mod_cdr_sqlite loaded and "
                       "configured as in dialplan/freeswitch/cdr_sqlite.conf.xml?)")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error as exc:
        raise CdrError(f"CDR database {path}: {exc}") from exc
    try:
        con.row_factory = sqlite3.Row
        try:
            names = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            _check_columns(names, f"CDR table {table} in {path}")
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
        except sqlite3.Error as exc:
            raise CdrError(f"CDR database {path}: {exc}") from exc
    finally:
        con.close()
    out = [{k: ("" if v is None else str(v)) for k, v in dict(r).items()} for r in rows]
    return [r for r in out if (_epoch(r, "end_uepoch") or 0.0) >= since]


def read_cdr_csv(path: Path, *, since: float,
                 columns: Sequence[str] = COLUMNS) -> list[dict[str, str]]:
    """Rows of mod_cdr_csv's file (no header line; ``columns`` in the shipped order)."""
    _check_columns(list(columns), f"CDR CSV columns for {path}")
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            lines = list(csv.reader(f))
    except OSError as exc:
        raise CdrError(f"CDR CSV {path}: {exc.strerror or exc}") from exc
    out = []
    for n, line in enumerate(lines, 1):
        if not line:
            continue
        if len(line) != len(columns):
            raise CdrError(f"CDR CSV {path} line {n}: {len(line)} fields, expected "
                           f"{len(columns)} ({', '.join(columns)})")
        row = dict(zip(columns, line, strict=True))
        if (_epoch(row, "end_uepoch") or 0.0) >= since:
            out.append(row)
    return out


def _check_columns(names: Sequence[str], what: str) -> None:
    missing = sorted(REQUIRED - set(names))
    if missing:
        raise CdrError(f"{what} lacks the column(s) {', '.join(missing)}: configure it as "
                       "dialplan/freeswitch/cdr_sqlite.conf.xml does")
