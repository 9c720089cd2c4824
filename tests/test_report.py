"""The results workbook, read back cell by cell, for a batch holding every state."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from bulk_topup.cli import main
from bulk_topup.journal import RowState, open_batch
from bulk_topup.orders import build_orders
from bulk_topup.report import write_results

from .runkit import Kit, gift, internet, mobile, sheet_of

pytestmark = pytest.mark.anyio

PSN = "507f1f77bcf86cd799439011"


@pytest.fixture
async def every_state(app, clock, tmp_path: Path) -> Kit:
    kit = Kit(app, clock, tmp_path / "state")
    await kit.load(
        {**mobile("0661234567"), "name": '=HYPERLINK("http://evil.example","click")'},
        {**mobile("0600000002", plan="PREPAID_DJEZZY"), "name": "Lina"},
        {**mobile("0600000003", plan="PREPAID_DJEZZY"), "name": "Omar"},
        {**internet("000000002"), "name": "Office Oran"},
        {**internet("036362608"), "name": "Office Alger"},
        {**gift("TEST_PARTIAL", 4), "name": "Partial"},
        {**gift(qty=1), "name": "PSN"},
        {**internet("036362609", 2000), "name": "Sold out meanwhile"},
        {**gift("type_002", 1), "name": "Lost gift"},
        {**mobile("77803734"), "name": "Bad phone"},
        allow_invalid=True,
    )
    with kit.journal() as j:
        lost = j.rows()[8]
        j.transition(lost.idx, RowState.SENDING, "a crash, and no order at the provider")
        j.set_meta(headers=json.dumps({"name": "Nom", "phone": "Numéro"}))
    app.world.internet["ADSL"][2]["available"] = False
    await kit.run()
    return kit


async def invoke(args: list[str]) -> Any:
    """The CLI runs its own event loop: give it a thread of its own."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(main, args))


def read(path: Path) -> dict[str, list[tuple]]:
    wb = load_workbook(path)
    return {ws.title: [tuple(c.value for c in row) for row in ws.iter_rows()] for ws in wb}


async def test_results_cell_by_cell(every_state: Kit, tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    with every_state.journal() as j:
        write_results(j, out)
    sheets = read(out)
    assert list(sheets) == ["Summary", "Results", "Gift cards", "Needs attention", "Retry"]
    results = sheets["Results"]
    header = results[0]
    # The input's columns as the sheet wrote them, then the results.
    assert header[:5] == ("sheet row", "Numéro", "plan_code", "amount", "Nom")
    assert header[-13:-11] == ("ref", "state")
    col = {name: i for i, name in enumerate(header)}
    by_name = {r[col["Nom"]]: r for r in results[1:]}
    assert [r[col["state"]] for r in results[1:]] == [
        "FULFILLED",
        "REFUNDED",
        "UNKNOWN_ERROR",
        "QUEUED",
        "FULFILLED",
        "PARTIALLY_FILLED",
        "FULFILLED",
        "REJECTED",
        "UNCERTAIN",
        "INVALID",
    ]
    evil = results[1]
    assert evil[col["Nom"]] == '=HYPERLINK("http://evil.example","click")'
    assert evil[col["Numéro"]] == "0661234567"
    assert evil[col["debited (DA)"]] == "480.0" or evil[col["debited (DA)"]] == 480
    lina = by_name["Lina"]
    assert lina[col["suggested offers"]] == "FACTURE_DJEZZY 500 DA"
    assert "الرجاء إرسال أحد العروض" in lina[col["error message"]]
    alger = by_name["Office Alger"]
    assert len(alger[col["card code"]]) == 12 and alger[col["transaction no."]].startswith("AT-")
    assert by_name["Sold out meanwhile"][col["error code"]] == "ERR_VALIDATION"
    bad = by_name["Bad phone"]
    assert bad[col["error message"]] == (
        'phone: "77803734" has 8 digits; an Algerian mobile number has 10 (0XXXXXXXXX)'
    )
    assert bad[col["ref"]] is None and bad[0] == 11

    cards = sheets["Gift cards"]
    assert cards[0] == ("sheet row", "ref", "order id", "product", "type", "card code", "serial")
    assert [(c[0], c[4]) for c in cards[1:]] == [
        (7, "TEST_PARTIAL"),
        (7, "TEST_PARTIAL"),
        (8, "type_001"),
    ]
    assert all(c[5].startswith("SANDBOX-CARD-") for c in cards[1:])
    with zipfile.ZipFile(out) as z:  # states are coloured by conditional formatting rules
        assert b'<conditionalFormatting sqref="' in z.read("xl/worksheets/sheet2.xml")

    attention = {r[0]: r for r in sheets["Needs attention"][1:]}
    assert set(attention) == {3, 4, 5, 7, 9, 10, 11}
    assert attention[4][2] == "UNKNOWN_ERROR" and "reconcile" in attention[4][5]
    assert attention[10][2] == "UNCERTAIN" and "do not send it again by hand" in attention[10][5]
    assert attention[5][2] == "QUEUED"

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
    assert retry[1][:4] == ("mobile", "0600000002", "FACTURE_DJEZZY", "500")
    assert retry[2][0] == "giftcard" and retry[2][7:10] == (PSN, "TEST_PARTIAL", "2")
    assert len(retry) == 3  # the refunded internet card is not among them: it was not refunded

    summary = dict(r[:2] for r in sheets["Summary"] if r[0])
    assert summary["batch"] == "b" and summary["environment"] == "SANDBOX"
    assert summary["FULFILLED"] == 3 and summary["INVALID"] == 1
    assert summary["balance before (DA)"] is not None
    with zipfile.ZipFile(out) as z:
        assert any(n.startswith("xl/charts/chart") for n in z.namelist())
        sheet_xml = z.read("xl/worksheets/sheet2.xml")
        assert b"<f>" not in sheet_xml  # no formula anywhere
    assert (out.stat().st_mode & 0o777) == 0o600


async def test_retry_sheet_validates_as_it_is(every_state: Kit, tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    with every_state.journal() as j:
        write_results(j, out)
    result = await invoke(
        ["validate", str(out), "--sheet", "Retry", "--emulator", "--state-dir", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output


async def test_csv_and_json(every_state: Kit, tmp_path: Path) -> None:
    with every_state.journal() as j:
        csv_path = write_results(j, tmp_path / "r.csv", "csv")
        json_path = write_results(j, tmp_path / "r.json", "json")
    text = csv_path.read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text
    data = json.loads(json_path.read_text())
    assert data["summary"]["counts"]["FULFILLED"] == 3
    assert data["rows"][5]["cards"][0]["value"].startswith("SANDBOX-CARD-")


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
    assert len(read(out)["Results"]) == 3_001


async def test_report_command_rebuilds_from_the_journal(every_state: Kit, tmp_path: Path) -> None:
    out = tmp_path / "again.xlsx"
    result = await invoke(
        ["report", "--batch", "b", "--out", str(out), "--state-dir", str(every_state.state)]
    )
    assert result.exit_code == 0, result.output
    assert read(out)["Results"][1][0] == 2
    assert os.stat(out).st_mode & 0o077 == 0


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed")
async def test_a_spreadsheet_application_opens_it(every_state: Kit, tmp_path: Path) -> None:
    """LibreOffice converts the workbook to PDF without a repair prompt (it would fail headless)."""
    out = tmp_path / "r.xlsx"
    with every_state.journal() as j:
        write_results(j, out)
    done = await anyio.run_process(
        [
            "soffice",
            "--headless",
            f"-env:UserInstallation=file://{tmp_path}/lo",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(out),
        ],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pdf = tmp_path / "r.pdf"
    assert pdf.exists() and pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000


async def test_a_batch_with_nothing_to_attend_to(app, clock, tmp_path: Path) -> None:
    kit = Kit(app, clock, tmp_path / "state")
    await kit.load(mobile("0661234567"))
    assert (await kit.run()).exit_code == 0
    with kit.journal() as j:
        sheets = read(write_results(j, tmp_path / "r.xlsx"))
    assert len(sheets["Needs attention"]) == 1 and len(sheets["Retry"]) == 1
    assert sheets["Results"][1][sheets["Results"][0].index("state")] == "FULFILLED"


async def test_an_empty_batch_still_has_a_report(tmp_path: Path) -> None:
    with open_batch(tmp_path, "empty", now=lambda: "t") as j:
        sheets = read(write_results(j, tmp_path / "r.xlsx"))
    assert len(sheets["Results"]) == 1
