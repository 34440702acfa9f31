"""`textback modem probe` and `textback send` against the simulator."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from textback.cli import main
from textback.testing.modem_simulator import ModemSimulator


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
        info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert info["model"] == "EC25" and info["sim"] == "READY" and info["problems"] == []
        assert main(["modem", "probe", "--port", str(tmp_path / "usb-Quectel_EC25-if02")]) == 0
        out = capsys.readouterr().out
        assert "model:" in out and "Quectel EC25" in out and "status:       ready" in out
    finally:
        _stop(box, t)


def test_probe_missing_port(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["modem", "probe", "--port", str(tmp_path / "none")]) == 1
    assert "PROBLEM" in capsys.readouterr().out


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
