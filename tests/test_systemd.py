"""systemd/: the hardened unit, its offline security score, and the udev rule example."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "textback.service"
RULES = REPO / "systemd" / "99-textback-modem.rules"
MAX_EXPOSURE = 2.0


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """[Section] → [(key, value)], keeping repeated keys (configparser would drop them)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            current = sections.setdefault(m.group(1), [])
            continue
        assert current is not None, f"{path.name}:{n}: setting before any section"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()), f"line {n}: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def one(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key}: expected once, found {found}"
    return found[0]


def test_unit_hardening_keys() -> None:
    unit = parse_unit(UNIT)
    assert set(unit) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    expected = {
        "Type": "notify", "User": "textback", "Group": "textback",
        "SupplementaryGroups": "dialout", "StateDirectory": "textback",
        "ConfigurationDirectory": "textback", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "DevicePolicy": "closed", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet": "", "Restart": "on-failure", "UMask": "0077",
        "ExecStart": "/opt/textback/bin/textback run --config /etc/textback/textback.toml",
    }
    for key, value in expected.items():
        assert one(svc, key) == value, key
    assert sorted(values(svc, "DeviceAllow")) == ["char-ttyACM rw", "char-ttyUSB rw"]
    assert values(svc, "SystemCallFilter")[0] == "@system-service"
    watchdog = one(svc, "WatchdogSec")
    assert re.fullmatch(r"\d+s", watchdog) and 5 <= int(watchdog[:-1]) <= 120
    assert values(unit["Install"], "WantedBy") == ["multi-user.target"]
    # the FastAGI port the daemon binds is the one the sandbox allows
    from textback.pbx.asterisk.agi_server import DEFAULT_PORT
    assert one(svc, "SocketBindAllow") == f"tcp:{DEFAULT_PORT}"


def test_reload_is_sighup_to_the_main_process() -> None:
    """``systemctl reload textback`` sends the SIGHUP textback.daemon reloads on
    (tests/test_daemon_reload.py proves the daemon survives it and applies the config)."""
    svc = parse_unit(UNIT)["Service"]
    assert one(svc, "ExecReload") == "/bin/kill -HUP $MAINPID"
    # the sandbox must let the kill through: @system-service includes kill(2) (@signal)
    assert "~@signal" not in " ".join(values(svc, "SystemCallFilter"))


def test_no_separate_agi_unit_and_docs_say_why() -> None:
    # FastAGI runs inside `textback run`; a second unit would need a second store writer.
    assert not (REPO / "systemd" / "textback-agi.service").exists()
    assert "inside `textback run`" in (REPO / "docs" / "deploy.md").read_text()


def _security_score() -> float:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd); "
                    "the unit's score is checked where it is")
    proc = subprocess.run([exe, "security", "--offline=true", str(UNIT)],
                          capture_output=True, text=True, timeout=30, check=False)
    if "Unknown option" in proc.stderr or "unrecognized option" in proc.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {proc.stderr.strip()[:80]}")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert m, f"no score in systemd-analyze output: {proc.stdout[-300:]}{proc.stderr[-300:]}"
    return float(m.group(1))


def test_offline_security_score() -> None:
    score = _security_score()
    assert score <= MAX_EXPOSURE, f"systemd-analyze security: {score} > {MAX_EXPOSURE}"


def test_the_score_check_can_fail(tmp_path: Path) -> None:
    # The same check on a unit without the sandbox scores far above the limit.
    bare = tmp_path / "textback.service"
    bare.write_text("[Service]\nExecStart=/opt/textback/bin/textback run\n")
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed here")
    out = subprocess.run([exe, "security", "--offline=true", str(bare)],
                         capture_output=True, text=True, timeout=30, check=False)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout + out.stderr)
    assert m and float(m.group(1)) > MAX_EXPOSURE


_RULE_KEY = re.compile(
    r'^(SUBSYSTEM|KERNEL|ACTION|ATTRS\{[a-zA-Z_]+\}|ENV\{[A-Z_]+\}|SYMLINK|GROUP|MODE)'
    r'(==|!=|\+=|=)"([^"]*)"$'
)


def test_udev_rules_syntax_and_intent() -> None:
    rules = [line for line in RULES.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert rules
    symlinks = set()
    for rule in rules:
        pairs = [p.strip() for p in rule.split(", ")]
        parsed = []
        for p in pairs:
            m = _RULE_KEY.match(p)
            assert m, f"not a udev key: {p!r}"
            parsed.append(m.groups())
        keys = {(k, op): v for k, op, v in parsed}
        assert keys.get(("ENV{ID_MM_DEVICE_IGNORE}", "=")) == "1", rule
        # matches use ==, assignments use = or +=
        for k, op, _ in parsed:
            assignment = k in ("SYMLINK", "GROUP", "MODE") or (k.startswith("ENV{")
                                                               and op in ("=", "+="))
            assert assignment or op in ("==", "!="), f"{k}{op} in {rule}"
        if keys.get(("SUBSYSTEM", "==")) == "tty":
            assert keys[("GROUP", "=")] == "dialout" and keys[("MODE", "=")] == "0660"
            assert re.fullmatch(r"textback-modem\d", keys[("SYMLINK", "+=")])
            assert ("ATTRS{idVendor}", "==") in keys
            symlinks.add(keys[("SYMLINK", "+=")])
    assert symlinks, "no tty rule gives a modem a stable name"


def test_unit_keeps_retrying_and_waits_longer_than_the_ready_timeout() -> None:
    # A store that cannot be opened (disk full) makes `textback run` exit 1; systemd must
    # keep restarting it (no start limit) so it comes back by itself once there is space.
    from textback.config import PbxConfig

    unit = parse_unit(UNIT)
    assert one(unit["Unit"], "StartLimitIntervalSec") == "0"
    svc = unit["Service"]
    assert one(svc, "Restart") == "on-failure"
    restart = one(svc, "RestartSec")
    assert re.fullmatch(r"\d+s", restart) and 2 <= int(restart[:-1]) <= 60
    # READY goes out after [pbx] ready_timeout_s at the latest: before systemd gives up
    start = one(svc, "TimeoutStartSec")
    default_ready = PbxConfig.__dataclass_fields__["ready_timeout_s"].default
    assert re.fullmatch(r"\d+s", start) and int(start[:-1]) > default_ready + 10
