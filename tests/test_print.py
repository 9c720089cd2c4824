"""The workbook as a finance team prints it: LibreOffice renders it to PDF, and the pages are
counted. Slow (LibreOffice starts); skipped where LibreOffice is not installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from bulk_topup.i18n import use_language
from bulk_topup.report import write_results

from .runkit import Kit, gift, internet, mobile

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.office,
    pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed"),
]

PLANS = ["PREPAID_MOBILIS", "PREPAID_DJEZZY", "PREPAID_OOREDOO"]
PREFIX = {"PREPAID_MOBILIS": "066", "PREPAID_DJEZZY": "077", "PREPAID_OOREDOO": "055"}


@pytest.fixture
async def payroll(app, clock, tmp_path: Path) -> Kit:
    """A mixed sheet like the demo's (every kind, names, employee ids, the sandbox's refunds and
    UNKNOWN_ERROR), long enough for Results to need several pages down."""
    kit = Kit(app, clock, tmp_path / "state", batch="payroll-2026-11")
    staff = [
        {**mobile(f"{PREFIX[PLANS[i % 3]]}{i:07d}", 500 + 10 * i, PLANS[i % 3]),
         "name": f"Employé numéro {i} Benali", "employee_id": f"E{i:04d}"}
        for i in range(160)
    ]  # fmt: skip
    await kit.load(
        {**mobile("0600000001", plan="PREPAID_DJEZZY"), "name": "Refunded", "employee_id": "T1"},
        {**mobile("0600000002", plan="PREPAID_DJEZZY"), "name": "Offers", "employee_id": "T2"},
        {**mobile("0600000003", plan="PREPAID_DJEZZY"), "name": "Unknown", "employee_id": "T3"},
        {**internet("036362608"), "name": "Office Alger", "employee_id": "OFF1"},
        {**internet("213661234567", 1500, "4G"), "name": "Office Oran", "employee_id": "OFF2"},
        {**gift(qty=2), "name": "Rewards", "employee_id": "E9001"},
        {**gift("TEST_PARTIAL", 4), "name": "Partial", "employee_id": "E9002"},
        *staff,
    )
    await kit.run()
    return kit


def pages_by_sheet(pdf: Path, batch: str, sheets: list[str]) -> dict[str, list[str]]:
    """Each sheet's pages' text, told apart by the footer (`batch <key> - <sheet>`)."""
    found: dict[str, list[str]] = {name: [] for name in sheets}
    for page in PdfReader(pdf).pages:
        text = page.extract_text()
        owners = [name for name in sheets if f"{batch} - {name}" in text]
        assert len(owners) == 1, text[-200:]
        found[owners[0]].append(text)
    return found


async def test_the_workbook_prints_as_a_finance_team_files_it(payroll: Kit, tmp_path: Path) -> None:
    books = {}
    for lang in ("en", "fr"):
        with payroll.journal() as j, use_language(lang):
            books[lang] = write_results(j, tmp_path / f"results-{lang}.xlsx")
    done = await anyio.run_process(
        ["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/lo",
         "--convert-to", "pdf", "--outdir", str(tmp_path), *map(str, books.values())],
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = {
        "en": ["Summary", "Results", "Gift cards", "Needs attention", "Retry"],
        "fr": ["Résumé", "Résultats", "Cartes cadeaux", "À traiter", "À renvoyer"],
    }
    for lang, sheets in names.items():
        pages = pages_by_sheet(tmp_path / f"results-{lang}.pdf", "payroll-2026-11", sheets)
        summary, results = pages[sheets[0]], pages[sheets[1]]
        assert len(summary) == 1, lang  # the Summary, its chart included, on one page
        # Results run several pages down, each one whole across: the first and the last
        # column's headings are on every page (a sheet split across would lose one of them).
        header = [c.value for c in load_workbook(books[lang])[sheets[1]][1]]
        first, last = header[0].split()[0], header[-1].split()[0]
        assert first == ("sheet" if lang == "en" else "ligne") and last != first
        assert len(results) >= 2, lang
        for n, text in enumerate(results, start=1):
            assert first in text and last in text, (lang, n)
            assert f"page {n}" in text or f"page {n + 1}" in text  # the footer's page number
        assert "159 Benali" in results[-1]  # the last line, on the last page
        for name in sheets[2:]:
            assert len(pages[name]) == 1, (lang, name)
