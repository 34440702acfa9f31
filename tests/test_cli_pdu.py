"""``textback pdu decode|encode``: the JSON contract check_pdu.py and the AT driver rely on."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import gammu
import pytest

from tests.conftest import MODEM_DATA
from textback.cli import main

VECTORS = [json.loads(line) for line in
           (MODEM_DATA / "pdu-vectors.jsonl").read_text(encoding="utf-8").splitlines() if line]
CONTRACT_KEYS = {"direction", "smsc", "number", "text", "encoding", "udh", "timestamp",
                 "message_reference", "status", "tpdu_length"}


def _objects(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_decode_argument(capsys: pytest.CaptureFixture[str]) -> None:
    pdu = "0791447758100650040DD0F334FC1CA6970100008080312170224008D4F29CDE0EA7D9"
    assert main(["pdu", "decode", pdu]) == 0
    [obj] = _objects(capsys.readouterr().out)
    assert obj.keys() >= CONTRACT_KEYS
    assert (obj["direction"], obj["number"], obj["text"]) == ("deliver", "sipgate", "Testmail")
    assert obj["smsc"] == "+447785016005" and obj["udh"] is None


def test_decode_stdin_one_object_per_pdu_and_errors_in_place(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [v["pdu"] for v in VECTORS[:5]] + ["07ZZ", ""] + [VECTORS[5]["pdu"]]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["pdu", "decode"]) == 1
    captured = capsys.readouterr()
    objs = _objects(captured.out)
    assert len(objs) == 7  # the blank line is not a PDU
    assert "error" in objs[5] and "not hex" in objs[5]["error"] and objs[5]["input"] == 6
    assert objs[6]["direction"] == VECTORS[5]["direction"]
    assert "PDU 6: PDU is not hex" in captured.err


def test_decode_status_report_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pdu", "decode", "00060505810531F1010150610000400101506100004000"]) == 0
    [obj] = _objects(capsys.readouterr().out)
    assert (obj["direction"], obj["status"], obj["message_reference"]) == ("status", 0, 5)
    assert obj["status_category"] == "delivered" and obj["smsc"] is None


def test_decode_options(capsys: pytest.CaptureFixture[str]) -> None:
    tpdu = "040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
    assert main(["pdu", "decode", "--no-smsc", tpdu]) == 0
    assert _objects(capsys.readouterr().out)[0]["text"] == "How are you?"
    assert main(["pdu", "decode", "--no-smsc", "--direction", "submit", "0100038121F3000000"]) == 0
    assert _objects(capsys.readouterr().out)[0]["number"] == "123"


def test_lone_surrogate_is_written_as_a_json_escape(capsys: pytest.CaptureFixture[str]) -> None:
    # the first half of an emoji, as a sender that splits surrogate pairs leaves it
    assert main(["pdu", "decode", "0001000B915155214365F7000804D83D0041"]) == 0
    out = capsys.readouterr().out
    assert "\\ud83d" in out and json.loads(out)["text"] == "\ud83dA"


def test_encode_prints_pdu_and_length_per_part(capsys: pytest.CaptureFixture[str]) -> None:
    text = "Sorry we missed your call 😀 " * 4
    assert main(["pdu", "encode", "--to", "+15551230001", "--text", text,
                 "--status-report", "--validity", "1440", "--smsc", "+447785016005"]) == 0
    objs = _objects(capsys.readouterr().out)
    assert len(objs) == 2 and all(set(o) == {"pdu", "tpdu_length"} for o in objs)
    joined = ""
    for o in objs:
        raw = bytes.fromhex(o["pdu"])
        assert o["tpdu_length"] == len(raw) - raw[0] - 1
        r = gammu.DecodePDU(raw, SMSC=True)
        assert r["SMSC"]["Number"] == "+447785016005" and r["Number"] == "+15551230001"
        joined += r["Text"]
    assert joined == text


@pytest.mark.parametrize("number", ["+1555\r\nAT", "+1555\x1a", "abc", ""])
def test_encode_refuses_bad_numbers(number: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pdu", "encode", "--to", number, "--text", "hi"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "not a valid address" in captured.err
    assert "\r" not in captured.err and "\x1a" not in captured.err


def test_installed_entry_point_batch() -> None:
    """The way check_pdu.py runs it: one process, every PDU on stdin."""
    pdus = [v["pdu"] for v in VECTORS if v.get("direction")]
    proc = subprocess.run([sys.executable, "-m", "textback", "pdu", "decode"],
                          input="\n".join(pdus) + "\n", capture_output=True, text=True,
                          encoding="utf-8", timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(_objects(proc.stdout)) == len(pdus)


@pytest.mark.parametrize("text", ["-5% off today", "-x", "--help"])
def test_encode_text_starting_with_a_dash(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pdu", "encode", "--to", "+15551230001", "--text", text]) == 0
    [obj] = _objects(capsys.readouterr().out)
    raw = bytes.fromhex(obj["pdu"])
    assert gammu.DecodePDU(raw, SMSC=True)["Text"].rstrip("\x00") == text
