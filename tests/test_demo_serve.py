"""`python -m textback.demo --serve` (what `textback demo --serve` and `make demo SERVE=1`
run): after the demo, the daemon stays up with the web app, the simulated network delivers a
reply and a STOP, exactly one `web: http://…/login?token=…` line is printed, the link logs in
once and the inbox shows the demo's conversations; Ctrl-C (SIGINT) stops it all, demo OK."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import aiohttp
import pytest

from tests.conftest import ASTERISK_TRACES, REPO

LINK = re.compile(r"^web: (http://127\.0\.0\.1:\d+)/login\?token=([A-Za-z0-9_-]{20,})$")


@pytest.mark.slow
async def test_demo_serve_prints_one_login_link_and_the_inbox_shows_the_demo() -> None:
    assert (ASTERISK_TRACES / "concurrent-mixed.ami.ts").exists()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "textback.demo", "--serve", "--speed", "8",
        "--listen", "127.0.0.1:0", cwd=REPO, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not any(LINK.match(x) for x in lines):
                raw = await proc.stdout.readline()
                assert raw, "the demo ended before printing the link:\n" + "\n".join(lines)
                lines.append(raw.decode().rstrip("\n"))
        (match,) = [m for x in lines if (m := LINK.match(x))]
        base, token = match.group(1), match.group(2)
        # unsafe=True: cookies for an IP address host (a browser takes them too)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{base}/login?token={token}") as inbox:
                page = await inbox.text()
                assert inbox.status == 200 and str(inbox.url) == base + "/"
            assert "+1 555-123-0191" in page and "+1 555-123-0193" in page
            assert "can someone come round tomorrow" in page and "opted out" in page
            cid = re.search(r'href="/c/(\d+)"><span class="who">\+1 555-123-0191', page)
            assert cid is not None
            async with http.get(f"{base}/c/{cid.group(1)}") as conv:
                text = await conv.text()
            assert "Acme Plumbing" in text and "noanswer" in text  # the missed call
        async with aiohttp.ClientSession() as again, \
                again.get(f"{base}/login?token={token}") as used:  # the link works once
            assert used.status == 403
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            rest = (await proc.stdout.read()).decode()
            await proc.wait()
    lines += rest.splitlines()
    assert sum(1 for x in lines if x.startswith("web:")) == 1
    assert proc.returncode == 0, "\n".join(lines[-20:])
    assert any(x.startswith("demo: OK") for x in lines)
