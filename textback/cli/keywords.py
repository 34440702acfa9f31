"""``textback keywords classify``: what the daemon would make of each inbound text.

Contract (read by external checks; keep it exactly): stdin holds one message per line,
either a JSON string literal (``"STOP\\u200b"``, so messages with line breaks or invisible
characters can be written) or plain text. For each line, stdout gets one JSON object
``{"text": <the message, decoded>, "class": "optout" | "optin" | "help" | "none" |
"possible-optout"}`` ("possible-optout", issue 14: a reply no rule can settle, which the
daemon holds for staff to decide).
Empty lines are messages too (class "none"). A line that starts with '"' but is not a valid
JSON string is classified as the plain text it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from textback.inbound.keywords import classify


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "keywords",
        help="classify inbound texts as opt-out / opt-in / help / none / possible-optout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="keywords_command", metavar="ACTION", required=True)
    c = sub.add_parser(
        "classify",
        help="read one message per line on stdin (JSON string or plain text), "
             "print one JSON object per line",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.set_defaults(func=run_classify)


def decode_line(line: str) -> str:
    """The message a stdin line stands for: a JSON string literal decoded, else the line."""
    stripped = line.strip(" \t")
    if stripped.startswith('"') and stripped.endswith('"') and len(stripped) >= 2:
        try:
            value = json.loads(stripped)
        except ValueError:
            return line
        if isinstance(value, str):
            return value
    return line


def run_classify(args: argparse.Namespace) -> int:
    # Bytes in, so a stray invalid UTF-8 byte is replaced rather than ending the run.
    for raw in sys.stdin.buffer:
        line = raw.decode("utf-8", errors="replace")
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
        text = decode_line(line)
        record = {"text": text, "class": classify(text)}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0
