"""Only the PBX may report calls over FastAGI (issue 12, finding 5).

Before: any local user (uid nobody) could connect to 127.0.0.1:4573 and forge ``missed``
requests: 230 of them texted 199 arbitrary numbers and used up the hourly cap. Now every
request must carry the secret token in its ``agi://`` URL (``?token=…``, which Asterisk
hands us inside ``agi_network_script``); one without it, or with a wrong one, is refused
before anything is asked or reported, counted, and logged without the token it offered.

The request bytes are the real capture direct-busy.fastagi, with only its
``agi_network_script`` line rewritten to carry (or lack) a token.
"""

from __future__ import annotations

import asyncio
import logging
import stat
import sys
from pathlib import Path

import pytest
from conftest import ASTERISK_TRACES

from textback.cli import main
from textback.config import ConfigError, Secret, load_config
from textback.pbx.asterisk.agi_server import FastAgiServer
from textback.pbx.outcome import CallOutcome

TOKEN = "Zq8-agi-token-4f1c9e"
REPO = Path(__file__).resolve().parents[1]
REAL_ENV = (ASTERISK_TRACES / "direct-busy.fastagi").read_bytes()
ANSWERS = {
    "GET VARIABLE CALLERID(num-pres)": b"200 result=1 (allowed_not_screened)\n",
    "GET VARIABLE CHANNEL(linkedid)": b"200 result=1 (1795395452.52)\n",
}


def env_with(token: str | None) -> bytes:
    """The real request, its URL carrying ``token`` first (None: no token at all)."""
    assert b"agi_network_script: missed?" in REAL_ENV
    if token is None:
        return REAL_ENV
    return REAL_ENV.replace(b"agi_network_script: missed?",
                            b"agi_network_script: missed?token=" + token.encode() + b"&")


async def play(port: int, env: bytes) -> list[str]:
    """Play Asterisk: send the environment, answer what we are asked until closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env)
    await writer.drain()
    commands: list[str] = []
    try:
        while line := await asyncio.wait_for(reader.readline(), 5):
            cmd = line.decode().rstrip("\n")
            commands.append(cmd)
            writer.write(ANSWERS.get(cmd, b"200 result=1\n"))
            await writer.drain()
    finally:
        writer.close()
    return commands


async def serve_and_send(env: bytes) -> tuple[FastAgiServer, list[CallOutcome], list[str]]:
    outcomes: list[CallOutcome] = []

    async def collect(outcome: CallOutcome) -> None:
        outcomes.append(outcome)

    server = FastAgiServer(collect, "127.0.0.1", 0, token=TOKEN)
    await server.start()
    try:
        commands = await play(server.bound_port, env)
    finally:
        await server.close()  # waits for the session, and its outcome callback
    return server, outcomes, commands


async def test_request_with_the_token_is_reported() -> None:
    server, outcomes, commands = await serve_and_send(env_with(TOKEN))
    [out] = outcomes
    assert (out.call, out.reason, out.did) == ("1795395452.52", "busy", "+15559870000")
    assert server.stats["refused-token"] == 0 and commands


@pytest.mark.parametrize("offered", [None, "", "guessed-token-abc", TOKEN[:-1], TOKEN + "x"])
async def test_forged_request_is_refused_counted_and_logged_without_its_token(
        offered: str | None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server, outcomes, commands = await serve_and_send(env_with(offered))
    assert outcomes == [] and commands == []  # nothing asked, nothing reported
    assert server.stats["refused-token"] == 1 and server.stats["outcomes"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("token" in r.getMessage() for r in warnings)
    if offered:
        assert offered not in caplog.text
    assert TOKEN not in caplog.text


def test_server_cannot_be_built_without_a_token() -> None:
    async def ignore(outcome: CallOutcome) -> None:
        return None

    with pytest.raises(ValueError, match="token"):
        FastAgiServer(ignore, "127.0.0.1", 0, token="")


# -------------------------------------------------------------------------------- config

BASE = """\
[pbx]
type = "asterisk"
secret_file = "ami.secret"

[[modem]]
name = "a"
port = "/dev/serial/by-id/usb-modem-a"

[[did]]
number = "+15559870000"
business = "Acme Plumbing"
"""


def write(tmp_path: Path, agi: str) -> Path:
    secret = tmp_path / "ami.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    token = tmp_path / "agi.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    path = tmp_path / "textback.toml"
    path.write_text(BASE + "\n[agi]\n" + agi)
    path.chmod(0o600)
    return path


def config_issues(tmp_path: Path, agi: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, agi))
    return [(i.key, i.message) for i in err.value.issues]


def test_agi_enabled_without_a_token_is_an_error(tmp_path: Path) -> None:
    found = config_issues(tmp_path, "enabled = true\n")
    assert any(key.startswith("agi") and "token" in msg for key, msg in found), found


def test_agi_token_file_and_inline_token(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'enabled = true\ntoken_file = "agi.token"\n'))
    assert isinstance(cfg.agi.token, Secret) and cfg.agi.token.reveal() == TOKEN
    assert TOKEN not in repr(cfg.agi)
    cfg = load_config(write(tmp_path, f'enabled = true\ntoken = "{TOKEN}"\n'))
    assert cfg.agi.token is not None and cfg.agi.token.reveal() == TOKEN
    found = config_issues(tmp_path, f'enabled = true\ntoken = "{TOKEN}"\n'
                                    'token_file = "agi.token"\n')
    assert any("not both" in msg for _, msg in found)


def test_inline_agi_token_makes_the_file_a_secret_file(tmp_path: Path) -> None:
    path = write(tmp_path, f'enabled = true\ntoken = "{TOKEN}"\n')
    path.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "agi.token" in str(err.value) and "chmod 600" in str(err.value)


def test_loose_token_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'enabled = true\ntoken_file = "agi.token"\n')
    (tmp_path / "agi.token").chmod(0o644)
    assert stat.S_IMODE((tmp_path / "agi.token").stat().st_mode) == 0o644
    with pytest.raises(ConfigError, match="chmod 600"):
        load_config(path)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "pbx.example"])
def test_non_loopback_agi_bind_is_an_error_unless_allowed(tmp_path: Path, host: str) -> None:
    agi = f'enabled = true\ntoken_file = "agi.token"\nhost = "{host}"\n'
    found = config_issues(tmp_path, agi)
    assert any(key == "agi.host" and "allow_remote" in msg for key, msg in found), found
    cfg = load_config(write(tmp_path, agi + "allow_remote = true\n"))
    assert cfg.agi.host == host and cfg.agi.allow_remote
    assert [w.key for w in cfg.warnings if w.key.startswith("agi")] == ["agi.host"]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_agi_bind_is_fine(tmp_path: Path, host: str) -> None:
    cfg = load_config(write(tmp_path, f'enabled = true\ntoken_file = "agi.token"\n'
                                      f'host = "{host}"\n'))
    assert [w for w in cfg.warnings if w.key.startswith("agi")] == []


def test_check_config_errors_without_token_and_warns_on_remote_bind(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(write(tmp_path, "enabled = true\n"))]) == 2
    assert "token" in capsys.readouterr().err
    path = write(tmp_path, 'enabled = true\ntoken_file = "agi.token"\nhost = "0.0.0.0"\n'
                           "allow_remote = true\n")
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: " in out and "agi.host" in out and TOKEN not in out


# -------------------------------------------------------------------------------- CLI

async def test_cli_agi_serve_requires_a_token_file_and_refuses_remote_binds(
        tmp_path: Path) -> None:
    async def run(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "textback", "agi", "serve", "--port", "0", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(REPO))
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        return proc.returncode or 0, err.decode()

    rc, err = await run()
    assert rc == 2 and "--token-file" in err
    token = tmp_path / "agi.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    rc, err = await run("--token-file", str(token), "--host", "0.0.0.0")
    assert rc == 2 and "--allow-remote" in err and TOKEN not in err
