"""How long after a call's last hangup can an event still change what we record for it?

``[trunks] settle_s`` is the wait between a call's last channel going away and its
verdict being final; every millisecond of it is a millisecond before the text leaves. This
measures, on every shared capture, the gap that wait has to cover:

* the call's **last hangup**: Asterisk, the last ``Hangup`` whose Linkedid is the call's;
  FreeSWITCH, the last ``CHANNEL_HANGUP_COMPLETE``/``CHANNEL_DESTROY`` of one of its legs;
* the **last changing event**: the last event after that hangup such that deciding the
  call just before it and just after it gives a different record (verdict, reason,
  voicemail_left or ring_s to 0.01 s). Found by replaying the capture through the real
  tracker and deciding a copy of it (``finish()``) after every event that follows;
* ``changing_gap_ms`` is the time between the two; ``trailing_gap_ms`` is an upper bound
  that does not depend on today's tracker: the last event of any kind after the hangup
  that names the call (its Linkedid / a leg's uuid in the raw text).

Times are what the capture carries: the receive time of each message (``#TS`` lines of
``.ami.ts``) for Asterisk, ``Event-Date-Timestamp`` for FreeSWITCH (the PBX's own clock,
microseconds).

Last line: {"families": {family: {"captures", "calls", "max_changing_gap_ms",
"max_trailing_gap_ms", "worst", "worst_trailing"}}, "max_changing_gap_ms",
"max_trailing_gap_ms", "settle_s_default", "margin", "trailing_margin"}. ``--quick``
skips the largest captures (all of them take a few seconds anyway).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textback.pbx.asterisk.parser import AmiParser  # noqa: E402
from textback.pbx.asterisk.tracker import CallTracker  # noqa: E402
from textback.pbx.freeswitch.parser import decode_event, iter_frames  # noqa: E402
from textback.pbx.freeswitch.tracker import TRACKED_EVENTS, FsCallTracker  # noqa: E402
from textback.pbx.outcome import CallOutcome  # noqa: E402
from textback.pbx.stream import TrackerConfig  # noqa: E402
from textback.testing.fake_ami import load_ts_capture  # noqa: E402

TRACES = REPO.parent / "shared" / "traces"
FAMILIES = {"asterisk-22": "asterisk", "asterisk-22-live": "asterisk",
            "freeswitch-1.10": "freeswitch"}
# settle_s covers, rounded up to whole 10 ms and never under MIN_SETTLE_S: the largest
# changing gap (an event that did change a record) times MARGIN, and the largest trailing
# gap (any event naming the call, though no rule reads it today: CEL HANGUP / CHAN_END /
# LINKEDID_END, Cdr) times TRAILING_MARGIN. A late event past the window is dropped and
# counted (``late-event``), never a second record. See docs/benchmarks.md "Settle window".
MARGIN = 10.0
TRAILING_MARGIN = 2.0
MIN_SETTLE_S = 0.01
# an event never arrives this long after the hangup (a second call reusing nothing)
HORIZON_S = 60.0
QUICK_MAX_MESSAGES = 500
# the tracker's own window is not what is measured here: calls are decided by finish()
NEVER = TrackerConfig(settle_s=1e9)


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a capture: when it happened, its raw text, and the call ids whose
    channel it hangs up (empty for any other event)."""

    at: float
    raw: bytes
    hangup_of: tuple[str, ...]


def _key(o: CallOutcome) -> tuple[Any, ...]:
    return (o.verdict, o.reason, o.voicemail_left, round(o.ring_s or 0.0, 2))


def _asterisk(path: Path) -> tuple[Callable[[], Any], list[Step], Callable[[Any, Step], None]]:
    parser = AmiParser()
    out: list[Step] = []
    messages: dict[int, Any] = {}
    for m in load_ts_capture(path.with_name(path.name + ".ts")):
        for msg in parser.feed(m.raw):
            if msg.kind != "event":
                continue
            hang = (msg.get("Linkedid") or "",) if msg.name == "Hangup" else ()
            step = Step(m.at, m.raw, hang)
            messages[id(step)] = msg
            out.append(step)

    def handle(tracker: Any, step: Step) -> None:
        tracker.handle(messages[id(step)], step.at)

    return (lambda: CallTracker(NEVER)), out, handle


def _freeswitch(path: Path) -> tuple[Callable[[], Any], list[Step], Callable[[Any, Step], None]]:
    out: list[Step] = []
    events: dict[int, Any] = {}
    probe = FsCallTracker(NEVER)
    for frame in iter_frames(path.read_bytes()):
        if not frame.is_event:
            continue
        ev = decode_event(frame)
        if ev is None or ev.name not in TRACKED_EVENTS:
            continue
        at = FsCallTracker.event_time(ev)
        if at is None:
            continue
        hang: tuple[str, ...] = ()
        if ev.name in ("CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"):
            leg = probe._legs.get(ev.get("Unique-ID") or "")
            hang = (leg.call.root,) if leg is not None else ()
        probe.handle(ev, None)
        step = Step(at, frame.body if hasattr(frame, "body") else b"", hang)
        events[id(step)] = ev
        out.append(step)

    def handle(tracker: Any, step: Step) -> None:
        tracker.handle(events[id(step)], None)

    return (lambda: FsCallTracker(NEVER)), out, handle


def _decided(tracker: Any) -> dict[str, CallOutcome]:
    return {o.call: o for o in copy.deepcopy(tracker).finish()}


def measure_capture(path: Path, pbx: str) -> dict[str, Any]:
    new, steps, handle = (_asterisk if pbx == "asterisk" else _freeswitch)(path)
    last_hangup: dict[str, int] = {}
    for i, s in enumerate(steps):
        for call in s.hangup_of:
            if call:
                last_hangup[call] = i
    tracker = new()
    before: dict[str, tuple[Any, ...]] = {}
    changed_at: dict[str, int] = {}
    start = min(last_hangup.values(), default=len(steps))
    for i, s in enumerate(steps):
        handle(tracker, s)
        if i < start:
            continue
        watching = [c for c, h in last_hangup.items()
                    if h <= i and s.at - steps[h].at <= HORIZON_S]
        if not watching:
            continue
        now = _decided(tracker)
        for call in watching:
            o = now.get(call)
            if o is None:
                continue
            k = _key(o)
            if call in before and before[call] != k:
                changed_at[call] = i
            before[call] = k
    calls: list[dict[str, Any]] = []
    for call, h in last_hangup.items():
        if call not in before:
            continue  # not a call of its own (a pickup's temporary Linkedid)
        t0 = steps[h].at
        changing = (steps[changed_at[call]].at - t0) if call in changed_at else 0.0
        needle = call.encode()
        trailing = 0.0
        for s in steps[h + 1:]:
            if s.at - t0 > HORIZON_S:
                break
            if needle in s.raw or call in s.hangup_of:
                trailing = max(trailing, s.at - t0)
        calls.append({"call": call, "changing_gap_ms": round(changing * 1000, 3),
                      "trailing_gap_ms": round(trailing * 1000, 3)})
    return {"capture": path.name, "messages": len(steps), "calls": calls}


def captures(quick: bool) -> Iterator[tuple[str, str, Path]]:
    for family, pbx in FAMILIES.items():
        folder = TRACES / family
        pattern = "*.ami" if pbx == "asterisk" else "*.esl"
        for path in sorted(folder.glob(pattern)):
            if pbx == "asterisk" and not path.with_name(path.name + ".ts").exists():
                continue
            if quick and path.stat().st_size > QUICK_MAX_MESSAGES * 1500:
                continue
            yield family, pbx, path


def choose_settle(changing_ms: float, trailing_ms: float) -> float:
    """The default window (see MARGIN), up to whole 10 ms."""
    s = max(MIN_SETTLE_S, changing_ms * MARGIN / 1000.0,
            trailing_ms * TRAILING_MARGIN / 1000.0)
    return round(-(-s // 0.01) * 0.01, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the largest captures")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per call")
    args = ap.parse_args()
    families: dict[str, dict[str, Any]] = {}
    for family, pbx, path in captures(args.quick):
        result = measure_capture(path, pbx)
        fam = families.setdefault(family, {"captures": 0, "calls": 0,
                                           "max_changing_gap_ms": 0.0,
                                           "max_trailing_gap_ms": 0.0, "worst": None,
                                           "worst_trailing": None})
        fam["captures"] += 1
        for c in result["calls"]:
            fam["calls"] += 1
            if args.verbose:
                print(f"{family}/{path.name} {c['call']}: changing {c['changing_gap_ms']} ms,"
                      f" trailing {c['trailing_gap_ms']} ms", file=sys.stderr)
            if c["changing_gap_ms"] > fam["max_changing_gap_ms"]:
                fam["max_changing_gap_ms"] = c["changing_gap_ms"]
                fam["worst"] = f"{path.name} {c['call']}"
            if c["trailing_gap_ms"] > fam["max_trailing_gap_ms"]:
                fam["max_trailing_gap_ms"] = c["trailing_gap_ms"]
                fam["worst_trailing"] = f"{path.name} {c['call']}"
    changing = max((f["max_changing_gap_ms"] for f in families.values()), default=0.0)
    trailing = max((f["max_trailing_gap_ms"] for f in families.values()), default=0.0)
    print(json.dumps({"families": families, "max_changing_gap_ms": changing,
                      "max_trailing_gap_ms": trailing,
                      "settle_s_default": choose_settle(changing, trailing), "margin": MARGIN,
                      "trailing_margin": TRAILING_MARGIN,
                      "quick": args.quick}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
