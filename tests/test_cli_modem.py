"""`textback modem probe` and `textback send` against the simulator."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from textback.cli import main
from textback.testing.modem_simulator import ModemSimulator
from textback.testing.modem_simulator.engine import SIM_ICCID


def _run_sim(profile: str, link: Path, **kw: object):  # type: ignore[no-untyped-def]
    """The simulator in its own thread+loop, since the CLI runs asyncio.run itself."""
    ready = threading.Event()
    box: dict = {}

    def target() -> None:
        loop = asyncio.new_event_loop()
        box["loop"] = loop
        sim = ModemSimulator(profile, link=link, **kw)  # type: ignore[arg-type]
        box["sim"] = sim
        loop.run_until_complete(sim.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(sim.stop())

    t = threading.Thread(target=target, daemon=True)
    t.start()
    ready.wait(5)
    return box, t


def _stop(box: dict, t: threading.Thread) -> None:
    box["loop"].call_soon_threadsafe(box["loop"].stop)
    t.join(5)


def test_probe_json_and_text(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    box, t = _run_sim("ec25", tmp_path / "usb-Quectel_EC25-if02")
    try:
        assert main(["modem", "probe", "--port", str(tmp_path / "usb-Quectel_EC25-if02"),
                     "--json"]) == 0
        (info,) = json.loads(capsys.readouterr().out)
        assert info["model"] == "EC25" and info["sim"] == "READY" and info["problems"] == []
        # AT+CGSN, the EC25's AT+QCCID and AT+COPS?, as the simulator's profile answers them
        assert info["imei"] == "001010123456789" and info["iccid"] == SIM_ICCID
        assert info["operator"] == "Simulated Net" and info["held_by_daemon"] is None
        assert main(["modem", "probe", "--port", str(tmp_path / "usb-Quectel_EC25-if02")]) == 0
        out = capsys.readouterr().out
        assert "model:" in out and "Quectel EC25" in out and "status:       ready" in out
        assert f"ICCID:        {SIM_ICCID}" in out and "IMEI:         001010123456789" in out
    finally:
        _stop(box, t)


def test_probe_missing_port(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["modem", "probe", "--port", str(tmp_path / "none")]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM" in out and "does not exist" in out and "99-textback-modem.rules" in out


# ---------------------------------------------------------------- probe knows the config


def _config(tmp: Path, modem_port: Path | None) -> Path:
    """The test config (textback.db beside it) with modem a on ``modem_port``, or with no
    modem at all (texts through the SIP trunk only)."""
    from tests.daemon_fakes import DID, config_toml
    from textback.testing.lab_config import lab_config_toml

    path = tmp / "textback.toml"
    if modem_port is not None:
        text = config_toml(tmp, modem_port=str(modem_port))
    else:
        text = lab_config_toml(store=tmp / "textback.db", modem=None,
                               sip={"destination": "pjsip:trunk/sip:{number}@127.0.0.1"},
                               did=[{"number": DID, "business": "Acme Plumbing",
                                     "senders": ["sip"]}])
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_probe_reads_the_configured_port_first_and_each_device_once(
        tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The configured udev name is probed first and named after its [[modem]]; its by-id
    link (the same device) is not probed again; another by-id modem is probed after it."""
    quectel, simcom = tmp_path / "pty-quectel", tmp_path / "pty-simcom"
    box_a, t_a = _run_sim("ec25", quectel)
    box_b, t_b = _run_sim("sim800l", simcom)
    try:
        udev_name = tmp_path / "textback-modem0"  # what the udev rule would create
        udev_name.symlink_to(quectel)
        by_id = tmp_path / "by-id"
        by_id.mkdir()
        (by_id / "usb-Quectel_EC25-if02-port0").symlink_to(quectel)
        (by_id / "usb-SIMCOM_SIM800L-if00-port0").symlink_to(simcom)
        monkeypatch.setattr("textback.cli.modem.BY_ID", by_id)
        config = _config(tmp_path, udev_name)
        assert main(["modem", "probe", "--config", str(config), "--json"]) == 0
        first, second = json.loads(capsys.readouterr().out)
        assert (first["port"], first["name"], first["configured"]) == (str(udev_name), "a",
                                                                       True)
        assert first["model"] == "EC25" and first["iccid"] == SIM_ICCID
        assert second["port"] == str(by_id / "usb-SIMCOM_SIM800L-if00-port0")
        assert (second["name"], second["configured"]) == (None, False)
        # the SIM800's AT+CCID answers the bare ICCID (SIM800 Series AT Command Manual)
        assert second["model"] == "SIMCOM_SIM800L" and second["iccid"] == SIM_ICCID
        assert box_a["sim"].engine.commands.count("AT+CGMM") == 1  # one device, one probe
        assert main(["modem", "probe", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert f"{udev_name}  (modem a in {config})" in out
    finally:
        _stop(box_a, t_a)
        _stop(box_b, t_b)


def test_probe_json_is_an_empty_list_when_no_modem_is_found(
        tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("textback.cli.modem.BY_ID", tmp_path / "no-by-id")
    config = _config(tmp_path, None)
    assert main(["modem", "probe", "--config", str(config), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == []
    assert "no modem found: no [[modem]] in" in captured.err
    assert main(["modem", "probe", "--config", str(config)]) == 1
    assert capsys.readouterr().out == ""


def test_probe_with_a_broken_config_given_exits_2(
        tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "textback.toml"
    broken.write_text("[pbx\n")
    assert main(["modem", "probe", "--config", str(broken), "--json"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def _daemon_status(config: Path, port: Path, **health: object) -> None:
    """The status file a running daemon (this test process: a live pid) writes beside the
    store, as textback.daemon.Daemon.write_status does, with modem a on ``port``."""
    import os
    import time

    from textback.daemon import status_path

    modem = {"state": "ready", "error": None, "port": str(port), "model": "EC25",
             "signal": 20, "operator": "Simulated Net", "registration": "registered (home)",
             "reopens": 0, "resets": 0, **health}
    status = {"pid": os.getpid(), "at": time.time(), "running": True, "ready": True,
              "modems": {"modem:a": modem}}  # keyed by sender
    status_path(config.parent / "textback.db").write_text(json.dumps(status))


def test_probe_leaves_a_port_the_daemon_holds_and_shows_its_health(
        tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import os

    monkeypatch.setattr("textback.cli.modem.BY_ID", tmp_path / "no-by-id")
    box, t = _run_sim("ec25", tmp_path / "pty-held")
    try:
        port = tmp_path / "pty-held"
        config = _config(tmp_path, port)
        _daemon_status(config, port)
        assert main(["modem", "probe", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert f"the daemon (pid {os.getpid()}) holds {port}; its last health (" in out
        assert (" s ago): ready, model EC25, signal 20/31, registration registered (home), "
                "operator Simulated Net") in out
        assert box["sim"].engine.commands == []  # never opened: no fight for the port
        _daemon_status(config, port, state="degraded", error="not registered")
        assert main(["modem", "probe", "--config", str(config), "--json"]) == 1
        (held,) = json.loads(capsys.readouterr().out)
        assert held["held_by_daemon"] == os.getpid() and held["name"] == "a"
        assert held["problems"] == ["the daemon reports this modem degraded: not registered"]
        assert box["sim"].engine.commands == []
    finally:
        _stop(box, t)


def test_iccid_and_imei_answers_of_each_dialect() -> None:
    from textback.modem.status import iccid_commands, parse_iccid, parse_imei

    assert parse_imei(("111111111111111",)) == "111111111111111"  # shared transcripts
    assert parse_imei(("+CGSN: 869710030002905",)) == "869710030002905"
    assert parse_imei(("ERROR",)) is None
    for answer in ("+QCCID: 89883070000012345678", "^ICCID: 89883070000012345678",
                   "+ICCID: 89883070000012345678", "+CCID: \"89883070000012345678\"",
                   "89883070000012345678", "98880307000021436587"):  # nibble-swapped (CRSM)
        assert parse_iccid((answer,)) == "89883070000012345678", answer
    assert parse_iccid(("+ICCID: 8901260487759545390F",)) == "8901260487759545390"
    assert parse_iccid(("+CCID: C3729F82",)) is None  # a CDMA ESN, not an ICCID
    assert iccid_commands("Quectel", "EC25")[0] == "AT+QCCID"
    assert iccid_commands("huawei", "E3372") == ("AT^ICCID?",)
    assert iccid_commands("SIMCOM_Ltd", "SIMCOM_SIM800L") == ("AT+CCID",)
    assert iccid_commands("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H")[0] == "AT+CICCID"


def test_docs_configure_the_name_the_udev_rule_creates() -> None:
    """docs/modem.md, docs/deploy.md, docs/config.md and the example config name the same
    stable modem port, and it is one the shipped udev rule creates."""
    import re

    repo = Path(__file__).resolve().parents[1]
    rules = (repo / "systemd" / "99-textback-modem.rules").read_text()
    created = {f"/dev/{n}" for n in re.findall(r'SYMLINK\+="([^"]+)"', rules)}
    assert "/dev/textback-modem0" in created
    for doc in ("docs/modem.md", "docs/deploy.md", "docs/config.md",
                "docs/textback.example.toml"):
        text = (repo / doc).read_text()
        named = set(re.findall(r"/dev/textback-modem\w*", text))
        assert "/dev/textback-modem0" in named, doc
        assert named <= created, (doc, named - created)
        assert not re.search(r'^port = "/dev/serial/by-id', text, re.M), doc


def _send_config(tmp: Path) -> Path:
    """The test config, its modem on the simulator's port, +447700900… (Ofcom's drama
    range, which phonenumbers calls invalid) let through as a lab number."""
    from tests.daemon_fakes import config_toml

    path = tmp / "textback.toml"
    path.write_text(config_toml(tmp, modem_port=str(tmp / "m"),
                                policy={"test_number_prefixes": ["+1555", "+447700900"]}))
    path.chmod(0o600)
    return path


def test_send_prints_parts_and_reports(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    box, t = _run_sim("sim7600", tmp_path / "m")
    try:
        rc = main(["send", "--config", str(_send_config(tmp_path)), "--to", "+447700900123",
                   "--text", "x" * 200, "--port", str(tmp_path / "m"), "--wait-report", "5"])
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "part 1/2 mr=0" in out and "part 2/2 mr=1" in out and "delivered" in out
        assert len(box["sim"].accepted) == 2
    finally:
        _stop(box, t)

    async def recorded() -> tuple[dict, dict]:  # type: ignore[type-arg]
        from textback.store import Store

        store = await Store.open(tmp_path / "textback.db")
        try:
            row = await store.fetchone("SELECT * FROM outbox WHERE kind = 'manual'")
            msg = await store.fetchone("SELECT * FROM messages WHERE direction = 'out'")
            assert row is not None and msg is not None
            return dict(row), dict(msg)
        finally:
            await store.close()

    row, msg = asyncio.run(recorded())  # sent here (no daemon), and recorded in the store
    assert (row["number"], row["state"], row["sent_by"]) == ("+447700900123", "delivered",
                                                             "modem:a")
    assert (msg["status"], msg["parts"], msg["sender"]) == ("delivered", 2, "modem:a")


def test_send_refuses_hostile_number(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["send", "--to", "+44\r\nAT+CMGD=1,4", "--text", "x", "--port", "/nope"]) == 2
    assert "not a valid address" in capsys.readouterr().err
