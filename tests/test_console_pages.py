"""What the console's pages say: the state of a batch as it is (run elsewhere, finished, cut
short, invalid rows skipped), choices a clerk makes in the console rather than with flags, the
reader's language, times and words, text direction, and the audit record of what people did."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from bulk_topup.batchfile import batch_path, open_batch
from bulk_topup.cli import main
from bulk_topup.clock import VirtualClock
from bulk_topup.config import Settings
from bulk_topup.console.web import local_time
from bulk_topup.context import RunOptions
from bulk_topup.emulator import ApiKey, EmulatorTransport, World, create_app
from bulk_topup.report.settings import ReportSettings
from bulk_topup.service import Hooks, SheetRun, resume_batch, run_sheet

from .consolekit import Kit, console_app

SAMPLES = Path(__file__).parent.parent / "samples"
KEY = "pages-console-key-8Wq"


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    clock = VirtualClock()
    world = World(clock=clock, keys={KEY: ApiKey(KEY)})
    world.rate_clock = clock.now
    settings = Settings("http://emulator.test", KEY, tmp_path / "state", clock,
                        EmulatorTransport(create_app(world)))  # fmt: skip
    app = console_app(settings)
    with TestClient(app) as client:
        kit = Kit(app, client, world)
        kit.sign_in()
        yield kit


def _sheet(path: Path, lines: list[str]) -> Path:
    path.write_text("Name,Phone,Plan,Amount\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _state(kit: Kit) -> Path:
    return Path(kit.app.state.config.settings.state_dir)


def _bid(kit: Kit, batch: str) -> str:
    return batch_path(_state(kit), batch).stem


def _orders(kit: Kit, phone: str) -> int:
    return sum(1 for o in kit.world.orders if phone in str(o.fields))


SENT = re.compile(r'name="(rows|face_value|cost|environment|send_edited|allow_repeat)" '
                  r'value="([^"]*)"')  # fmt: skip


def _confirmed(page: str) -> dict[str, str]:
    """What the Run page's Send form posts: the figures, and the choices ticked."""
    return dict(SENT.findall(page.split('class="confirm"')[1]))


def _run(kit: Kit, sheet: Path, batch: str, **fields: str) -> Any:
    upload = kit.upload(sheet, batch, **fields)
    kit.start(upload)
    return kit.wait(batch)


# --- a batch's state, as it is -------------------------------------------------------------------


def test_resume_of_a_batch_another_process_runs_offers_nothing_to_press(kit: Kit) -> None:
    upload = kit.upload(SAMPLES / "orders.csv", "held")
    kit.start(upload, {**kit.figures(upload), "rows": "1"})  # refused: nothing sent, rows kept
    kit.wait("held")
    page = kit.client.get(f"/batches/{_bid(kit, 'held')}/resume").text
    assert 'id="send"' in page  # free: it can be resumed
    with open_batch(_state(kit), "held", now=lambda: "2026-01-01T00:00:00.000Z"):  # the CLI
        page = kit.client.get(f"/batches/{_bid(kit, 'held')}/resume").text
    assert "being run by another process right now" in page and 'id="send"' not in page


class Killed(BaseException):
    """A process killed mid-run: nothing after it runs (no finishing, no stop reason)."""


class StopAtOnce(Hooks):
    def started(self, runner: Any) -> None:
        runner.request_stop("stopped from the console")


class DiesMidway(Hooks):
    def progress(self, event: str, row: Any) -> None:
        raise Killed


def test_a_run_killed_midway_does_not_show_an_earlier_stop_reason(kit: Kit, tmp_path: Path) -> None:
    settings = kit.app.state.config.settings
    sheet = _sheet(tmp_path / "k.csv", [f"P{i},07793{i:05d},PREPAID_DJEZZY,100" for i in range(4)])
    asked = SheetRun(sheet, "killed", options=RunOptions(), report=ReportSettings())

    died = []

    async def stopped_then_killed() -> None:
        await run_sheet(settings, asked, StopAtOnce())  # stopped: its reason is journaled
        try:
            await resume_batch(settings, "killed", RunOptions(), DiesMidway())
        except* Killed:
            died.append(True)

    kit.client.portal.call(stopped_then_killed)  # type: ignore[union-attr]
    assert died
    fresh = console_app(settings)  # the console restarted after the kill
    with TestClient(fresh) as client:
        other = Kit(fresh, client, kit.world)
        other.sign_in()
        page = _text(client.get(f"/batches/{_bid(kit, 'killed')}").text)
        results = _text(client.get(f"/batches/{_bid(kit, 'killed')}/results").text)
    assert "stopped from the console" not in page and "stopped from the console" not in results
    assert "The last run ended without finishing" in page and "Resume" in page


def test_invalid_rows_skipped_are_said_as_such_not_as_failures(kit: Kit, tmp_path: Path) -> None:
    lines = ["A,0779400001,PREPAID_DJEZZY,100", "B,0779400002,PREPAID_DJEZZY,100",
             "C,12,PREPAID_DJEZZY,100"]  # fmt: skip
    sheet = _sheet(tmp_path / "s.csv", lines)
    _run(kit, sheet, "skipping", skip_invalid="1")
    page = _text(kit.client.get(f"/batches/{_bid(kit, 'skipping')}").text)
    assert "every valid row was delivered; 1 invalid row was not sent" in page
    assert "some rows failed" not in page
    assert "every valid row fulfilled; invalid rows not sent" in _text(
        kit.client.get("/batches").text
    )
    assert "Nothing to resume" in kit.client.get(f"/batches/{_bid(kit, 'skipping')}/resume").text


def test_the_balance_after_is_the_batchs_and_says_when_it_was_read(kit: Kit) -> None:
    _run(kit, SAMPLES / "orders.csv", "balance")
    with open_batch(_state(kit), "balance", now=lambda: "", lock=False, create=False) as j:
        balance, at = float(j.get_meta("balance_after") or 0), j.get_meta("balance_after_at")
    assert at
    other = _sheet(_state(kit).parent / "more.csv", ["M,0779900001,PREPAID_DJEZZY,1000"])
    _run(kit, other, "balance-2")  # the account's balance moves on
    page = _text(kit.client.get(f"/batches/{_bid(kit, 'balance')}/results").text)
    shown = f"{balance:,.2f} DA"
    assert shown in page and local_time(at, ZoneInfo("Africa/Algiers")) in page
    assert "when the last run or reconcile of this batch ended" in page


def test_times_are_local_and_states_are_words(kit: Kit) -> None:
    _run(kit, SAMPLES / "orders.csv", "words")
    home, batches = kit.client.get("/").text, _text(kit.client.get("/batches").text)
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
    assert not iso.search(home) and not iso.search(batches)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", batches)
    assert "Africa/Algiers" in batches
    for raw in ("FULFILLED", "UNKNOWN_ERROR", "PARTIALLY_FILLED"):
        assert raw not in batches
    assert "9 delivered" in batches
    results = _text(kit.client.get(f"/batches/{_bid(kit, 'words')}/results").text)
    assert "1 row awaiting the operator: the operator's answer is pending" in results
    assert "UNKNOWN_ERROR" not in results
    assert "reconcile the batch tomorrow" in results and "bulk-topup reconcile`" not in results


# --- choices made in the console, not with flags --------------------------------------------------


def test_edited_rows_are_sent_on_purpose_with_a_tick(kit: Kit, tmp_path: Path) -> None:
    _run(kit, _sheet(tmp_path / "a.csv", ["Lina,0779500001,PREPAID_DJEZZY,100"]), "edit")
    edited = kit.upload(_sheet(tmp_path / "b.csv", ["Lina,0779500001,PREPAID_DJEZZY,200"]), "edit")
    page = kit.client.get(f"/sheets/{edited}/run").text
    assert "would pay again people this batch has already sent to" in page
    assert "Send the edited rows as new orders" in page and "--send-edited-rows" not in page
    assert 'id="send"' not in page
    ticked = kit.client.get(f"/sheets/{edited}/run?send_edited=1").text
    assert 'id="send"' in ticked and 'name="send_edited" value="1"' in ticked
    figures = _confirmed(ticked)
    kit.start(edited, figures)
    assert kit.wait("edit").error is None
    assert _orders(kit, "0779500001") == 2  # the second payment, asked for on purpose


def test_a_repeat_is_paid_on_purpose_with_a_tick(kit: Kit, tmp_path: Path) -> None:
    sheet = _sheet(tmp_path / "r.csv", ["Omar,0779600001,PREPAID_DJEZZY,100"])
    _run(kit, sheet, "rep-1")
    again = kit.upload(sheet, "rep-2")
    page = kit.client.get(f"/sheets/{again}/run").text
    assert "Pay these rows again" in page and 'id="send"' not in page
    assert "tick \u201cPay these rows again\u201d on the Run page" in page
    ticked = kit.client.get(f"/sheets/{again}/run?allow_repeat=1").text
    figures = _confirmed(ticked)
    assert figures.get("allow_repeat") == "1"
    kit.start(again, figures)
    assert kit.wait("rep-2").error is None
    assert _orders(kit, "0779600001") == 2


def test_an_approval_the_policy_needs_is_said_in_console_terms(kit: Kit, own_config: Path) -> None:
    from bulk_topup.signing import new_key

    _path, line = new_key("boss")
    (own_config / "policy.toml").write_text(f"[approvers]\n{line}\n[approval]\nrequired = 1\n")
    kit.app.state.config.policy = str(own_config / "policy.toml")
    upload = kit.upload(SAMPLES / "orders.csv", "policy")
    for path in (f"/sheets/{upload}", f"/sheets/{upload}/run"):
        page = _text(kit.client.get(path).text)
        assert "needs 1 approval" in page and "Plan and approval page" in page
        assert "--plan" not in page and "bulk-topup plan" not in page
    check = kit.client.get(f"/sheets/{upload}").text
    assert 'class="button primary" href="/sheets/' + upload + '/plan"' in check
    assert f'class="button" href="/sheets/{upload}/run"' in check  # not offered as the way on
    fine = kit.upload(_sheet(own_config / "small.csv", ["Z,0779700001,PREPAID_DJEZZY,100"]), "s")
    (own_config / "policy.toml").unlink()  # no policy: nothing to approve
    kit.app.state.config.policy = None
    assert (
        f'class="button primary" href="/sheets/{fine}/run"'
        in kit.client.get(f"/sheets/{fine}").text
    )


# --- the reader's language, the clerk's own file name, text direction -----------------------------


def test_french_pages_agree_in_number_and_localise_sizes_and_kinds(kit: Kit) -> None:
    kit.client.post("/language", data={"csrf": kit.csrf, "language": "fr", "back": "/"})
    assert "20 Mo" in kit.client.get("/").text
    _run(kit, SAMPLES / "orders.csv", "francais")
    page = _text(kit.client.get(f"/batches/{_bid(kit, 'francais')}").text)
    assert "9 livrés" in page and "9 livré " not in page
    upload = kit.upload(SAMPLES / "orders.csv", "francais-2")
    summary = _text(kit.client.get(f"/sheets/{upload}").text).split("Résumé")[1].split("Options")[0]
    assert "cartes cadeaux" in summary and "giftcard" not in summary  # (the sheet's cells say it)
    template = kit.client.get("/template.csv").content.decode("utf-8-sig")
    assert ";" in template.splitlines()[0] and "," not in template.splitlines()[0]


def test_an_error_names_the_clerks_file_not_the_servers_folder(kit: Kit) -> None:
    r = kit.client.post("/upload", data={"csrf": kit.csrf, "batch": "empty"},
                        files={"sheet": ("payroll.xlsx", b"")}, follow_redirects=False)  # fmt: skip
    page = kit.client.get(r.headers["location"])
    assert page.status_code == 400 and "payroll.xlsx" in page.text
    assert "/uploads/" not in page.text and str(_state(kit)) not in page.text


def test_user_and_provider_text_is_isolated_in_its_own_direction(kit: Kit, tmp_path: Path) -> None:
    lines = ["\u202eevil name,0779800001,PREPAID_DJEZZY,100",
             "Test: refunded,0600000001,PREPAID_DJEZZY,500"]  # fmt: skip
    sheet = _sheet(tmp_path / "rtl.csv", lines)
    upload = kit.upload(sheet, "rtl")
    check = kit.client.get(f"/sheets/{upload}").text
    assert re.search(r"<bdi>\u202eevil name</bdi>", check)
    kit.start(upload)
    kit.wait("rtl")
    results = kit.client.get(f"/batches/{_bid(kit, 'rtl')}/results").text
    arabic = "فشلت عملية التعبئة، تم إرجاع المبلغ إلى رصيدك"
    assert f"\u2068{arabic}\u2069" in results  # the provider's words set apart


# --- codes and the audit record ------------------------------------------------------------------


def test_a_reveal_redirects_and_a_reload_shows_the_code_masked_again(kit: Kit) -> None:
    _run(kit, SAMPLES / "orders.csv", "prg")
    with open_batch(_state(kit), "prg", now=lambda: "", lock=False, create=False) as j:
        row = next(r for r in j.iter_rows() if r.cards)
        code = row.cards[0]["value"]
    bid = _bid(kit, "prg")
    form = {"csrf": kit.csrf, "idx": row.idx, "card": 1}
    r = kit.client.post(f"/batches/{bid}/reveal", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/batches/{bid}/results")
    assert code in kit.client.get(r.headers["location"]).text  # shown once
    assert code not in kit.client.get(r.headers["location"]).text  # a reload: masked again
    with open_batch(_state(kit), "prg", now=lambda: "", lock=False, create=False) as j:
        assert sum("revealed" in (e["detail"] or "") for e in j.events()) == 1


class StopWhenSending(Hooks):
    """A console's Stop pressed as the run begins to send."""

    def __init__(self, hooks: Hooks, kit: Kit, batch: str) -> None:
        self.hooks, self.kit, self.batch = hooks, kit, batch

    def confirm(self, facts: Any) -> bool:
        return self.hooks.confirm(facts)

    def started(self, runner: Any) -> None:
        self.hooks.started(runner)
        assert self.kit.runs.stop(self.batch, "nadia")


def test_audit_lists_who_asked_a_run_to_stop_and_when(kit: Kit, tmp_path: Path) -> None:
    settings = kit.app.state.config.settings
    sheet = _sheet(tmp_path / "st.csv", [f"P{i},07799{i:05d},PREPAID_DJEZZY,100" for i in range(3)])
    asked = SheetRun(sheet, "stopped", options=RunOptions(), report=ReportSettings())

    async def press() -> None:
        kit.runs.start(
            "stopped",
            "run",
            "nadia",
            lambda h: run_sheet(settings, asked, StopWhenSending(h, kit, "stopped")),
        )

    kit.client.portal.call(press)  # type: ignore[union-attr]
    kit.wait("stopped")
    said = CliRunner().invoke(main, ["audit", "--batch", "stopped",
                                     "--state-dir", str(settings.state_dir)])  # fmt: skip
    line = next(x for x in said.output.splitlines() if x.startswith("stop asked"))
    assert "nadia" in line and re.search(r"at \d{4}-\d\d-\d\dT", line), line


def test_a_resume_refused_as_a_repeat_is_allowed_with_a_tick(kit: Kit, tmp_path: Path) -> None:
    """Batch B was admitted and stopped before sending; batch A then paid the same person (on
    purpose). Resuming B would pay them again: refused in the console's words, then allowed."""
    from .consolekit import FIGURES

    settings = kit.app.state.config.settings
    sheet = _sheet(tmp_path / "x.csv", ["Rym,0779990001,PREPAID_DJEZZY,100"])
    held = SheetRun(sheet, "rep-b", options=RunOptions(), report=ReportSettings())

    async def admitted_then_stopped() -> None:
        await run_sheet(settings, held, StopAtOnce())

    kit.client.portal.call(admitted_then_stopped)  # type: ignore[union-attr]
    upload = kit.upload(sheet, "rep-a")
    ticked = kit.client.get(f"/sheets/{upload}/run?allow_repeat=1").text
    kit.start(upload, _confirmed(ticked))
    assert kit.wait("rep-a").error is None and _orders(kit, "0779990001") == 1
    bid = _bid(kit, "rep-b")
    figures = dict(FIGURES.findall(kit.client.get(f"/batches/{bid}/resume").text))
    kit.client.post(f"/batches/{bid}/resume", data={"csrf": kit.csrf, **figures})
    refused = kit.wait("rep-b").error
    assert "would pay again" in refused and "Pay these rows again" in refused
    assert "--allow-repeat" not in refused and _orders(kit, "0779990001") == 1
    kit.client.post(f"/batches/{bid}/resume",
                    data={"csrf": kit.csrf, "allow_repeat": "1", **figures})  # fmt: skip
    assert kit.wait("rep-b").error is None and _orders(kit, "0779990001") == 2


def test_console_refusals_speak_of_what_the_console_offers(kit: Kit, own_config: Path) -> None:
    """A worksheet named for a CSV, a plan prepared again once approved: each refusal says what
    to do here, not which command-line option to pass."""
    from bulk_topup.signing import new_key

    upload = kit.upload(SAMPLES / "orders.csv", "worksheet", sheet_name="Feuil1")
    page = _text(kit.client.get(f"/sheets/{upload}").text)
    assert "a worksheet name does not apply" in page and "--sheet" not in page
    _path, line = new_key("boss")
    (own_config / "policy.toml").write_text(f"[approvers]\n{line}\n[approval]\nrequired = 1\n")
    kit.app.state.config.policy = str(own_config / "policy.toml")
    upload = kit.upload(SAMPLES / "orders.csv", "approved-once")
    kit.client.post(f"/sheets/{upload}/plan", data={"csrf": kit.csrf})
    plan = kit.client.get(f"/sheets/{upload}/plan").text
    digest = plan.split('id="digest">', 1)[1].split("<", 1)[0]
    form = {"csrf": kit.csrf, "key": "boss", "digest": digest}
    assert "Approved" in kit.client.post(f"/sheets/{upload}/approve", data=form).text
    again = kit.client.post(f"/sheets/{upload}/plan", data={"csrf": kit.csrf})
    assert again.status_code == 400 and "upload it again" in again.text
    assert "--out" not in again.text
    assert digest in kit.client.get(f"/sheets/{upload}/plan").text  # the approved plan stays
