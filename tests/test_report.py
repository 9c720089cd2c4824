"""The results workbook, read back cell by cell, for a batch holding every state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from bulk_topup.batchfile import open_batch
from bulk_topup.cli import main
from bulk_topup.clock import parse_iso
from bulk_topup.i18n import use_language
from bulk_topup.journal import RowState
from bulk_topup.report import write_results
from bulk_topup.report.retry import write_retry_sheet
from bulk_topup.validation import build_orders

from .runkit import Kit, gift, internet, mobile, sheet_of

pytestmark = pytest.mark.anyio

PSN = "507f1f77bcf86cd799439011"
EVIL = '=HYPERLINK("http://evil.example","click")'
ISSUED = "2025-10-29T09:30:00.000Z"  # an internet card's date_traitement (UTC)


@pytest.fixture
async def every_state(app, clock, tmp_path: Path) -> Kit:
    return await build_every_state(app, clock, tmp_path)


async def build_every_state(app: Any, clock: Any, tmp_path: Path) -> Kit:
    """A batch holding every state, the user's own columns named as a French sheet names them."""
    kit = Kit(app, clock, tmp_path / "state")
    await kit.load(
        {**mobile("0661234567"), "name": EVIL, "employee_id": "E-01"},
        {**mobile("0600000002", plan="PREPAID_DJEZZY"), "name": "Lina", "employee_id": "E-02"},
        {**mobile("0600000003", plan="PREPAID_DJEZZY"), "name": "Omar", "employee_id": "E-03"},
        {**internet("000000002"), "name": "Office Oran"},
        {**internet("036362608"), "name": "Office Alger"},
        {**gift("TEST_PARTIAL", 4), "name": "Partial", "employee_id": "E-06"},
        {**gift(qty=1), "name": "PSN", "employee_id": "E-07"},
        {**internet("036362609", 2000), "name": "Sold out meanwhile"},
        {**gift("type_002", 1), "name": "Lost gift"},
        {**mobile("77803734"), "name": "Bad phone"},
        allow_invalid=True,
    )
    with kit.journal() as j:
        lost = j.rows()[8]
        j.transition(lost.idx, RowState.SENDING, "a crash, and no order at the provider")
        j.set_meta(
            headers=json.dumps({"name": "Nom", "phone": "Numéro", "employee_id": "Matricule"})
        )
    app.world.internet["ADSL"][2]["available"] = False
    await kit.run()
    with kit.journal() as j:
        alger = j.rows()[4]
        j.update(alger.idx, date_traitement=ISSUED)
    return kit


async def invoke(args: list[str], env: dict[str, str] | None = None) -> Any:
    """The CLI runs its own event loop: give it a thread of its own."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(main, args, env=env))


def read(path: Path) -> dict[str, list[tuple]]:
    wb = load_workbook(path)
    return {ws.title: [tuple(c.value for c in row) for row in ws.iter_rows()] for ws in wb}


def table(rows: list[tuple]) -> tuple[dict[str, int], list[tuple]]:
    """(column index by header, data lines without the totals line)."""
    header = rows[0]
    return {name: i for i, name in enumerate(header)}, rows[1:-1]


def algiers(utc_text: str) -> datetime:
    """Africa/Algiers is UTC+1 all year (no summer time)."""
    return parse_iso(utc_text).replace(tzinfo=None, microsecond=0) + timedelta(hours=1)


async def test_results_cell_by_cell(every_state: Kit, tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    with every_state.journal() as j:
        write_results(j, out)
        journal_rows = j.rows()
    sheets = read(out)
    assert list(sheets) == ["Summary", "Results", "Gift cards", "Needs attention", "Retry"]
    results = sheets["Results"]
    col, lines = table(results)
    # The input's columns as the sheet wrote them (the user's own among them), then ours.
    assert {"Numéro", "plan_code", "amount", "Nom", "Matricule"} <= set(col)
    assert results[0][0] == "sheet row"
    assert list(results[0]).index("operator") > list(results[0]).index("Matricule")
    assert [r[col["state"]] for r in lines] == [
        "delivered",
        "refunded",
        "awaiting the operator",
        "queued at Algérie Télécom",
        "delivered",
        "partly delivered",
        "delivered",
        "refused by the provider",
        "outcome unknown",
        "invalid, not sent",
    ]
    by_name = {r[col["Nom"]]: r for r in lines}
    evil = lines[0]
    assert evil[col["Nom"]] == EVIL and evil[col["Numéro"]] == "0661234567"
    # Names beside the codes: the operator and the plan, product and type names.
    assert evil[col["plan_code"]] == "PREPAID_MOBILIS" and evil[col["operator"]] == "Mobilis"
    assert evil[col["product"]] == "📱 PREPAID | عادي"
    psn = by_name["PSN"]
    assert psn[col["product_id"]] == PSN
    assert psn[col["product"]] == "PlayStation Network - PSN 500 DA"
    assert by_name["Office Oran"][col["operator"]] == "Algérie Télécom"
    assert by_name["Office Oran"][col["product"]] == "ADSL 1000 DA"
    # Money as numbers with a DA format; times as real dates, in Algiers time.
    assert evil[col["debited"]] == 480 and evil[col["face value"]] == 500
    wb = load_workbook(out)
    ws = wb["Results"]
    money_cell = ws.cell(row=2, column=col["debited"] + 1)
    assert money_cell.number_format == '#,##0.00 "DA"'
    sent_cell = ws.cell(row=2, column=col["sent at"] + 1)
    assert isinstance(sent_cell.value, datetime) and sent_cell.is_date
    assert sent_cell.value == algiers(journal_rows[0].sent_at)
    alger = by_name["Office Alger"]
    assert len(alger[col["card code"]]) == 12 and alger[col["transaction no."]].startswith("AT-")
    assert alger[col["card issued"]] == datetime(2025, 10, 29, 10, 30)
    lina = by_name["Lina"]
    assert lina[col["suggested offers"]] == "FACTURE_DJEZZY 500 DA"
    # The provider's Arabic message kept, its meaning beside it.
    assert "الرجاء إرسال أحد العروض" in lina[col["error"]]
    assert "does not accept the offer sent" in lina[col["error"]]
    assert by_name["Sold out meanwhile"][col["state code"] if "state code" in col else col["state"]]
    bad = by_name["Bad phone"]
    assert bad[col["error"]] == (
        'Numéro: "77803734" has 8 digits; an Algerian mobile number has 10 (0XXXXXXXXX)'
    )
    assert bad[col["ref"]] is None and bad[0] == 11 and bad[col["face value"]] is None
    # The totals line.
    total = results[-1]
    assert total[0] == "total" and total[1] == "10 rows"
    with every_state.journal() as j:
        totals = j.totals()
    assert total[col["face value"]] == totals["face_value"]
    assert total[col["debited"]] == totals["debited"] == sum(r[col["debited"]] or 0 for r in lines)

    cards = sheets["Gift cards"]
    gcol, glines = table(cards)
    assert list(cards[0][:3]) == ["sheet row", "Nom", "Matricule"]
    assert [(c[0], c[gcol["Nom"]], c[gcol["Matricule"]], c[gcol["type id"]]) for c in glines] == [
        (7, "Partial", "E-06", "TEST_PARTIAL"),
        (7, "Partial", "E-06", "TEST_PARTIAL"),
        (8, "PSN", "E-07", "type_001"),
    ]
    assert all(c[gcol["card code"]].startswith("SANDBOX-CARD-") for c in glines)
    assert glines[2][gcol["product"]] == "PlayStation Network - PSN 500 DA"
    assert isinstance(glines[0][gcol["delivered at"]], datetime)
    assert cards[-1][:2] == ("total", "3 cards")
    with zipfile.ZipFile(out) as z:  # states are coloured by conditional formatting rules
        assert b'<conditionalFormatting sqref="' in z.read("xl/worksheets/sheet2.xml")

    acol, alines = table(sheets["Needs attention"])
    attention = {r[0]: r for r in alines}
    assert set(attention) == {3, 4, 5, 7, 9, 10, 11}
    assert attention[4][acol["Nom"]] == "Omar" and attention[4][acol["Matricule"]] == "E-03"
    assert attention[4][acol["state"]] == "awaiting the operator"
    assert "reconcile" in attention[4][acol["next step"]]
    assert attention[10][acol["state"]] == "outcome unknown"
    assert "do not send it again by hand" in attention[10][acol["next step"]]
    assert attention[10][acol["order"]] == "1 x PlayStation Network - PSN 1000 DA"
    assert attention[5][acol["order"]] == "ADSL 1000 DA to line 000000002"

    retry = sheets["Retry"]
    assert retry[0][:10] == (
        "kind",
        "phone",
        "plan_code",
        "amount",
        "internet_type",
        "number",
        "value",
        "product_id",
        "type_id",
        "quantity",
    )
    assert retry[0][10:12] == ("Nom", "Matricule")
    assert retry[1][:4] == ("mobile", "0600000002", "FACTURE_DJEZZY", "500")
    assert retry[1][10:12] == ("Lina", "E-02")
    assert retry[2][0] == "giftcard" and retry[2][7:10] == (PSN, "TEST_PARTIAL", "2")
    assert len(retry) == 3  # the refunded internet card is not among them: it was not refunded

    summary = {r[0]: r[1] for r in sheets["Summary"] if r[0]}
    assert summary["batch"] == "b" and summary["environment"] == "SANDBOX"
    assert summary["times are in"] == "Africa/Algiers"
    assert isinstance(summary["started"], datetime) and isinstance(summary["finished"], datetime)
    assert summary["delivered"] == 3 and summary["invalid, not sent"] == 1
    assert isinstance(summary["balance before"], float | int)
    # Left open by UNKNOWN_ERROR, QUEUED and UNCERTAIN rows, and says so.
    assert summary["stopped because"] == (
        "1 row UNKNOWN_ERROR: the operator's answer is pending; "
        "1 row QUEUED: the line is queued at Algérie Télécom; "
        "1 row UNCERTAIN: it is not known whether the provider took the order"
    )
    with zipfile.ZipFile(out) as z:
        assert any(n.startswith("xl/charts/chart") for n in z.namelist())
        for n in z.namelist():
            if n.startswith("xl/worksheets/sheet"):
                assert b"<f>" not in z.read(n), n  # no formula anywhere
    assert (out.stat().st_mode & 0o777) == 0o600
    assert_no_none(sheets)


def assert_no_none(sheets: dict[str, list[tuple]]) -> None:
    """`None DA`, `None` or `nan` written as text is a bug wherever it appears."""
    for name, rows in sheets.items():
        for row in rows:
            for value in row:
                if isinstance(value, str):
                    assert "None" not in value and "nan" not in value.split(), (name, row)


async def test_every_sheet_prints_landscape_one_page_wide(every_state: Kit, tmp_path: Path) -> None:
    with every_state.journal() as j:
        out = write_results(j, tmp_path / "r.xlsx")
    wb = load_workbook(out)
    for ws in wb:
        setup = ws.page_setup
        assert setup.orientation == "landscape" and setup.paperSize == 9, ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert setup.fitToWidth in (None, 1), ws.title  # 1 is the default, omitted
        footer = ws.oddFooter
        assert "b" in footer.left.text and "&A" in footer.left.text, ws.title
        assert "&P" in footer.center.text and "&N" in footer.center.text, ws.title
        assert "&D" in footer.right.text, ws.title
        if ws.title == "Summary":
            assert setup.fitToHeight in (None, 1)  # one page
        else:
            assert setup.fitToHeight == 0  # as many pages down as it takes
            assert ws.print_title_rows == "$1:$1", ws.title


async def test_a_batch_key_with_an_ampersand_prints_as_written(app, clock, tmp_path: Path) -> None:
    kit = Kit(app, clock, tmp_path / "state", batch="R&D 2026")
    await kit.load(mobile("0661234567"))
    with kit.journal() as j:
        out = write_results(j, tmp_path / "r.xlsx")
    footer = load_workbook(out)["Results"].oddFooter.left.text
    assert "R&&D 2026" in footer  # `&` is the footer's control character: doubled, it prints


async def test_french_workbook(every_state: Kit, tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    result = await invoke(
        ["report", "--batch", "b", "--out", str(out), "--state-dir", str(every_state.state),
         "--lang", "fr"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("résultats : ")
    sheets = read(out)
    assert list(sheets) == ["Résumé", "Résultats", "Cartes cadeaux", "À traiter", "À renvoyer"]
    col, lines = table(sheets["Résultats"])
    assert {"ligne", "opérateur", "produit", "valeur faciale", "état", "débité", "erreur"} <= set(
        col
    )
    assert [r[col["état"]] for r in lines][:3] == [
        "livré",
        "remboursé",
        "en attente de l'opérateur",
    ]
    lina = lines[1]
    assert "ce numéro n'accepte pas l'offre envoyée" in lina[col["erreur"]]
    assert "الرجاء إرسال أحد العروض" in lina[col["erreur"]]
    assert sheets["Résultats"][-1][:2] == ("Total", "10 lignes")
    assert sheets["Cartes cadeaux"][-1][:2] == ("Total", "3 cartes")
    acol, alines = table(sheets["À traiter"])
    assert {"pourquoi", "que faire", "Nom", "Matricule"} <= set(acol)
    assert alines[0][acol["que faire"]].startswith("voir la feuille « À renvoyer »")
    summary = {r[0]: r[1] for r in sheets["Résumé"] if r[0]}
    assert summary["heures exprimées en"] == "Africa/Algiers"
    assert summary["arrêté parce que"].startswith(
        "1 ligne UNKNOWN_ERROR : la réponse de l'opérateur est en attente"
    )
    assert summary["livré"] == 3
    assert sheets["À renvoyer"][0][:4] == ("Service", "Numéro", "Offre", "Montant")
    wb = load_workbook(out)
    sent = wb["Résultats"].cell(row=2, column=col["envoyé le"] + 1)
    assert sent.is_date and sent.number_format == "dd/mm/yyyy hh:mm"
    assert_no_none(sheets)


@pytest.mark.parametrize("lang,sheet", [("en", "Retry"), ("fr", "À renvoyer")])
async def test_retry_sheet_validates_as_it_is(
    every_state: Kit, tmp_path: Path, lang: str, sheet: str
) -> None:
    out = tmp_path / "r.xlsx"
    with every_state.journal() as j, use_language(lang):
        write_results(j, out)
    result = await invoke(
        ["validate", str(out), "--sheet", sheet, "--emulator", "--state-dir", str(tmp_path / "s"),
         "--format", "json"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    assert [r["order"].get("MSSIDN") or r["order"].get("typeId") for r in rows] == [
        "0600000002",
        "TEST_PARTIAL",
    ]


async def test_started_is_the_first_start_and_the_last_resume_is_beside_it(
    every_state: Kit, tmp_path: Path
) -> None:
    with every_state.journal() as j:
        first_sent = min(r.sent_at for r in j.rows() if r.sent_at)
        # A journal of the first version: `started_at` rewritten by a resume a day later.
        j.db.execute("DELETE FROM meta WHERE key IN ('first_started_at', 'last_started_at')")
        j.set_meta(started_at="2025-10-30T08:00:00.000Z")
        summary = {r[0]: r[1] for r in read(write_results(j, tmp_path / "a.xlsx"))["Summary"]}
        assert summary["started"] == algiers(first_sent)
        assert summary["last resumed"] == datetime(2025, 10, 30, 9, 0)
        # A runner that records the first start once and the last at every run.
        j.set_meta(
            first_started_at="2025-10-28T23:30:00.000Z", last_started_at="2025-10-31T10:00:00.000Z"
        )
        summary = {r[0]: r[1] for r in read(write_results(j, tmp_path / "b.xlsx"))["Summary"]}
        assert summary["started"] == datetime(2025, 10, 29, 0, 30)
        assert summary["last resumed"] == datetime(2025, 10, 31, 11, 0)


async def test_a_journaled_operator_wins_over_the_plan_code(
    every_state: Kit, tmp_path: Path
) -> None:
    with every_state.journal() as j:
        first = j.rows()[0]
        with j.transaction() as db:
            db.execute("UPDATE rows SET operator = 'Djezzy' WHERE idx = ?", (first.idx,))
        col, lines = table(read(write_results(j, tmp_path / "r.xlsx"))["Results"])
    assert lines[0][col["operator"]] == "Djezzy" and lines[1][col["operator"]] == "Djezzy"
    assert lines[0][col["plan_code"]] == "PREPAID_MOBILIS"


async def test_a_batch_abandoned_at_the_prompt_says_why_it_is_open(
    app, clock, tmp_path: Path
) -> None:
    kit = Kit(app, clock, tmp_path / "state")
    await kit.load(mobile("0661234567"), mobile("0771234567", plan="PREPAID_DJEZZY"))
    with kit.journal() as j:
        sheets = read(write_results(j, tmp_path / "r.xlsx"))
    summary = {r[0]: r[1] for r in sheets["Summary"] if r[0]}
    assert summary["stopped because"] == "2 rows PLANNED: not sent yet"
    assert summary["started"] is None and summary["last resumed"] is None
    assert_no_none(sheets)


async def test_csv_and_json(every_state: Kit, tmp_path: Path) -> None:
    with every_state.journal() as j:
        csv_path = write_results(j, tmp_path / "r.csv", "csv")
        json_path = write_results(j, tmp_path / "r.json", "json")
    text = csv_path.read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text
    data = json.loads(json_path.read_text())
    assert data["summary"]["counts"]["FULFILLED"] == 3
    assert data["summary"]["stop_reason"].startswith("1 row UNKNOWN_ERROR")
    assert data["rows"][5]["cards"][0]["value"].startswith("SANDBOX-CARD-")
    assert data["rows"][0]["operator"] == "Mobilis" and data["rows"][6]["product"] == (
        "PlayStation Network - PSN 500 DA"
    )


def test_a_kill_while_writing_keeps_the_previous_workbook(tmp_path: Path) -> None:
    """SIGKILL the report command mid-write: the old workbook is still whole."""
    state = tmp_path / "state"
    rows = [mobile(f"066{i:07d}") for i in range(3_000)]
    orders = build_orders(sheet_of(*rows), "big", None).orders
    with open_batch(state, "big", now=lambda: "2026-11-27T00:00:00.000Z") as j:
        j.sync_orders(orders)
        out = write_results(j, tmp_path / "r.xlsx")
    before = out.read_bytes()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulk_topup",
            "report",
            "--batch",
            "big",
            "--out",
            str(out),
            "--state-dir",
            str(state),
        ]
    )
    deadline = time.monotonic() + 30
    while not any(p.name.startswith(".r.xlsx.") for p in tmp_path.iterdir()):
        assert proc.poll() is None, "the report finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert out.read_bytes() == before
    assert len(read(out)["Results"]) == 3_002  # header, 3,000 rows, totals


async def test_report_command_rebuilds_from_the_journal(every_state: Kit, tmp_path: Path) -> None:
    out = tmp_path / "again.xlsx"
    result = await invoke(
        ["report", "--batch", "b", "--out", str(out), "--state-dir", str(every_state.state)]
    )
    assert result.exit_code == 0, result.output
    assert result.output == f"results: {out}\n"
    assert read(out)["Results"][1][0] == 2
    assert os.stat(out).st_mode & 0o077 == 0


async def test_a_batch_with_nothing_to_attend_to(app, clock, tmp_path: Path) -> None:
    kit = Kit(app, clock, tmp_path / "state")
    await kit.load(mobile("0661234567"))
    assert (await kit.run()).exit_code == 0
    with kit.journal() as j:
        sheets = read(write_results(j, tmp_path / "r.xlsx"))
    assert [r[:2] for r in sheets["Needs attention"][1:]] == [("total", "0 rows")]
    assert len(sheets["Retry"]) == 1
    assert sheets["Results"][1][sheets["Results"][0].index("state")] == "delivered"
    summary = {r[0]: r[1] for r in sheets["Summary"] if r[0]}
    assert summary["stopped because"] is None


async def test_an_empty_batch_still_has_a_report(tmp_path: Path) -> None:
    with open_batch(tmp_path, "empty", now=lambda: "t") as j:
        sheets = read(write_results(j, tmp_path / "r.xlsx"))
    assert sheets["Results"][1][:2] == ("total", "0 rows")


async def test_a_plain_refund_is_not_said_to_carry_a_suggested_offer(app, clock, tmp_path) -> None:
    """0600000001 is refunded with no offer suggested, 0600000002 with offers: only the second's
    Retry line holds another plan, and only its next step says so."""
    kit = Kit(app, clock, tmp_path / "state")
    await kit.load(mobile("0600000001", plan="PREPAID_DJEZZY"),
                   mobile("0600000002", plan="PREPAID_DJEZZY"))  # fmt: skip
    await kit.run()
    for lang, plain, offered in [
        ("en", "see the Retry sheet", "see the Retry sheet (suggested offer filled in)"),
        ("fr", "voir la feuille « À renvoyer »",
         "voir la feuille « À renvoyer » (l'offre suggérée y est remplie)"),
    ]:  # fmt: skip
        with kit.journal() as j, use_language(lang):
            book = read(write_results(j, tmp_path / f"r-{lang}.xlsx"))
        attention, retry = list(book.values())[3], list(book.values())[4]
        assert [line[-1] for line in attention[1:-1]] == [plain, offered], lang
        assert [line[1:3] for line in retry[1:]] == [
            ("0600000001", "PREPAID_DJEZZY"), ("0600000002", "FACTURE_DJEZZY")]  # fmt: skip


async def test_a_printed_summary_and_retry_sheet_show_every_value_whole(
    every_state: Kit, tmp_path: Path
) -> None:
    """LibreOffice neither grows a row to its wrapped text nor widens a column: a Summary line
    of several lines overlapped the next one, and a Retry column as wide as its header cut the
    phone numbers and plan codes a clerk types again from the paper."""
    with every_state.journal() as j:
        out = write_results(j, tmp_path / "r.xlsx")
        alone = write_retry_sheet(j, tmp_path / "retry.xlsx")  # the console's download
    wb = load_workbook(out)
    for retry in (wb["Retry"], load_workbook(alone)["Retry"]):
        for column in retry.iter_cols():
            longest = max((len(str(c.value or "")) for c in column[1:]), default=0)  # header wraps
            width = retry.column_dimensions[column[0].column_letter].width
            assert width >= min(longest, 24), (retry.title, column[0].value, width)
    summary = wb["Summary"]
    long_lines = 0
    for row in summary.iter_rows(min_col=1, max_col=2):
        value = row[1].value
        if isinstance(value, str) and len(value) > 50:  # the column is 50 characters wide
            long_lines += 1
            height = summary.row_dimensions[row[0].row].height
            assert height and height >= 15 * -(-len(value) // 50), row[0].value
    assert long_lines  # "stopped because" names three states
    assert_no_none(read(out))
