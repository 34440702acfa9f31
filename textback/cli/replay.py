"""``textback replay --pbx asterisk|freeswitch FILE``: decide every call of a raw capture.

Output contract (read by external checks; keep it exactly): one JSON object per line, one
per call, written when the call is final; at end of input every open call is finalised.
Malformed input (bytes that are not part of any message: random data, a message cut
short, a capture of the other PBX): every call decided is still printed, then one clear
error on stderr naming the byte offset of the first bad data, and exit status 1. A file
that looks like the other PBX's protocol says which --pbx it needs. Exit status 2: the
file cannot be read.
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
from textback.pbx.streams import PBX_NAMES, make_stream, sniff

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


def _other_pbx(head: bytes, pbx: str) -> str:
    """"; it looks like … (use --pbx …)" when the file is the other PBX's protocol."""
    other = sniff(head)
    if other is None or other == pbx:
        return ""
    return f"; the file looks like {PBX_NAMES[other]}: use --pbx {other}"


def run(args: argparse.Namespace) -> int:
    stream = make_stream(args.pbx, tracker_config(args))
    try:
        source = sys.stdin.buffer if str(args.file) == "-" else args.file.open("rb")
    except OSError as exc:
        print(f"textback replay: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    head = b""
    try:
        with source:
            while chunk := source.read(CHUNK):
                head = head or chunk
                _emit(stream.feed(chunk))
        _emit(stream.finish())
    except StreamError as exc:
        _emit(stream.finish())
        print(f"textback replay: {args.file}: malformed {args.pbx} stream at {exc}"
              f"{_other_pbx(head, args.pbx)}", file=sys.stderr)
        return 1
    if stream.first_bad is not None:
        print(f"textback replay: {args.file}: malformed {args.pbx} stream at byte "
              f"{stream.first_bad}: not part of any {args.pbx} message"
              f"{_other_pbx(head, args.pbx)}", file=sys.stderr)
        return 1
    if args.stats or stream.stats.dropped:
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(stream.stats.dropped.items()))
        print(f"textback replay: {stream.stats.events} events, {stream.stats.outcomes} calls"
              + (f", dropped: {dropped}" if dropped else ""), file=sys.stderr)
    return 0
