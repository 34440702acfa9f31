"""``textback replay`` on bad input (issue 16 item 12): what its help promises, and good input
unchanged.

The contract (textback/cli/replay.py): every call decided before the bad data is still
printed, then one error on stderr naming the byte offset, and exit status 1.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.conftest import ASTERISK_TRACES, FREESWITCH_TRACES
from textback.cli import main


def _replay(capsys: pytest.CaptureFixture[str], pbx: str, path: Path) -> tuple[int, str, str]:
    status = main(["replay", "--pbx", pbx, str(path)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("pbx", ["asterisk", "freeswitch"])
def test_random_bytes_exit_1_naming_byte_0(tmp_path: Path, pbx: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "random.bin"
    junk.write_bytes(random.Random(16).randbytes(5000))
    status, out, err = _replay(capsys, pbx, junk)
    assert (status, out) == (1, "")
    assert "byte 0" in err and str(junk) in err


def test_garbage_after_good_calls_keeps_the_calls_and_names_the_offset(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = (ASTERISK_TRACES / "concurrent-mixed.ami").read_bytes()
    assert _replay(capsys, "asterisk", ASTERISK_TRACES / "concurrent-mixed.ami")[0] == 0
    expected = _replay(capsys, "asterisk", ASTERISK_TRACES / "concurrent-mixed.ami")[1]
    bad = tmp_path / "tail.ami"
    bad.write_bytes(good + b"\x00\x01 binary junk\xff\r\n\r\n")
    status, out, err = _replay(capsys, "asterisk", bad)
    assert status == 1 and out == expected and len(expected.splitlines()) == 3
    assert f"byte {len(good)}" in err


def test_ami_capture_given_as_freeswitch_says_it_looks_like_ami(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _replay(capsys, "freeswitch", ASTERISK_TRACES / "concurrent-mixed.ami")
    assert (status, out) == (1, "")
    assert "looks like an Asterisk AMI capture" in err and "--pbx asterisk" in err


def test_esl_capture_given_as_asterisk_says_it_looks_like_esl(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _replay(capsys, "asterisk", FREESWITCH_TRACES / "caller-abandon.esl")
    assert (status, out) == (1, "")
    assert "looks like a FreeSWITCH Event Socket capture" in err and "--pbx freeswitch" in err


def test_every_shared_capture_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    # .ami.ts: timed captures ("#TS <epoch>" before each message, check_replay --timed)
    files = [("asterisk", f) for pattern in ("asterisk-*/*.ami", "asterisk-*/*.ami.ts")
             for f in sorted(ASTERISK_TRACES.parent.glob(pattern))]
    files += [("freeswitch", f) for f in sorted(FREESWITCH_TRACES.glob("*.esl"))]
    assert len(files) > 60
    bad = [(f.name, err) for pbx, f in files
           for status, _, err in [_replay(capsys, pbx, f)] if status != 0]
    assert bad == []
