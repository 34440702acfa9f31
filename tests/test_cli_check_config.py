"""``textback check-config``: OK with every template's cost, or every error and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from textback.cli import main

CONFIG = """\
[pbx]
type = "asterisk"
secret = "x"

[[modem]]
name = "a"
port = "/dev/ttyUSB0"

[[did]]
number = "+15559870000"
business = "Acme Plumbing"

[did.templates]
after_hours = "Closed now \U0001F600 {business}. Reply STOP to opt out"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "textback.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_ok_shows_encoding_parts_and_the_emoji(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(write(tmp_path, CONFIG))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ")
    assert "business_hours (default): GSM-7, 1 part" in out
    assert "after_hours (configured): UCS-2, 1 part" in out
    assert "U+1F600) forces UCS-2" in out and "replace it to stay GSM-7" in out
    assert "Closed now \U0001F600 Acme Plumbing. Reply STOP to opt out" in out


def test_long_template_reports_its_parts(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    text = CONFIG.replace("Closed now \U0001F600", "Closed " + "very " * 40)
    assert main(["check-config", "--config", str(write(tmp_path, text))]) == 0
    assert "after_hours (configured): GSM-7, 2 parts" in capsys.readouterr().out


def test_errors_exit_2_with_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = CONFIG.replace('port = "/dev/ttyUSB0"', 'prot = "/dev/ttyUSB0"')
    path = write(tmp_path, text, mode=0o644)
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: pbx.secret:" in err and f"chmod 600 {path}" in err
    assert f"{path}:7: modem[1].prot: unknown key; did you mean 'port'?" in err
    assert f"{path}:5: modem[1].port: missing" in err


def test_missing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(tmp_path / "none.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_first_text_without_optout_wording_warns_and_strict_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14: a first text with no opt-out wording is named; --strict makes it an error."""
    text = CONFIG.replace("Closed now \U0001F600 {business}. Reply STOP to opt out",
                          "Closed now, {business} will call you back")
    path = write(tmp_path, text)
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    (warning,) = [line for line in out.splitlines() if "opt-out wording" in line]
    assert warning.startswith("warning: DID +15559870000: templates.after_hours (configured) "
                              "has no opt-out wording")
    assert main(["check-config", "--config", str(path), "--strict"]) == 2
    captured = capsys.readouterr()
    assert "refused because of --strict" in captured.err
    assert "templates.after_hours" in captured.err


def test_templates_with_optout_wording_give_no_optout_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(write(tmp_path, CONFIG))]) == 0
    assert "opt-out wording" not in capsys.readouterr().out


def test_warnings_are_printed_and_strict_makes_them_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CONFIG has no [hours]: OK with a warning; --strict: exit 2 (issue 16 item 8)."""
    path = write(tmp_path, CONFIG)
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and f"warning: {path}: hours: " in out and "UTC" in out
    assert main(["check-config", "--strict", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert not captured.out.startswith("OK")
    assert f"warning: {path}: hours: " in captured.err and "--strict" in captured.err
