"""``textback keywords classify``: the stdin/stdout contract, through the real CLI entry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(stdin: bytes) -> list[dict[str, str]]:
    proc = subprocess.run(
        [sys.executable, "-m", "textback", "keywords", "classify"],
        input=stdin, capture_output=True, cwd=REPO, timeout=30, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    return [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]


def test_plain_and_json_lines() -> None:
    lines = [
        "STOP",
        '"S\\u200bTOP"',                        # JSON string with an invisible character
        '"help\\nmy basement is flooding"',     # JSON keeps the line break inside one message
        "Yes",
        "INFO",
        "don't stop by",
        "",
        '"unterminated',                       # not JSON: the plain text it is
        "Liked “Sorry we missed your call. Reply STOP to opt out”",
    ]
    out = _run(("\n".join(lines) + "\n").encode("utf-8"))
    assert out == [
        {"text": "STOP", "class": "optout"},
        {"text": "S\u200bTOP", "class": "optout"},
        {"text": "help\nmy basement is flooding", "class": "none"},
        {"text": "Yes", "class": "optin"},
        {"text": "INFO", "class": "help"},
        {"text": "don't stop by", "class": "none"},
        {"text": "", "class": "none"},
        {"text": '"unterminated', "class": "none"},
        {"text": "Liked “Sorry we missed your call. Reply STOP to opt out”", "class": "none"},
    ]
    assert all(list(rec) == ["text", "class"] for rec in out)


def test_crlf_and_no_final_newline_and_bad_utf8() -> None:
    out = _run(b"stop\r\nstart\r\n\xff help")
    assert out == [
        {"text": "stop", "class": "optout"},
        {"text": "start", "class": "optin"},
        {"text": "\ufffd help", "class": "help"},
    ]


def test_empty_input_prints_nothing() -> None:
    assert _run(b"") == []


def test_json_string_that_is_not_a_string_value_is_plain_text() -> None:
    # '"a" "b"' starts and ends with a quote but is not one JSON string.
    assert _run(b'"a" "b"\n') == [{"text": '"a" "b"', "class": "none"}]


def test_new_class_possible_optout_and_issue14_families() -> None:
    """Issue 14: the only new value is "possible-optout"; the keys stay text and class."""
    lines = [
        '"🛑"',
        "you need to stop",
        '"STOP\\n\\nSent from my iPhone"',
        "Arrêter svp",
        "Stpo",
        "AIDE",
        "Thanks for the help!",
        "How do I opt out of the warranty plan?",
    ]
    out = _run(("\n".join(lines) + "\n").encode("utf-8"))
    assert [rec["class"] for rec in out] == [
        "possible-optout", "possible-optout", "optout", "optout", "optout", "help", "none",
        "none"]
    assert all(list(rec) == ["text", "class"] for rec in out)
    assert out[2]["text"] == "STOP\n\nSent from my iPhone"
