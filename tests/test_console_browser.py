"""The console in a real browser: Playwright driving Debian's Chromium through the pages a finance
clerk clicks, against the emulator served over a socket with a compressed clock. The README's
screenshots come from here (docs/screenshots/)."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bulk_topup.batchfile import batch_path
from bulk_topup.clock import SystemClock
from bulk_topup.config import Settings
from bulk_topup.emulator import SANDBOX_KEY, World, create_app
from bulk_topup.signing import new_key

from .consolekit import Served, console_app, serve

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SPEED = 40.0  # the provider's and the runner's clocks: a run settles in seconds
ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "samples"
#: `make screenshots` (UPDATE_SCREENSHOTS=1) writes the README's pictures; otherwise the shots go
#: to a temporary folder, so a test run leaves the checkout as it was.
SHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "bulk-topup-screenshots"
)
WAIT = 60_000  # ms: the longest a page waits for a run's end

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"
    ),  # fmt: skip
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@dataclass
class Live:
    app: Any
    served: Served
    world: World
    settings: Settings
    provider: str

    def link(self) -> str:
        return f"{self.served.url}/login?token={self.app.state.sessions.new_token()}"

    def orders(self) -> dict[str, int]:
        return dict(self.world.stats()["orders_per_ref"])

    def bid(self, batch: str) -> str:
        return batch_path(self.settings.state_dir, batch).stem

    def states(self, batch: str) -> dict[str, int]:
        path = batch_path(self.settings.state_dir, batch)
        if not path.exists():
            return {}
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
        except sqlite3.OperationalError:
            return {}
        finally:
            db.close()

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bulk_topup", *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "ONECLICK_API_KEY": SANDBOX_KEY, "ONECLICK_API_URL": self.provider,
                "BULK_TOPUP_STATE_DIR": str(self.settings.state_dir),
                "BULK_TOPUP_CLOCK_SPEED": str(SPEED)}  # fmt: skip


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    world = World(clock=SystemClock(SPEED))
    world.faults.update({"ref_dedup": False})  # a resent ref would show as a second order
    provider = serve(create_app(world))
    settings = Settings(provider.url, SANDBOX_KEY, tmp_path / "state", SystemClock(SPEED))
    app = console_app(settings)
    served = serve(app)
    try:
        yield Live(app, served, world, settings, provider.url)
    finally:
        served.stop()
        provider.stop()


@pytest.fixture
def page(browser: Any, live: Live) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(live.link())
    assert page.url.endswith("/"), page.url
    yield page
    context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def mobile_sheet(folder: Path, rows: int, first: int = 0) -> Path:
    path = folder / f"staff-{rows}.csv"
    lines = ["Nom,Numéro,Offre,Montant"]
    lines += [f"Employé {i},06612{i:05d},PREPAID_MOBILIS,{100 + i}" for i in range(first, rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def upload(page: Any, sheet: Path, batch: str) -> None:
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + "/")
    page.set_input_files("#sheet", str(sheet))
    page.fill("input[name=batch]", batch)
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/sheets/*")


def send(page: Any) -> None:
    """From a sheet's pages: the confirmation, then Send."""
    page.goto(page.url.split("/sheets/")[0] + "/sheets/" + page.url.split("/sheets/")[1]
              .split("/")[0] + "/run")  # fmt: skip
    page.click("#send")
    page.wait_for_url("**/batches/*")


# --- scenarios -----------------------------------------------------------------------------------


def test_a_messy_sheet_shows_each_error_on_its_cell_then_the_fixed_one_passes(
    page: Any, live: Live
) -> None:
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.fill("input[name=batch]", "decembre")
    page.set_input_files("#sheet", str(SAMPLES / "messy.csv"))
    assert page.inner_text("#chosen") == "messy.csv"
    shot(page, "upload")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/sheets/*")
    cell = page.locator('tr[data-row="11"] td[data-col="Numéro"]')
    assert "err" in (cell.get_attribute("class") or "") and "has 8 digits" in cell.inner_text()
    cell = page.locator('tr[data-row="10"] td[data-col="Montant"]')
    assert "err" in (cell.get_attribute("class") or "") and "whole number" in cell.inner_text()
    repaired = page.locator('tr[data-row="5"] td[data-col="Numéro"]')
    assert "warn" in (repaired.get_attribute("class") or "")
    assert "read as 0661234567" in repaired.inner_text()
    assert page.locator('tr[data-row="4"] td[data-col="Nom"]').get_attribute("class") == ""
    assert "3 invalid rows" in page.inner_text("#verdict")
    assert page.inner_text("#environment").startswith("SANDBOX")
    page.locator("#rows").scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, 180)")
    shot(page, "check")
    # the fixed sheet, dropped on the upload area rather than chosen
    page.goto(live.served.url + "/")
    text = (SAMPLES / "orders.csv").read_text(encoding="utf-8")
    data = page.evaluate_handle(
        "text => { const d = new DataTransfer(); "
        "d.items.add(new File([text], 'orders.csv', {type: 'text/csv'})); return d; }",
        text,
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": data})
    assert page.inner_text("#chosen") == "orders.csv"
    page.fill("input[name=batch]", "decembre-fixed")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/sheets/*")
    assert page.inner_text("#verdict") == "every row is valid"
    assert page.locator("td.err").count() == 0
    assert live.orders() == {}  # checking costs nothing
    assert missing == []  # not even a favicon


def test_approve_run_to_the_end_and_read_the_workbook_back(
    page: Any, live: Live, own_config: Path
) -> None:
    _key, line = new_key("boss")
    policy = own_config / "policy.toml"
    policy.write_text(f"[approvers]\n{line}\n[approval]\nrequired = 1\n", encoding="utf-8")
    live.app.state.config.policy = str(policy)
    upload(page, SAMPLES / "orders.csv", "payroll-2026-11")
    page.click("text=Review and send")
    page.wait_for_url("**/run")
    assert "needs 1 approval" in page.inner_text("#blocked")  # nothing runs unapproved
    assert page.locator("#send").count() == 0
    page.click("nav.steps >> text=Plan and approval")
    page.click("#prepare")
    assert "Not approved yet: 0 of 1" in page.inner_text("#approval-state")
    digest = page.inner_text("#digest")
    page.select_option("#key", "boss")
    page.click("#approve")
    assert "Approved: 1 of 1 approval." in page.inner_text("#approval-state")
    assert page.inner_text("#digest") == digest
    shot(page, "plan")
    page.click("text=Review and send")
    page.wait_for_url("**/run")
    assert page.inner_text("#to-send") == "13"
    page.click("#send")
    page.wait_for_url("**/batches/*")
    # the page was loaded while the run went on: its end arrives over server-sent events
    page.wait_for_selector("#finished", timeout=WAIT)
    assert "Some rows are not final yet" in page.inner_text("#finished")
    assert page.inner_text("#settled") == "12 of 13 rows final"
    assert page.locator("#batch-rows tbody tr").count() == 13
    assert page.locator("#batch-rows td.state", has_text=re.compile("^delivered$")).count() == 9
    shot(page, "run")
    page.click("#results")
    assert "0600000003" in page.inner_text("#attention")
    assert page.locator("#retry tbody tr").count() == 3  # two refunded, one partly filled
    shot(page, "results")
    # a reveal is recorded, shown once at the Results address; a reload re-posts nothing
    page.locator("#cards button.reveal").first.click()
    page.wait_for_selector("#cards code.revealed")
    assert re.search(r"/batches/[^/]+/results", page.url) and "/reveal" not in page.url
    page.reload()
    assert page.locator("#cards code.revealed").count() == 0
    with page.expect_download() as download:
        page.click("#download")
    book = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    results = list(book["Results"].iter_rows(values_only=True))
    header = results[0]
    states = [r[header.index("state")] for r in results[1:-1]]
    assert len(states) == 13 and states.count("delivered") == 9
    codes = [c for r in book["Gift cards"].iter_rows(values_only=True) for c in r]
    assert any(isinstance(c, str) and c.startswith("•") for c in codes)  # masked
    assert sorted(live.orders().values()) == [1] * 10  # every top-up once
    page.goto(live.served.url + "/batches")
    assert "payroll-2026-11" in page.inner_text("#batches")
    shot(page, "batches")


def test_stop_mid_run_then_resume(page: Any, live: Live, tmp_path: Path) -> None:
    live.app.state.config.rate = 2.0  # slow enough to stop halfway
    upload(page, mobile_sheet(tmp_path, 24), "stop-resume")
    send(page)
    page.wait_for_selector("#stop")
    deadline = time.monotonic() + 30
    while len(live.orders()) < 2:
        assert time.monotonic() < deadline, "nothing was sent"
        time.sleep(0.05)
    page.click("#stop")
    page.wait_for_selector("#finished", timeout=WAIT)
    assert "Some rows are not final yet" in page.inner_text("#finished")
    assert "stopped from the console" in page.inner_text("#finished")
    sent = live.orders()
    assert 2 <= len(sent) < 24 and set(sent.values()) == {1}
    assert live.states("stop-resume").get("PLANNED", 0) == 24 - len(sent)
    live.app.state.config.rate = 20.0
    page.click("#resume")
    assert page.inner_text("#to-send") == str(24 - len(sent))
    page.click("#send")
    page.wait_for_url("**/batches/*")
    page.wait_for_selector("#finished", timeout=WAIT)
    assert page.inner_text("#finished") == "Finished: every row fulfilled."
    after = live.orders()
    assert len(after) == 24 and set(after.values()) == {1}  # each row paid exactly once


def test_no_page_without_the_token_and_no_change_without_the_csrf_token(
    browser: Any, page: Any, live: Live
) -> None:
    stranger = browser.new_context()
    other = stranger.new_page()
    response = other.goto(live.served.url + "/batches")
    assert response.status == 401 and "Sign in with the link" in other.inner_text("main")
    used = live.link()
    other.goto(used)
    again = browser.new_context().new_page()
    response = again.goto(used)
    assert response.status == 403 and "used already" in again.inner_text("main")
    stranger.close()
    upload(page, SAMPLES / "orders.csv", "forged")
    page.click("text=Review and send")
    page.wait_for_url("**/run")
    page.evaluate("document.querySelector('form.confirm input[name=csrf]').remove()")
    page.click("#send")
    assert "CSRF" in page.inner_text("#refusal")
    assert live.orders() == {} and live.states("forged") == {}


def test_a_console_run_and_a_cli_run_of_one_batch_never_both_send(
    page: Any, live: Live, tmp_path: Path
) -> None:
    sheet = mobile_sheet(tmp_path, 12)
    # the console runs the batch: the CLI's run of it exits 7 and sends nothing
    live.app.state.config.rate = 2.0
    upload(page, sheet, "shared")
    send(page)
    page.wait_for_selector("#stop")
    cli = subprocess.run(live.cli("run", str(sheet), "--batch", "shared", "--yes"),
                         env=live.env(), capture_output=True, timeout=60)  # fmt: skip
    assert cli.returncode == 7, cli.stdout.decode() + cli.stderr.decode()
    assert b"being run by another process" in cli.stderr
    page.wait_for_selector("#finished", timeout=WAIT)
    orders = live.orders()
    assert len(orders) == 12 and set(orders.values()) == {1}
    # the CLI runs another batch: the console shows it and refuses to start it
    other = tmp_path / "other.csv"
    other.write_text(sheet.read_text(encoding="utf-8").replace("06612", "06613"), encoding="utf-8")
    running = subprocess.Popen(
        live.cli("run", str(other), "--batch", "by-cli", "--yes", "--rate", "1"),
        env=live.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not live.states("by-cli").get("FULFILLED") and not live.states("by-cli").get(
            "SUBMITTED"
        ):
            assert time.monotonic() < deadline, "the CLI run did not start"
            time.sleep(0.05)
        page.goto(f"{live.served.url}/batches/{live.bid('by-cli')}")
        assert "Being run by another process right now" in page.inner_text("#status")
        upload(page, other, "by-cli")
        page.click("text=Review and send")
        page.wait_for_url("**/run")
        page.click("#send")
        assert "being run by another process" in page.inner_text("#refusal")
        out, _ = running.communicate(timeout=90)
        assert running.returncode == 0, out.decode()
    finally:
        if running.poll() is None:
            running.kill()
    orders = live.orders()
    assert len(orders) == 24 and set(orders.values()) == {1}


def test_a_wide_table_scrolls_in_its_box_and_the_top_bar_spans_the_page(
    browser: Any, live: Live, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 800, "height": 700})
    narrow = context.new_page()
    try:
        narrow.goto(live.link())
        wide = tmp_path / "wide.csv"
        columns = [f"Column number {i} with a long title" for i in range(14)]
        wide.write_text("Phone,Plan,Amount," + ",".join(columns) + "\n0661234567,PREPAID_MOBILIS,"
                        "500," + ",".join("a fairly long value" for _ in columns) + "\n",
                        encoding="utf-8")  # fmt: skip
        key = "payroll-" + "x" * 90  # a batch key with nowhere to break
        upload(narrow, wide, key)
        narrow.click("text=Review and send")
        narrow.click("#send")
        narrow.wait_for_selector("#finished", timeout=WAIT)
        for path, table in (("/", "table.list"), ("/batches", "#batches")):
            narrow.goto(live.served.url + path)
            inner = narrow.evaluate(f"document.querySelector('{table}').scrollWidth")
            width = narrow.evaluate("document.documentElement.scrollWidth")
            bar = narrow.evaluate("document.querySelector('header.top').offsetWidth")
            assert inner > 800, path  # the table is wider than the window...
            assert width <= 800 and bar >= width - 1, (path, width, bar)  # ...the page is not
    finally:
        context.close()
