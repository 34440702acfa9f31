"""``textback replay --pbx asterisk|freeswitch FILE``: decide every call of a raw capture.

Output contract (read by external checks; keep it exactly): one JSON object per line, one
per call, written when the call is final; at end of input every open call is finalised.
Malformed input: every call decided before it is still printed, then one clear error on
stderr naming the byte offset, and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from textback.cli._common import add_tracker_options, tracker_config
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import StreamError
from textback.pbx.streams import make_stream

CHUNK = 64 * 1024


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay",
        help="decide every call in a recorded AMI/ESL capture and print one JSON line per call",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pbx", required=True, choices=["asterisk", "freeswitch"])
    add_tracker_options(p)
    p.add_argument("--stats", action="store_true", help="print what was dropped on stderr")
    p.add_argument("file", type=Path, help="raw capture (.ami, .esl, .json.esl); - for stdin")
    p.set_defaults(func=run)


def _emit(outcomes: list[CallOutcome]) -> None:
    for outcome in outcomes:
        sys.stdout.write(json.dumps(outcome.to_record(), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    stream = make_stream(args.pbx, tracker_config(args))
    try:
        source = sys.stdin.buffer if str(args.file) == "-" else args.file.open("rb")
    except OSError as exc:
        print(f"textback replay: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        with source:
            while chunk := source.read(CHUNK):
                _emit(stream.feed(chunk))
        _emit(stream.finish())
    except StreamError as exc:
        _emit(stream.finish())
        print(f"textback replay: {args.file}: malformed {args.pbx} stream at {exc}",
              file=sys.stderr)
        return 1
    if args.stats or stream.stats.dropped:
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(stream.stats.dropped.items()))
        print(f"textback replay: {stream.stats.events} events, {stream.stats.outcomes} calls"
              + (f", dropped: {dropped}" if dropped else ""), file=sys.stderr)
    return 0
