"""Findings of a review of the console, each a test that fails until it is fixed: a finance clerk's
and a hostile user's ways through the console, against the in-process emulator in virtual time."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from bulk_topup.batchfile import batch_path, open_batch
from bulk_topup.cli import main
from bulk_topup.clock import VirtualClock
from bulk_topup.config import Settings
from bulk_topup.console.app import CSP
from bulk_topup.context import RunOptions
from bulk_topup.emulator import ApiKey, EmulatorTransport, World, create_app
from bulk_topup.report.settings import ReportSettings
from bulk_topup.service import SheetRun, run_sheet

from .consolekit import Kit, console_app

SAMPLES = Path(__file__).parent.parent / "samples"
KEY = "review-console-key-9Jx"


def _settings(tmp_path: Path) -> tuple[Settings, World]:
    clock = VirtualClock()
    world = World(clock=clock, keys={KEY: ApiKey(KEY)})
    world.rate_clock = clock.now
    settings = Settings("http://emulator.test", KEY, tmp_path / "state", clock,
                        EmulatorTransport(create_app(world)))  # fmt: skip
    return settings, world


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    settings, world = _settings(tmp_path)
    app = console_app(settings)
    with TestClient(app) as client:
        yield Kit(app, client, world)


def _sheet(path: Path, rows: int, prefix: str = "07790") -> Path:
    lines = ["Name,Phone,Plan,Amount"]
    lines += [f"P{i},{prefix}{i:05d},PREPAID_DJEZZY,100" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# --- money out twice -----------------------------------------------------------------------------


def test_one_sheet_sent_under_two_batch_keys_at_once_pays_each_person_once(
    kit: Kit, tmp_path: Path
) -> None:
    """Two clerks (or two tabs) upload the same sheet under two batch keys and press Send at the
    same moment. The repeat guard refuses the very same sheet under another key when one ran
    before; runs that overlap must not both pay. The two starts are what two POSTs to
    /sheets/{id}/run call (`Runs.start` of `run_sheet`), in the same tick of the server's loop."""
    kit.sign_in()
    sheet = _sheet(tmp_path / "payroll.csv", 6)
    first = kit.upload(sheet, "payroll-a")
    second = kit.upload(sheet, "payroll-b")
    settings = kit.app.state.config.settings
    uploads = settings.state_dir / "uploads"

    async def press_send_in_both_tabs() -> None:
        for upload, batch in ((first, "payroll-a"), (second, "payroll-b")):
            asked = SheetRun(uploads / upload / "payroll.csv", batch, options=RunOptions(),
                             report=ReportSettings(), actor="clerk")  # fmt: skip
            kit.runs.start(batch, "run", "clerk",
                           lambda h, a=asked: run_sheet(settings, a, h))  # fmt: skip

    kit.client.portal.call(press_send_in_both_tabs)  # type: ignore[union-attr]
    kit.wait("payroll-a")
    kit.wait("payroll-b")
    per_phone = Counter(
        phone for o in kit.world.orders for phone in re.findall(r"07790\d{5}", str(o.fields))
    )
    assert per_phone and max(per_phone.values()) == 1, per_phone


# --- secrets and the audit record ----------------------------------------------------------------


def _gift_batch(kit: Kit, batch: str) -> tuple[str, int]:
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", batch)
    kit.start(upload)
    kit.wait(batch)
    state = kit.app.state.config.settings.state_dir
    with open_batch(state, batch, now=lambda: "", lock=False, create=False) as j:
        row = next(r for r in j.iter_rows() if r.cards)
    return batch_path(state, batch).stem, row.idx


def test_a_reveal_is_recorded_with_when_it_happened(kit: Kit) -> None:
    bid, idx = _gift_batch(kit, "when")
    kit.client.post(f"/batches/{bid}/reveal", data={"csrf": kit.csrf, "idx": idx, "card": 1})
    kit.client.post(f"/batches/{bid}/results-with-codes.xlsx", data={"csrf": kit.csrf})
    state = kit.app.state.config.settings.state_dir
    with open_batch(state, "when", now=lambda: "", lock=False, create=False) as j:
        reveals = [e for e in j.events() if "revealed" in (e["detail"] or "")]
    assert len(reveals) == 2
    assert all(e["at"] for e in reveals), [(e["detail"], e["at"]) for e in reveals]


def test_bulk_topup_audit_shows_who_saw_which_card(kit: Kit) -> None:
    """README (Console, Security): every reveal is an event of the audit log, `bulk-topup audit`
    shows it."""
    bid, idx = _gift_batch(kit, "seen")
    kit.client.post(f"/batches/{bid}/reveal", data={"csrf": kit.csrf, "idx": idx, "card": 1})
    state = kit.app.state.config.settings.state_dir
    said = CliRunner().invoke(main, ["audit", "--batch", "seen", "--state-dir", str(state)])
    assert "revealed" in said.output, said.output


# --- sign-in ------------------------------------------------------------------------------------


def test_signing_in_to_a_second_console_on_the_same_host_keeps_the_first(tmp_path: Path) -> None:
    """Two consoles on one machine differ by port, which a browser's cookies ignore: a cookie is
    kept per (name, host, path). Both consoles set `bulk_topup_session` on `/`, so signing in to
    the second replaces the first's cookie (the clerk is signed out of the first), and every
    console's session id is sent to every other server on that host."""
    cookies = []
    for name in ("one", "two"):
        settings, _world = _settings(tmp_path / name)
        app = console_app(settings)
        with TestClient(app) as client:
            r = client.get(f"/login?token={app.state.sessions.new_token()}",
                           follow_redirects=False)  # fmt: skip
        cookie = r.headers["set-cookie"]
        path = re.search(r"[Pp]ath=([^;]*)", cookie)
        cookies.append((cookie.split("=", 1)[0], path.group(1) if path else "/"))
    assert cookies[0] != cookies[1], f"both consoles set the cookie {cookies[0]}"


# --- crashes and headers --------------------------------------------------------------------------


def _raw_client(kit: Kit) -> TestClient:
    kit.sign_in()
    return TestClient(kit.app, raise_server_exceptions=False, cookies=kit.client.cookies)


def test_a_long_cjk_file_name_gets_a_sentence_not_a_server_error(kit: Kit) -> None:
    """`safe_name` keeps 120 characters, but a file name is limited to 255 bytes: 119 CJK
    characters are 357. The upload answers 500 (no CSP on it) and leaves an empty folder."""
    client = _raw_client(kit)
    r = client.post("/upload", data={"csrf": kit.csrf, "batch": "cjk"},
                    files={"sheet": ("漢" * 119 + ".csv", (SAMPLES / "orders.csv").read_bytes())},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code in (303, 400), r.status_code
    assert r.headers.get("content-security-policy") == CSP


def test_a_long_arabic_file_name_does_not_break_the_check_page(kit: Kit) -> None:
    """119 Arabic characters fit (238 bytes); the plan file's name beside it,
    `<name>-<batch slug>.plan.json`, does not, and `Path.exists()` on it raises."""
    client = _raw_client(kit)
    r = client.post("/upload", data={"csrf": kit.csrf, "batch": "arabic-batch-long-key"},
                    files={"sheet": ("ملف" * 39 + "م.csv", (SAMPLES / "orders.csv").read_bytes())},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    for path in (r.headers["location"], r.headers["location"] + "/plan"):
        page = client.get(path)
        assert page.status_code in (200, 400), (path, page.status_code)


# --- words a clerk reads ----------------------------------------------------------------------


def test_the_check_page_in_french_says_the_problems_in_french(kit: Kit) -> None:
    kit.sign_in()
    kit.client.post("/language", data={"csrf": kit.csrf, "language": "fr", "back": "/"})
    upload = kit.upload(SAMPLES / "messy.csv", "decembre")
    page = _text(kit.client.get(f"/sheets/{upload}").text)
    assert "Vérifier" in page  # the page itself is French
    for english in ("leading 0 restored", "is not a whole number of dinars",
                    "columns carried through", "has 8 digits"):  # fmt: skip
        assert english not in page, english


def test_console_pages_do_not_send_the_clerk_to_command_line_flags(
    kit: Kit, tmp_path: Path
) -> None:
    """The same sheet under a second key is refused as a repeat; the console then tells the
    clerk to 'pass --allow-repeat', which no page offers."""
    kit.sign_in()
    sheet = _sheet(tmp_path / "staff.csv", 2, "07791")
    kit.start(kit.upload(sheet, "staff-1"))
    kit.wait("staff-1")
    again = kit.upload(sheet, "staff-2")
    for path in (f"/sheets/{again}", f"/sheets/{again}/run"):
        page = _text(kit.client.get(path).text)
        assert "would pay again" in page
        assert not re.search(r"pass --[a-z-]+", page), re.search(r".{80}pass --[a-z-]+", page)


def test_one_approval_is_one_approval(kit: Kit, own_config: Path) -> None:
    from bulk_topup.signing import new_key

    _path, line = new_key("boss")
    (own_config / "policy.toml").write_text(f"[approvers]\n{line}\n[approval]\nrequired = 1\n")
    kit.app.state.config.policy = str(own_config / "policy.toml")
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", "one")
    kit.client.post(f"/sheets/{upload}/plan", data={"csrf": kit.csrf})
    page = _text(kit.client.get(f"/sheets/{upload}/plan").text)
    assert "needs 1 approval." in page and "1 approvals" not in page


def test_a_finished_batch_is_not_offered_a_resume_that_sends_nothing(
    kit: Kit, tmp_path: Path
) -> None:
    kit.sign_in()
    kit.start(kit.upload(_sheet(tmp_path / "done.csv", 2, "07792"), "done"))
    kit.wait("done")
    bid = batch_path(kit.app.state.config.settings.state_dir, "done").stem
    page = _text(kit.client.get(f"/batches/{bid}/resume").text)
    assert "send 0 rows" not in page, page[:400]
