"""``textback check-config``: OK with every template's cost, or every error and exit 2."""

from __future__ import annotations

import time
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


# -- [pbx] records: the source recovery after downtime reads ---------------------------------

def _lab(tmp_path: Path, **pbx: object) -> Path:
    from textback.testing.lab_config import write_lab_config
    return write_lab_config(tmp_path / "lab.toml", pbx=pbx,
                            policy={"test_number_prefixes": None})


def _cel_db(path: Path, rows: int, columns: tuple[str, ...] | None = None) -> Path:
    import sqlite3

    from textback.pbx.asterisk.cel import COLUMNS
    cols = columns or COLUMNS
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE cel (AcctId INTEGER PRIMARY KEY, {', '.join(cols)})")
        for i in range(rows):
            row = {c: "" for c in cols} | {"eventtype": "CHAN_START", "linkedid": f"{i}",
                                           "eventtime": f"{time.time() - 60 + i:.6f}"}
            con.execute(f"INSERT INTO cel ({', '.join(cols)}) VALUES "
                        f"({', '.join('?' * len(cols))})", [row[c] for c in cols])
    con.close()
    return path


def test_records_readable_is_one_ok_line_with_its_row_count(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _cel_db(tmp_path / "master.db", 3)
    assert main(["check-config", "--strict", "--config",
                 str(_lab(tmp_path, records=str(db)))]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("records")]
    assert lines == [f"records: OK: {db} is readable CEL in the shipped shape (3 row(s) "
                     "from the last 24 h); calls that end while textback is down are "
                     "recovered from it"]


def test_freeswitch_cdr_csv_is_checked_with_the_cdr_reader(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from textback.pbx.freeswitch.cdr import COLUMNS
    path = tmp_path / "Master.csv"
    row = {c: c for c in COLUMNS} | {"end_uepoch": str(int(time.time() * 1e6)),
                                    "originator": ""}
    old = row | {"uuid": "old", "end_uepoch": str(int((time.time() - 2 * 86400) * 1e6))}
    path.write_text("".join(",".join(f'"{r[c]}"' for c in COLUMNS) + "\n"
                            for r in (old, row)))
    cfg = _lab(tmp_path, type="freeswitch", port=8021, records=str(path))
    assert main(["check-config", "--config", str(cfg)]) == 0
    # the row of two days ago is beyond what recovery ever reads
    assert "readable CDR in the shipped shape (1 row(s) from" in capsys.readouterr().out
    path.write_text("uuid,direction\n")  # not mod_cdr_csv with the shipped template
    assert main(["check-config", "--strict", "--config", str(cfg)]) == 2
    assert "pbx.records: CDR CSV" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["missing", "foreign", "locked", "unreadable"])
def test_records_unreadable_is_a_warning_and_strict_refuses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str) -> None:
    import os
    import sqlite3
    db = tmp_path / "master.db"
    holder = None
    if problem == "foreign":
        _cel_db(db, 1, ("eventtype", "eventtime", "foo"))
    elif problem == "locked":
        _cel_db(db, 1)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    elif problem == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        _cel_db(db, 1).chmod(0)
    cfg = _lab(tmp_path, records=str(db))
    try:
        assert main(["check-config", "--config", str(cfg)]) == 0  # valid, with a warning
        out = capsys.readouterr().out
        warnings = [ln for ln in out.splitlines() if ln.startswith("warning: pbx.records")]
        assert len(warnings) == 1 and "records: OK" not in out
        assert {"missing": "does not exist", "foreign": "lacks the column",
                "locked": "locked", "unreadable": "master.db"}[problem] in warnings[0]
        assert main(["check-config", "--strict", "--config", str(cfg)]) == 2
        assert "warning: pbx.records" in capsys.readouterr().err
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
