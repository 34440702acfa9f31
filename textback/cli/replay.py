"""``textback replay --pbx asterisk|freeswitch FILE``: decide every call of a raw capture.

Output contract (read by external checks; keep it exactly): one JSON object per line, one
per call, written when the call is final; at end of input every open call is finalised.
Malformed input (bytes that are not part of any message: random data, a message cut
short, a capture of the other PBX): every call decided is still printed, then one clear
error on stderr naming the byte offset of the first bad data, and exit status 1. A file
that looks like the other PBX's protocol says which --pbx it needs. Exit status 2: the
file cannot be read.

A timed capture (``.ami.ts``: a ``#TS <epoch>`` line before each message, the moment it was
received; recognised by its first bytes or its name) is replayed with those moments as the
clock, so ``ring_s`` and the settle windows come out as they did live. A ``#TS`` line that is
missing, malformed or earlier than the one before it is refused like malformed input (the
error names its byte offset in the file).
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from pathlib import Path
from typing import Any

from textback.cli._common import add_tracker_options, tracker_config
from textback.pbx.asterisk.timed_capture import TimedCaptureReader, TimedMessage, is_timed
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import OutcomeStream, StreamError
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


class _TimedFeed:
    """A timed capture into the stream: each message with its ``#TS`` time as the clock.
    Keeps where each message starts in the file, so a fault the stream finds is reported
    at its byte offset in the file, not in the bytes without the ``#TS`` lines."""

    def __init__(self, stream: OutcomeStream) -> None:
        self.stream = stream
        self.reader = TimedCaptureReader()
        self._fed = 0
        self._starts: list[int] = []  # offset of each message in the bytes fed
        self._offsets: list[int] = []  # and in the file

    def feed(self, chunk: bytes) -> list[CallOutcome]:
        return self._messages(self.reader.feed(chunk))

    def finish(self) -> list[CallOutcome]:
        out: list[CallOutcome] = []
        while True:  # after the messages before a fault, the fault itself
            msgs = self.reader.finish()
            if not msgs:
                return out
            out += self._messages(msgs)

    def _messages(self, msgs: list[TimedMessage]) -> list[CallOutcome]:
        out: list[CallOutcome] = []
        for msg in msgs:
            self._starts.append(self._fed)
            self._offsets.append(msg.offset)
            self._fed += len(msg.raw)
            out += self.stream.feed(msg.raw, msg.at)
        return out

    def file_offset(self, fed_offset: int) -> int:
        i = bisect.bisect_right(self._starts, fed_offset) - 1
        return fed_offset if i < 0 else self._offsets[i] + fed_offset - self._starts[i]


def run(args: argparse.Namespace) -> int:
    stream = make_stream(args.pbx, tracker_config(args))
    try:
        source = sys.stdin.buffer if str(args.file) == "-" else args.file.open("rb")
    except OSError as exc:
        print(f"textback replay: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    head = b""
    timed: _TimedFeed | None = None
    try:
        with source:
            while chunk := source.read(CHUNK):
                if not head:
                    head = chunk
                    if args.pbx == "asterisk" and is_timed(head, str(args.file)):
                        timed = _TimedFeed(stream)
                _emit(stream.feed(chunk) if timed is None else timed.feed(chunk))
            if timed is not None:
                _emit(timed.finish())
        _emit(stream.finish())
    except StreamError as exc:
        _emit(stream.finish())
        print(f"textback replay: {args.file}: malformed {args.pbx} stream at {exc}"
              f"{_other_pbx(head, args.pbx)}", file=sys.stderr)
        return 1
    if stream.first_bad is not None:
        bad = stream.first_bad if timed is None else timed.file_offset(stream.first_bad)
        print(f"textback replay: {args.file}: malformed {args.pbx} stream at byte "
              f"{bad}: not part of any {args.pbx} message"
              f"{_other_pbx(head, args.pbx)}", file=sys.stderr)
        return 1
    if args.stats or stream.stats.dropped:
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(stream.stats.dropped.items()))
        print(f"textback replay: {stream.stats.events} events, {stream.stats.outcomes} calls"
              + (f", dropped: {dropped}" if dropped else ""), file=sys.stderr)
    return 0
