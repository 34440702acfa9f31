"""``CallStart``: what a tracker knew about an inbound call still in progress.

Why it exists: a PBX only tells a listener where a channel is *now*. After the daemon is
killed mid-call and restarted, Asterisk's ``CoreShowChannel`` reports the trunk channel in
``route-direct``/``s``, not in the trunk context on the DID it arrived on, so a tracker that
starts from nothing judges the call internal, or inbound with no DID, and never texts it.
So the tracker reports the facts the moment it classifies a call as inbound from the trunk
(and again whenever the evidence of what became of it changes); the daemon keeps them in
the store (``open_calls``) until the call's verdict is recorded, and seeds a restarted
tracker with them before it connects.

Plain, immutable data with a JSON form (``to_record`` / ``from_record``) so the store needs
no knowledge of the tracker. The ``progress`` fields are the tracker's own evidence, named
as in ``ami_tracker._Call``; a tracker that cannot use one ignores it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class CallProgress:
    """The evidence seen so far about what became of the call (defaults: nothing yet).

    ``ring_end`` set with no ``person`` means the ringing ended without anyone answering
    (a Dial leg ended, the queue let go, voicemail took it, or the caller hung up); the
    tracker decides a call that ended while we were down from this alone.
    """

    stage: str = ""
    dialstatus: str = ""
    dialend: tuple[str, ...] = ()
    in_queue: bool = False
    queue_status: str = ""
    queue_abandon: bool = False
    queue_hangup: bool = False
    caller_hangup: bool = False
    pbx_up: bool = False
    person: bool = False
    connected: bool = False
    answered_at: float | None = None
    ring_end: float | None = None
    vm_left: bool = False
    vm_boxes: tuple[str, ...] = ()
    withheld_pres: bool = False


@dataclass(frozen=True, slots=True)
class CallStart:
    """One inbound call from the trunk, as first seen: the call id (Asterisk Linkedid), the
    trunk channel it arrived on, the caller and DID exactly as the PBX gave them (raw: the
    tracker normalises them at the verdict, as for any call), and the progress so far."""

    call: str
    pbx: str
    started_at: float
    trunk_uid: str
    trunk_channel: str
    caller_raw: str | None = None
    caller_name: str | None = None
    did_raw: str | None = None
    progress: CallProgress = field(default_factory=CallProgress)

    def to_record(self) -> dict[str, Any]:
        """The JSON object the store keeps (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CallStart:
        """Back from ``to_record``. Unknown keys (a newer textback wrote the row) are
        ignored; a missing or mistyped required key raises ``ValueError`` naming it."""
        try:
            call = str(record["call"])
            pbx = str(record["pbx"])
            started_at = float(record["started_at"])
            trunk_uid = str(record["trunk_uid"])
            trunk_channel = str(record.get("trunk_channel") or "")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"open call record: bad or missing field {exc}") from None
        raw = record.get("progress")
        progress = CallProgress()
        if isinstance(raw, dict):
            known = {f.name for f in fields(CallProgress)}
            values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                      for k, v in raw.items() if k in known}
            try:
                progress = CallProgress(**values)
            except TypeError as exc:
                raise ValueError(f"open call record {call}: bad progress: {exc}") from None
        return cls(call=call, pbx=pbx, started_at=started_at, trunk_uid=trunk_uid,
                   trunk_channel=trunk_channel, caller_raw=_opt_str(record.get("caller_raw")),
                   caller_name=_opt_str(record.get("caller_name")),
                   did_raw=_opt_str(record.get("did_raw")), progress=progress)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
