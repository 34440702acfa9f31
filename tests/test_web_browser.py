"""The web app in a real browser (Debian's chromium and chromium-driver, through Selenium)
against the demo's office: the real daemon replaying the demo capture
(concurrent-mixed.ami.ts) to a simulated modem, with ``[web] enabled``.

A staff member logs in, opens the demo conversation (the texted caller's reply, delivered by
the simulated network), replies, sees the reply queued and then sent on the simulated modem
without reloading, marks the conversation booked and sees the dashboard's funnel change, and
opts a number out. Screenshots of the inbox and the dashboard go to a temporary folder, or
to docs/ with TEXTBACK_SCREENSHOTS=docs (how docs/web-inbox.png and docs/web-dashboard.png
were made).

Skipped only when chromium is not installed and not in CI; with CI set, a missing browser
fails the test (.ci/run installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ASTERISK_TRACES, REPO
from textback.config import parse_config
from textback.daemon import Daemon
from textback.store import Store
from textback.testing.fake_ami import FakeAmi
from textback.testing.modem_simulator import ModemSimulator
from textback.web import auth

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CAPTURE = ASTERISK_TRACES / "concurrent-mixed.ami.ts"
CUSTOMER = "+15551230191"  # the demo's caller texted for Acme Plumbing
OTHER = "+15551230193"  # the other texted caller: answers STOP
WALK_IN = "+15551230177"  # opted out by staff, from the opt-out page
USER, PASSWORD = "frontdesk", "a long enough password"
REPLY = "Hi! Tomorrow 9am works - see you then"

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        pytest.fail("CI: chromium and chromium-driver are required for the browser tests "
                    "(apt-get install -y chromium chromium-driver; .ci/run does it)",
                    pytrace=False)
    pytest.skip("chromium / chromium-driver not installed (apt-get install -y chromium "
                "chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(sql, params)]
        except sqlite3.Error:
            return []


async def until(check: Callable[[], Any], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


@dataclasses.dataclass
class Office:
    tmp: Path
    sim: ModemSimulator
    daemon: Daemon
    url: str

    @property
    def db(self) -> Path:
        return self.tmp / "textback.db"


@contextlib.asynccontextmanager
async def demo_office(tmp: Path) -> AsyncIterator[Office]:
    from textback.demo.__main__ import SECRET, write_config

    ami = FakeAmi.from_capture(CAPTURE, speed=8.0, secret=SECRET)
    _, ami_port = await ami.start("127.0.0.1", 0)
    sim = ModemSimulator("generic", link=tmp / "ttyUSB-web", time_scale=0.0)
    await sim.start()
    path = write_config(tmp, ami_port, sim.port, web=True)
    config = parse_config(path.read_text(), path, check_permissions=False)
    config = dataclasses.replace(config, web=dataclasses.replace(config.web, port=0))
    daemon = Daemon(config, modem_poll_s=0.1)
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.web is not None and daemon.web.port)
        office = Office(tmp, sim, daemon, daemon.web.url)
        await until(lambda: len(query(office.db, "SELECT * FROM outbox WHERE state IN "
                                      "('sent', 'delivered')")) >= 2)
        sim.inject_sms(OTHER, "STOP")
        await until(lambda: query(office.db, "SELECT 1 FROM opt_outs WHERE number = ?",
                                  (OTHER,)))
        sim.inject_sms(CUSTOMER, "Yes please - can someone come round tomorrow morning?")
        await until(lambda: query(office.db, "SELECT 1 FROM conversations WHERE number = ?",
                                  (CUSTOMER,)))
        store = await Store.open(office.db)
        try:
            await auth.add_user(store, USER, PASSWORD, daemon.clock())
        finally:
            await store.close()
        yield office
    finally:
        daemon.stop()
        async with asyncio.timeout(20):
            await task
        await ami.close()
        await sim.stop()


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a driver
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER or ""),
                            options=options)


def shots_dir(tmp: Path) -> Path:
    return REPO / "docs" if os.environ.get("TEXTBACK_SCREENSHOTS") == "docs" else tmp


async def step(fn: Callable[..., Any], *args: Any) -> Any:
    """Selenium blocks: run it in a thread while this loop serves the daemon and the app."""
    return await asyncio.to_thread(fn, *args)


async def test_staff_answer_book_and_opt_out_in_a_browser(tmp_path: Path) -> None:
    async with demo_office(tmp_path) as office:
        driver = await step(browser)
        try:
            await _journey(driver, office, tmp_path)
        finally:
            await step(driver.quit)


async def _journey(driver: webdriver.Chrome, office: Office, tmp: Path) -> None:
    wait = WebDriverWait(driver, 20)
    shots = shots_dir(tmp)

    def log_in() -> None:
        driver.get(office.url + "/")
        wait.until(EC.presence_of_element_located((By.ID, "user")))
        driver.find_element(By.ID, "user").send_keys(USER)
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "ul.inbox")))

    await step(log_in)
    inbox = await step(lambda: driver.find_element(By.ID, "live").text)
    assert "1 unread" in inbox and "opted out" in inbox
    await step(driver.save_screenshot, str(shots / "web-inbox.png"))

    def funnel() -> dict[str, str]:
        driver.get(office.url + "/dashboard?days=all")
        cells = wait.until(EC.presence_of_all_elements_located(
            (By.CSS_SELECTOR, "td[data-step]")))
        return {c.get_attribute("data-step") or "": c.text for c in cells}

    before = await step(funnel)
    assert before == {"missed": "2", "texted": "2", "replied": "2", "booked": "0"}  # STOP too

    def open_conversation() -> None:
        driver.get(office.url + "/")
        link = wait.until(EC.element_to_be_clickable(
            (By.XPATH, "//ul[@class='inbox']//a[contains(., '555-123-0191')]")))
        link.click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "live"), "come round tomorrow"))

    await step(open_conversation)
    page = await step(lambda: driver.find_element(By.TAG_NAME, "main").text)
    assert "Missed call" in page and "noanswer" in page  # the call it started from

    # the modem is busy for a moment: the reply must show as queued, then go
    sender = office.daemon.senders["modem:a"]
    sender.available = lambda: False  # type: ignore[method-assign]

    def reply() -> None:
        box = driver.find_element(By.ID, "body")
        box.send_keys(REPLY)
        driver.find_element(By.CSS_SELECTOR, "form.reply button").click()
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "p.note"),
                                                    "Reply queued"))

    await step(reply)
    last_state = await step(lambda: driver.find_elements(
        By.CSS_SELECTOR, "#live li.text.out .state")[-1].text)
    assert last_state == "queued"
    del sender.available  # the modem is free again
    assert office.daemon.dispatcher is not None
    office.daemon.dispatcher.wake()
    await until(lambda: any(a.decoded.text == REPLY for a in office.sim.accepted))

    def sent_without_reload() -> str:
        marker = driver.find_element(By.ID, "body")  # survives only if no reload
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#live li.text.out .state")[-1]
                   .text in ("sent", "delivered"))
        assert marker.is_displayed()
        return str(driver.find_elements(By.CSS_SELECTOR, "#live li.text.out .state")[-1].text)

    assert await step(sent_without_reload) in ("sent", "delivered")
    await step(driver.save_screenshot, str(shots / "web-conversation.png"))

    def mark_booked() -> None:
        Select(driver.find_element(By.ID, "outcome")).select_by_value("booked")
        driver.find_element(By.CSS_SELECTOR, "form[action$='/outcome'] button").click()
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "p.note"),
                                                    "Outcome saved"))

    await step(mark_booked)
    after = await step(funnel)
    assert after == {**before, "booked": "1"}
    await step(driver.set_window_size, 1200, 1700)
    await step(driver.save_screenshot, str(shots / "web-dashboard.png"))
    await step(driver.set_window_size, 1200, 900)

    def opt_out() -> str:
        driver.get(office.url + "/optouts")
        driver.find_element(By.ID, "number").send_keys(WALK_IN)
        driver.find_element(By.ID, "reason").send_keys("asked on the phone")
        driver.find_element(By.CSS_SELECTOR, "form[action='/optouts/add'] button").click()
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "p.note"),
                                                    "on the do-not-text list now"))
        return str(driver.find_element(By.CSS_SELECTOR, "table.optouts").text)

    def on_a_phone() -> tuple[int, int]:
        driver.set_window_size(390, 844)
        driver.get(office.url + "/")
        driver.find_element(By.XPATH, "//ul[@class='inbox']//a[contains(., '555-123-0191')]"
                            ).click()
        wait.until(EC.presence_of_element_located((By.ID, "body")))
        driver.save_screenshot(str(shots / "web-phone.png"))
        widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        driver.set_window_size(1200, 900)
        return int(widths[0]), int(widths[1])

    scroll_width, viewport = await step(on_a_phone)
    assert scroll_width <= viewport, "the conversation scrolls sideways on a phone"

    table = await step(opt_out)
    assert "+1 555-123-0177" in table and "asked on the phone (by frontdesk)" in table
    assert "+1 555-123-0193" in table  # the STOP by text
    (row,) = query(office.db, "SELECT opted_out, source FROM opt_outs WHERE number = ?",
                   (WALK_IN,))
    assert (row["opted_out"], row["source"]) == (1, "web")
    actions = [r["action"] for r in query(office.db, "SELECT action FROM audit ORDER BY id")]
    assert actions == ["reply", "outcome", "optout-add"]
