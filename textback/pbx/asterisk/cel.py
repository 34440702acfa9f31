"""Calls that ended while textback was away, recovered from Asterisk's own CEL records.

The live tracker decides a call from the AMI events it sees. When the daemon was down (a
restart, a crash, an upgrade) or its AMI link was, the calls that rang and ended meanwhile
never reached it, and a missed caller would never be texted. Asterisk keeps its own account
of every channel in Channel Event Logging; the stock ``cel_sqlite3_custom`` module writes it
to a SQLite file and ``cel_custom`` to a CSV file (dialplan/asterisk/cel_sqlite3_custom.conf
and cel_custom.conf fix the columns this module reads).

A CEL record carries the facts the tracker decides on: CHAN_START (a channel exists, its
context and caller), ANSWER, BRIDGE_ENTER / BRIDGE_EXIT with the bridge's id, HANGUP with
the hang-up cause and the channel's DIALSTATUS, LINKEDID_END (the whole call is over). So
instead of a second rule book this module replays each finished call's records through the
same :class:`~textback.pbx.asterisk.tracker.CallTracker` as AMI events with the same meaning
(CHAN_START → Newchannel, ANSWER → Newstate Up, BRIDGE_ENTER → BridgeEnter, …): a person
answered exactly when the trunk channel shared a bridge with a non-trunk channel, here as
live. What CEL lacks is marked in the outcome: ``ring_s`` has CEL's time resolution
(microseconds with Asterisk's default eventtime, whole seconds when cel.conf sets a
``dateformat`` such as ``%F %T``), and a dial leg is known from
its CHAN_START alone. Sans-IO: rows in, outcomes out; the readers below only read files.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from textback.errors import TextbackError
from textback.pbx import records
from textback.pbx.asterisk.parser import AmiMessage
from textback.pbx.asterisk.tracker import CallTracker
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import StreamStats, TrackerConfig

# The columns, in the order the shipped cel_sqlite3_custom.conf / cel_custom.conf write them.
COLUMNS = ("eventtype", "eventtime", "cid_name", "cid_num", "cid_ani", "cid_dnid", "exten",
           "context", "channame", "appname", "appdata", "uniqueid", "linkedid", "peer",
           "extra")
REQUIRED = frozenset({"eventtype", "eventtime", "cid_num", "exten", "context", "channame",
                      "uniqueid", "linkedid"})


class CelError(TextbackError):
    """The CEL source cannot be read (missing, locked, or not in the shipped shape)."""


@dataclass(frozen=True, slots=True)
class CelRecord:
    """One CEL row; ``at`` is the event time as a Unix epoch."""

    eventtype: str
    at: float
    channame: str
    uniqueid: str
    linkedid: str
    context: str = ""
    exten: str = ""
    cid_num: str = ""
    cid_name: str = ""
    cid_dnid: str = ""
    appname: str = ""
    appdata: str = ""
    peer: str = ""
    extra: str = ""

    def extra_field(self, key: str) -> str:
        """A field of the JSON ``extra`` column ("" when absent or not JSON)."""
        if not self.extra.startswith("{"):
            return ""
        try:
            value = json.loads(self.extra).get(key, "")
        except (ValueError, AttributeError):
            return ""
        return "" if value is None else str(value)


def parse_eventtime(value: str) -> float:
    """CEL's ``eventtime``: a Unix epoch with microseconds (Asterisk's default when
    cel.conf sets no ``dateformat``, as the shipped one does), or a ``dateformat`` of
    ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (FreePBX sets ``%F %T``), which Asterisk writes in
    its local time: read in this host's local time zone (textback runs on the PBX's box)."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise CelError(f"CEL eventtime {value!r} is neither an epoch nor "
                       "'YYYY-MM-DD HH:MM:SS'") from exc
    return stamp.timestamp()  # a naive time is local time


def record_from_mapping(row: Mapping[str, str | None]) -> CelRecord:
    """A row of either source (column name → text) as a :class:`CelRecord`."""
    def get(key: str) -> str:
        value = row.get(key)
        return "" if value is None else str(value)

    return CelRecord(eventtype=get("eventtype"), at=parse_eventtime(get("eventtime")),
                     channame=get("channame"), uniqueid=get("uniqueid"),
                     linkedid=get("linkedid") or get("uniqueid"), context=get("context"),
                     exten=get("exten"), cid_num=get("cid_num"), cid_name=get("cid_name"),
                     cid_dnid=get("cid_dnid"), appname=get("appname"),
                     appdata=get("appdata"), peer=get("peer"), extra=get("extra"))


# ---------------------------------------------------------------- CEL → tracker events

def _headers_for(rec: CelRecord, ring: bool, facts: _CallFacts) -> Iterator[dict[str, str]]:
    """The AMI events that say what one CEL record says (see the module doc)."""
    base = {"Channel": rec.channame, "Uniqueid": rec.uniqueid, "Linkedid": rec.linkedid}
    kind = rec.eventtype
    if kind == "CHAN_START":
        yield {"Event": "Newchannel", **base, "ChannelState": "4" if ring else "0",
               "ChannelStateDesc": "Ring" if ring else "Down", "CallerIDNum": rec.cid_num,
               "CallerIDName": rec.cid_name, "Exten": rec.exten, "Context": rec.context}
        if not ring and not rec.channame.startswith("Local/"):
            # a channel the call created that is not a Local helper was dialled
            yield {"Event": "DialBegin", "DestChannel": rec.channame,
                   "DestUniqueid": rec.uniqueid, "DestLinkedid": rec.linkedid,
                   "DialString": rec.exten}
    elif kind == "ANSWER":
        yield {"Event": "Newstate", **base, "ChannelState": "6", "ChannelStateDesc": "Up"}
    elif kind in ("BRIDGE_ENTER", "BRIDGE_EXIT"):
        bridge = rec.extra_field("bridge_id")
        if bridge:
            yield {"Event": "BridgeEnter" if kind == "BRIDGE_ENTER" else "BridgeLeave",
                   **base, "BridgeUniqueid": bridge,
                   "BridgeTechnology": rec.extra_field("bridge_technology")}
    elif kind == "HANGUP":
        if ring:  # the caller's own channel: how the call ended
            yield from _caller_hangup(rec, base, facts)
        yield {"Event": "Hangup", **base, "Cause": rec.extra_field("hangupcause")}
    # every record also goes in as the CEL event it is: the tracker reads the VoiceMail
    # ANSWER and APP_START from it, as on a live link
    yield {"Event": "CEL", "EventName": kind, "Channel": rec.channame,
           "UniqueID": rec.uniqueid, "LinkedID": rec.linkedid, "Application": rec.appname,
           "AppData": rec.appdata, "EventTime": f"{rec.at:.6f}"}


@dataclass(slots=True)
class _CallFacts:
    """What one call's records say as a whole, which single records do not: it waited in
    a queue (a member leg runs AppQueue), voicemail answered it (an ANSWER in VoiceMail),
    and how its dial legs ended (each leg's HANGUP carries its own DIALSTATUS)."""

    queue: bool = False
    voicemail: bool = False
    leg_status: set[str] | None = None

    @classmethod
    def of(cls, recs: Sequence[CelRecord], first: str) -> _CallFacts:
        facts = cls(leg_status=set())
        for r in recs:
            if r.uniqueid != first and r.appname == "AppQueue":
                facts.queue = True
            if r.eventtype == "ANSWER" and r.appname == "VoiceMail" and r.uniqueid == first:
                facts.voicemail = True
            if r.eventtype == "HANGUP" and r.uniqueid != first:
                status = r.extra_field("dialstatus")
                if status and facts.leg_status is not None:
                    facts.leg_status.add(status)
        return facts


def _caller_hangup(rec: CelRecord, base: dict[str, str],
                   facts: _CallFacts) -> Iterator[dict[str, str]]:
    """The caller's channel's HANGUP record as the events the tracker needs before its
    Hangup: who hung up (``hangupsource`` is the channel itself when the caller did) and
    the Dial or Queue result."""
    by_caller = rec.extra_field("hangupsource") == rec.channame
    if facts.queue:
        yield {"Event": "QueueCallerJoin", **base, "Queue": "", "Position": "1"}
        if not by_caller:  # the dialplan moved on: the queue gave up
            yield {"Event": "VarSet", **base, "Variable": "QUEUESTATUS", "Value": "TIMEOUT"}
    if by_caller:
        yield {"Event": "HangupRequest", **base}
    status = rec.extra_field("dialstatus")
    if facts.voicemail or facts.queue or not status:
        return
    legs = facts.leg_status or set()
    if status == "CANCEL" and not by_caller:
        status = "NOANSWER"  # Dial gave up (its timeout, a forward's leg): not the caller
    elif status == "BUSY" and legs & {"CANCEL", "NOANSWER"}:
        status = "NOANSWER"  # one phone of the group was busy, another rang out
    yield {"Event": "VarSet", **base, "Variable": "DIALSTATUS", "Value": ""}
    yield {"Event": "VarSet", **base, "Variable": "DIALSTATUS", "Value": status}


def decide_from_cel(records: Iterable[CelRecord], config: TrackerConfig | None = None,
                    *, skip: frozenset[str] = frozenset()) -> list[CallOutcome]:
    """Every call whose records end in LINKEDID_END, decided as the live tracker would.

    ``skip``: linked ids already decided (the store's calls); their records are ignored.
    Calls with no LINKEDID_END yet are still in progress: the live link will see them.
    Outcomes carry ``extra["recovered"] = "cel"``.
    """
    by_call: dict[str, list[CelRecord]] = {}
    for rec in records:
        if rec.linkedid and rec.linkedid not in skip:
            by_call.setdefault(rec.linkedid, []).append(rec)
    finished = [recs for recs in by_call.values()
                if any(r.eventtype == "LINKEDID_END" for r in recs)]
    finished.sort(key=lambda recs: min(r.at for r in recs))
    out: list[CallOutcome] = []
    for recs in finished:
        tracker = CallTracker(config or TrackerConfig(), StreamStats())
        recs = sorted(recs, key=lambda r: r.at)  # stable: same-second rows keep file order
        facts = _CallFacts.of(recs, recs[0].linkedid)
        for rec in recs:
            ring = rec.uniqueid == rec.linkedid and rec.eventtype in ("CHAN_START", "HANGUP")
            for headers in _headers_for(rec, ring, facts):
                tracker.handle(AmiMessage.from_headers(headers), rec.at)
        for outcome in tracker.finish():
            outcome.extra["recovered"] = "cel"
            out.append(outcome)
    return out


# ---------------------------------------------------------------- the two sources

# Every record of each call with a record from :since on, selected in SQLite: the file is
# never rotated, and a year of records read into Python at every login took seconds
# (bench/recovery.py). eventtime is an epoch (Asterisk's default) or, with a dateformat
# of "%F %T", text that sorts as time does; whole_calls() then applies the exact bound.
_CALL_ID = "coalesce(nullif(linkedid, ''), uniqueid)"
_RECENT_CALLS = (
    f"SELECT * FROM {{table}} WHERE {_CALL_ID} IN (SELECT {_CALL_ID} FROM {{table}} "
    "WHERE CASE WHEN instr(eventtime, '-') = 0 THEN CAST(eventtime AS REAL) >= :since "
    "ELSE eventtime >= :since_text END)")


def read_cel_sqlite(path: Path, *, since: float, table: str = "cel") -> list[CelRecord]:
    """The rows of every call in ``cel_sqlite3_custom``'s table with a record from
    ``since`` on (read-only, never locks the PBX out: textback.pbx.records)."""
    rows = records.read_sqlite(
        path, table=table, query=_RECENT_CALLS, params={
            "since": since,
            "since_text": dt.datetime.fromtimestamp(max(since, 0.0)).strftime(
                "%Y-%m-%d %H:%M:%S")},
        required=REQUIRED, error=CelError, kind="CEL",
        config_hint="dialplan/asterisk/cel_sqlite3_custom.conf")
    return whole_calls(_records(rows, f"CEL database {path}"), since)


def read_cel_csv(path: Path, *, since: float,
                 columns: Sequence[str] = COLUMNS) -> list[CelRecord]:
    """The rows of every call in ``cel_custom``'s CSV with a record from ``since`` on (no
    header line; ``columns`` in the shipped order; a line of the wrong shape is skipped:
    textback.pbx.records)."""
    rows = records.read_csv(path, columns=columns, required=REQUIRED, error=CelError,
                            kind="CEL", config_hint="dialplan/asterisk/cel_custom.conf")
    return whole_calls(_records(rows, f"CEL CSV {path}"), since)


def _records(rows: Iterable[Mapping[str, str | None]], what: str) -> list[CelRecord]:
    """The rows as records. A row that cannot be one (a line Asterisk was still writing
    when we read, an eventtime in no known form) is skipped: it costs at most its own
    call, never the others; a source with no good row at all is not CEL as shipped."""
    out: list[CelRecord] = []
    first_bad: CelError | None = None
    for row in rows:
        try:
            out.append(record_from_mapping(row))
        except CelError as exc:
            first_bad = first_bad or exc
    if not out and first_bad is not None:
        raise CelError(f"{what}: {first_bad}")
    return out


def whole_calls(records: list[CelRecord], since: float) -> list[CelRecord]:
    """Every record of each call that has any record from ``since`` on: a call that was
    ringing at ``since`` needs its earlier records too (its trunk channel's CHAN_START
    carries the caller and the DID)."""
    recent = {r.linkedid for r in records if r.at >= since}
    return [r for r in records if r.linkedid in recent]
