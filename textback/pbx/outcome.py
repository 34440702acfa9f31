"""The one record every PBX listener produces: what happened to one call.

Both trackers (Asterisk AMI, FreeSWITCH ESL) and the FastAGI trigger emit ``CallOutcome``;
the store, the policy and ``textback replay`` consume it. Its JSON form is an external
contract (``textback replay``): the first nine keys and their meaning must not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["inbound", "internal", "outbound"]
Verdict = Literal["missed", "answered", "ignored"]
# The reason of a call that ended while textback was down, with no sign in what the live
# link can still see of whether it was missed; the PBX's own records (CEL, CDR) may know,
# and a verdict recovered from them replaces this one (textback.outbound.call_record).
UNKNOWN_AFTER_RESTART = "unknown-after-restart"

MISSED_REASONS = frozenset(
    {
        "noanswer",
        "busy",
        "unavailable",
        "abandon",
        "queue-abandon",
        "queue-timeout",
        "ivr-abandon",
        "voicemail",
    }
)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The final verdict on one call (one Asterisk Linkedid / one FreeSWITCH a-leg).

    ``ring_s`` is seconds from the call's arrival to its decisive end (answer, or the end of
    ringing). ``connected`` says whether a person was reached, for any direction: an
    answered outbound call by staff to a number cancels a pending text to it.
    ``callee`` is the external number an outbound call dialled (else None).
    """

    call: str
    direction: Direction
    caller: str | None
    withheld: bool
    did: str | None
    verdict: Verdict
    reason: str
    voicemail_left: bool = False
    ring_s: float = 0.0
    pbx: str = "asterisk"
    started_at: float | None = None
    ended_at: float | None = None
    caller_name: str | None = None
    callee: str | None = None
    connected: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_missed(self) -> bool:
        return self.verdict == "missed"

    def to_record(self) -> dict[str, Any]:
        """The ``textback replay`` JSON object (contract keys first, extras after)."""
        record: dict[str, Any] = {
            "call": self.call,
            "direction": self.direction,
            "caller": self.caller,
            "withheld": self.withheld,
            "did": self.did,
            "verdict": self.verdict,
            "reason": self.reason,
            "voicemail_left": self.voicemail_left,
            "ring_s": round(self.ring_s, 3),
            "pbx": self.pbx,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "caller_name": self.caller_name,
            "callee": self.callee,
            "connected": self.connected,
        }
        record.update(self.extra)
        return record
