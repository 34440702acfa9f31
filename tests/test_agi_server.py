"""FastAGI server on loopback, with this test playing Asterisk from the real captures.

The environment bytes are the shared .fastagi files unchanged. The replies to VERBOSE are the
real ones (``200 result=1``, *.fastagi.session.txt). Replies to GET VARIABLE are not in the
captures; they are written in res_agi's format (``200 result=1 (<value>)``, ``200 result=0``
when unset) with the values the captures show: the trunk channel's Uniqueid is the call's
Linkedid (MANIFEST.md), and the callers presented their numbers (agi_callingpres 0).
Each request's URL gets the token the shipped dialplan puts there (``?token=…``, see
test_agi_token.py for requests without it).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from conftest import ASTERISK_TRACES

from textback.pbx.asterisk.agi_server import VERBOSE_COMMAND, FastAgiServer
from textback.pbx.asterisk.agi_session import AgiSession
from textback.pbx.outcome import CallOutcome

CAPTURES = sorted(ASTERISK_TRACES.glob("*.fastagi"))
TOKEN = "test-agi-token-7d2e0b"


def with_token(env: bytes) -> bytes:
    """The request as the shipped dialplan sends it: the token first in the URL's query."""
    def add(m: re.Match[bytes]) -> bytes:
        path, _, query = m.group(1).partition(b"?")
        return (b"agi_network_script: " + path + b"?token=" + TOKEN.encode()
                + (b"&" + query if query else b""))
    return re.sub(rb"agi_network_script: ([^\n]*)", add, env)


class Collector:
    def __init__(self) -> None:
        self.outcomes: list[CallOutcome] = []
        self.event = asyncio.Event()

    async def __call__(self, outcome: CallOutcome) -> None:
        self.outcomes.append(outcome)
        self.event.set()


async def _asterisk(port: int, env: bytes, answers: dict[str, bytes],
                    hangup_first: bool = False) -> list[str]:
    """Play Asterisk: send ``env``, answer each command from ``answers`` until closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(with_token(env))
    await writer.drain()
    commands: list[str] = []
    try:
        while line := await asyncio.wait_for(reader.readline(), 5):
            cmd = line.decode().rstrip("\n")
            commands.append(cmd)
            if hangup_first and len(commands) == 1:
                writer.write(b"HANGUP\n")
            writer.write(answers.get(cmd, b"510 Invalid or unknown command\n"))
            await writer.drain()
    finally:
        writer.close()
    return commands


def _answers(uniqueid: str) -> dict[str, bytes]:
    return {
        "GET VARIABLE CALLERID(num-pres)": b"200 result=1 (allowed_not_screened)\n",
        "GET VARIABLE CHANNEL(linkedid)": f"200 result=1 ({uniqueid})\n".encode(),
        VERBOSE_COMMAND: b"200 result=1\n",   # the real reply, *.fastagi.session.txt
    }


def _uniqueid(env: bytes) -> str:
    session = AgiSession()
    [req] = session.receive_data(env)
    return str(req.get("uniqueid"))  # type: ignore[union-attr]


async def _serve(**kw: object) -> tuple[FastAgiServer, Collector]:
    got = Collector()
    server = FastAgiServer(got, "127.0.0.1", 0, token=TOKEN, clock=lambda: 1795395500.0,
                           **kw)  # type: ignore[arg-type]
    await server.start()
    return server, got


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
async def test_replay_capture(path: Path) -> None:
    server, got = await _serve()
    try:
        env = path.read_bytes()
        commands = await _asterisk(server.bound_port, env, _answers(_uniqueid(env)))
        await asyncio.wait_for(got.event.wait(), 5)
    finally:
        await server.close()
    assert commands == ["GET VARIABLE CALLERID(num-pres)", "GET VARIABLE CHANNEL(linkedid)",
                        VERBOSE_COMMAND]
    [out] = got.outcomes
    assert out.call == _uniqueid(env)
    assert (out.direction, out.verdict, out.did, out.withheld) == (
        "inbound", "missed", "+15559870000", False)
    assert out.reason == ("busy" if "busy" in path.name else "noanswer")
    assert out.extra["trigger"] == "fastagi" and out.ended_at == 1795395500.0
    assert server.stats["outcomes"] == 1 and server.stats["sessions"] == 1


async def test_status_not_passed_is_asked_and_hangup_line_tolerated() -> None:
    env = (ASTERISK_TRACES / "direct-noanswer.fastagi").read_bytes()
    env = env.replace(b"missed?status=NOANSWER", b"missed")
    env = b"".join(line for line in env.splitlines(keepends=True)
                   if not line.startswith(b"agi_arg_"))
    answers = _answers("1795395438.50")
    answers["GET VARIABLE DIALSTATUS"] = b"200 result=1 (CANCEL)\n"
    server, got = await _serve()
    try:
        commands = await _asterisk(server.bound_port, env, answers, hangup_first=True)
        await asyncio.wait_for(got.event.wait(), 5)
    finally:
        await server.close()
    assert commands[0] == "GET VARIABLE DIALSTATUS"
    [out] = got.outcomes
    assert (out.reason, out.caller, out.did) == ("abandon", "+15551230101", "+15559870000")


async def test_withheld_via_num_pres() -> None:
    env = (ASTERISK_TRACES / "direct-busy.fastagi").read_bytes()
    answers = _answers("1795395452.52")
    answers["GET VARIABLE CALLERID(num-pres)"] = b"200 result=1 (prohib_not_screened)\n"
    server, got = await _serve()
    try:
        await _asterisk(server.bound_port, env, answers)
        await asyncio.wait_for(got.event.wait(), 5)
    finally:
        await server.close()
    assert (got.outcomes[0].withheld, got.outcomes[0].caller) == (True, None)


async def _raw_client(port: int, payload: bytes, close_write: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    if close_write:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), 5)   # server must close: read() ends
    finally:
        writer.close()


@pytest.mark.parametrize(("payload", "kind"), [
    (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "garbage"),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n\n", "garbage"),
    ((ASTERISK_TRACES / "direct-busy.fastagi").read_bytes()[:200], "early-eof"),
    (b"", "early-eof"),
])
async def test_garbage_and_early_disconnect_get_a_clean_close(payload: bytes,
                                                              kind: str) -> None:
    server, got = await _serve()
    try:
        reply = await _raw_client(server.bound_port, payload)
        # the server still serves a good session afterwards
        env = (ASTERISK_TRACES / "direct-busy.fastagi").read_bytes()
        await _asterisk(server.bound_port, env, _answers("1795395452.52"))
        await asyncio.wait_for(got.event.wait(), 5)
    finally:
        await server.close()
    assert reply == b""
    assert server.stats[kind] == 1
    assert len(got.outcomes) == 1


async def test_one_megabyte_line_is_refused() -> None:
    server, got = await _serve()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
        writer.write(b"agi_network: " + b"x" * (1024 * 1024) + b"\n\n")
        with pytest.raises((ConnectionError, OSError)):   # closed under our feet
            await writer.drain()
            await asyncio.wait_for(reader.read(), 5)
            raise ConnectionResetError  # a clean EOF is a refusal too
        writer.close()
    finally:
        await server.close()
    assert server.stats["oversize"] == 1 and got.outcomes == []


async def test_disconnect_after_environment_still_reports_the_call() -> None:
    # Asterisk hangs up before answering our first GET VARIABLE: the status was in the
    # environment, so the call is still reported.
    server, got = await _serve()
    env = with_token((ASTERISK_TRACES / "ringgroup-noanswer.fastagi").read_bytes())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
        writer.write(env)
        await writer.drain()
        await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await asyncio.wait_for(got.event.wait(), 5)
    finally:
        await server.close()
    assert got.outcomes[0].reason == "noanswer"
    assert server.stats["early-eof-after-environment"] == 1


async def test_silent_peer_times_out() -> None:
    server, _got = await _serve(env_timeout=0.2)
    try:
        reply = await _raw_client(server.bound_port, b"agi_network: yes\n", close_write=False)
    finally:
        await server.close()
    assert reply == b"" and server.stats["timeout"] == 1


async def test_unknown_path_is_closed_without_outcome() -> None:
    env = (ASTERISK_TRACES / "direct-busy.fastagi").read_bytes().replace(
        b"agi_network_script: missed?", b"agi_network_script: other?")
    server, got = await _serve()
    try:
        commands = await _asterisk(server.bound_port, env, {})
    finally:
        await server.close()
    assert commands == [] and got.outcomes == [] and server.stats["unknown-path"] == 1


async def test_callback_error_is_contained() -> None:
    async def broken(outcome: CallOutcome) -> None:
        raise RuntimeError("store is down")

    server = FastAgiServer(broken, "127.0.0.1", 0, token=TOKEN)
    await server.start()
    try:
        env = (ASTERISK_TRACES / "direct-busy.fastagi").read_bytes()
        await _asterisk(server.bound_port, env, _answers("1795395452.52"))
        for _ in range(50):
            if server.stats["callback-error"]:
                break
            await asyncio.sleep(0.02)
    finally:
        await server.close()
    assert server.stats["callback-error"] == 1


async def test_cli_agi_serve_prints_one_json_line_per_call(tmp_path: Path) -> None:
    import json
    import sys

    token = tmp_path / "agi.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "textback", "agi", "serve", "--port", "0",
        "--token-file", str(token),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stderr.readline(), 15)).decode()
        port = int(banner.rsplit(":", 1)[1])
        env = (ASTERISK_TRACES / "direct-busy.fastagi").read_bytes()
        await _asterisk(port, env, _answers("1795395452.52"))
        line = await asyncio.wait_for(proc.stdout.readline(), 5)
    finally:
        proc.terminate()
        await proc.wait()
    rec = json.loads(line)
    assert list(rec)[:9] == ["call", "direction", "caller", "withheld", "did", "verdict",
                             "reason", "voicemail_left", "ring_s"]
    assert (rec["call"], rec["caller"], rec["reason"], rec["trigger"]) == (
        "1795395452.52", "+15551230102", "busy", "fastagi")
