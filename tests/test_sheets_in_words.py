"""Sheets as people write them: French headers, a title, a totals line, repairs, hidden sheets,
and every message in the user's own words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from bulk_topup.cli import main
from bulk_topup.errors import SheetError
from bulk_topup.sheet import canonical, read_sheet

from .sheetkit import HEADER, ROW, xlsx

PSN = "507f1f77bcf86cd799439011"
CLERK_HEADER = ["Nom", "Numéro", "Offre", "Montant", "Type", "N° de ligne", "Valeur", "Produit",
                "Quantité"]  # fmt: skip


def clerk_sheet(path: Path) -> Path:
    """The way a French-speaking clerk writes it: a title, a blank line, French headers,
    amounts with spaces and `DA`, a phone number Excel took for a number, one `Type` column
    for ADSL/4G and the card type, and a TOTAL line at the bottom."""
    return xlsx(
        path,
        [
            ["Recharges et cartes cadeaux - décembre 2026"],
            [],
            CLERK_HEADER,
            ["Amel", 778037340, "PREPAID_DJEZZY", "1 000,00"],
            ["Bilal", "+213 661 23 45 67", "PREPAID_MOBILIS", "2 000"],
            ["Chahra", "0551234567", "PREPAID_OOREDOO", "500 DA"],
            ["Djamel", None, None, None, "ADSL", "036362608", "1000"],
            ["Emna", None, None, None, "4G", "213661234567", "1500"],
            ["Farid", None, None, None, "type_001", None, None, PSN, 2],
            ["TOTAL", None, None, "3 500", None, None, "2500"],
        ],
        title="Décembre",
    )


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [*args, "--emulator", "--state-dir", str(tmp_path / "state")])

    return invoke


def test_french_clerk_sheet_validates_in_the_users_words(cli, tmp_path: Path) -> None:
    result = cli("validate", str(clerk_sheet(tmp_path / "décembre.xlsx")))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    problems = [line for line in lines if line.startswith(("warning", "error"))]
    assert problems == [
        "warning row 4, Numéro: leading 0 restored (lost by Excel): read as 0778037340",
        'warning row 4, Montant: "1 000,00" read as 1000 DA',
        "warning row 5, Numéro: spaces or separators removed: read as 0661234567",
        "warning row 5, Numéro: +213 replaced by 0: read as 0661234567",
        'warning row 5, Montant: "2 000" read as 2000 DA',
        'warning row 6, Montant: "500 DA" read as 500 DA',
        'warning row 10, Nom: "TOTAL": a totals line, not an order; skipped',
    ]
    assert "note: columns carried through to the results unchanged (not order columns): Nom" in (
        lines
    )
    assert (
        "rows: 6 (mobile 3 valid / 0 invalid, internet 2 valid / 0 invalid, giftcard 1 valid"
        in result.output
    )
    assert "every row is valid" in result.output
    for canonical_name in ("phone", "amount", "plan_code", "number", "value", "internet_type"):
        assert f", {canonical_name}:" not in result.output


def test_french_clerk_sheet_json_keeps_both_names(cli, tmp_path: Path) -> None:
    result = cli("validate", str(clerk_sheet(tmp_path / "d.xlsx")), "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rows = {r["row"]: r for r in out["rows"]}
    assert set(rows) == {4, 5, 6, 7, 8, 9}
    assert rows[4]["warnings"][1] == {
        "column": "Montant",
        "field": "amount",
        "message": '"1 000,00" read as 1000 DA',
    }
    assert rows[7]["order"] == {**rows[7]["order"], "type": "ADSL", "number": "036362608"}
    assert rows[9]["order"]["typeId"] == "type_001" and rows[9]["order"]["quantity"] == 2
    assert out["skipped"] == [
        {
            "row": 10,
            "column": "Nom",
            "field": "Nom",
            "message": '"TOTAL": a totals line, not an order; skipped',
        }
    ]
    assert out["summary"]["skipped"] == [
        {"row": 10, "why": '"TOTAL": a totals line, not an order; skipped'}
    ]
    gift = rows[9]["order"]["face_value"]
    assert gift > 0
    assert out["summary"]["valid"] == 6 and out["summary"]["face_value"] == 3500 + 2500 + gift


def test_errors_name_the_header_as_written(cli, tmp_path: Path) -> None:
    path = xlsx(
        tmp_path / "e.xlsx",
        [
            ["Numéro", "Offre", "Montant", "Type", "N° de ligne", "Valeur"],
            ["77803734", "PREPAID_DJEZZY", "999,50"],
            [None, None, None, "ADSL", None, "1000"],
        ],
    )
    result = cli("validate", str(path))
    assert result.exit_code == 3
    assert 'error   row 2, Numéro: "77803734" has 8 digits' in result.output
    assert 'error   row 2, Montant: "999,50" is not a whole number of dinars' in result.output
    # An internet row of a mixed sheet: its own empty column is named, as written.
    assert "error   row 3, N° de ligne: is empty; write the line number" in result.output


def test_mixed_sheet_does_not_call_a_filled_column_empty(cli, tmp_path: Path) -> None:
    path = xlsx(
        tmp_path / "m.xlsx",
        [
            ["Type", "Numéro", "Offre", "Montant", "N° de ligne", "Valeur"],
            ["Mobile", "0661234567", "PREPAID_MOBILIS", "500"],
            ["ADSL", None, None, None, "036362608", "1000"],
            ["Recharge", "0771234567", "PREPAID_DJEZZY", "300"],
        ],
    )
    result = cli("validate", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    assert [r["kind"] for r in rows] == ["mobile", "internet", "mobile"]
    assert all(not r["errors"] for r in rows)


@pytest.mark.parametrize(
    ("header", "canon"),
    [
        ("Type", "internet_type"),
        ("Numéro de ligne", "number"),
        ("N° de ligne", "number"),
        ("Nº de ligne", "number"),
        ("Valeur", "value"),
        ("Produit", "product_id"),
        ("Quantité", "quantity"),
        ("Type de carte", "type_id"),
        ("Numéro de téléphone", "phone"),
        ("Code offre", "plan_code"),
        ("Montant (DA)", "amount"),
        ("Card type", "type_id"),
        ("Line number", "number"),
        ("Product ID", "product_id"),
        ("Réf.", "ref"),
        ("Nom", None),
    ],
)
def test_aliases_in_french_and_english(header: str, canon: str | None) -> None:
    assert canonical(header) == canon


# --- which sheet, which header -------------------------------------------------------------------


def test_hidden_and_chart_sheets_are_named_and_not_read(tmp_path: Path) -> None:
    wb = Workbook()
    hidden = wb.active
    hidden.title = "Old orders"
    hidden.append(HEADER)
    hidden.append(["0771234567", "PREPAID_DJEZZY", 9000])
    hidden.sheet_state = "hidden"
    wb.create_chartsheet("Chart")
    visible = wb.create_sheet("Orders")
    visible.append(HEADER)
    visible.append(ROW)
    secret = wb.create_sheet("Secret")
    secret.sheet_state = "veryHidden"
    wb.move_sheet("Chart", offset=-1)
    wb.active = 2
    wb.save(tmp_path / "h.xlsx")

    sheet = read_sheet(tmp_path / "h.xlsx")
    assert sheet.name == "Orders"
    assert [r.cells["phone"] for r in sheet.rows] == ["0661234567"]
    assert sheet.notes[0] == (
        "not read: 'Chart' (a chart sheet), 'Old orders' (hidden), 'Secret' (very hidden) "
        "(name a sheet with --sheet to read it)"
    )
    named = read_sheet(tmp_path / "h.xlsx", "Old orders")
    assert [r.cells["amount"] for r in named.rows] == ["9000"]
    with pytest.raises(SheetError, match="sheet 'Chart' of .* is a chart sheet, not a table"):
        read_sheet(tmp_path / "h.xlsx", "Chart")


def test_an_empty_sheet_names_the_others_and_the_option(tmp_path: Path) -> None:
    wb = Workbook()
    wb.active.title = "Feuil1"
    orders = wb.create_sheet("Commandes")
    orders.append(HEADER)
    wb.save(tmp_path / "e.xlsx")
    with pytest.raises(
        SheetError,
        match=r"sheet 'Feuil1' of .*e.xlsx is empty; the workbook's other sheets: 'Commandes' "
        r"\(name the one to read with --sheet\)",
    ):
        read_sheet(tmp_path / "e.xlsx")


def test_a_sales_table_is_not_an_order_sheet(tmp_path: Path) -> None:
    """Two alias matches are not enough: every column one kind needs must be there."""
    rows: list[list[object]] = [["Product", "Amount", "Region"]]
    rows += [[f"Widget {i}", 100 * i, "North"] for i in range(18)]
    with pytest.raises(SheetError, match=r"row 1 has Product, Amount, which is not enough"):
        read_sheet(xlsx(tmp_path / "sales.xlsx", rows))


def test_an_unused_duplicated_column_does_not_block_the_sheet(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("Numéro,Remarque,Offre,Montant,Remarque\n0661234567,a,PREPAID_MOBILIS,500,b\n")
    sheet = read_sheet(path)
    assert sheet.rows[0].cells["Remarque"] == "a" and sheet.rows[0].cells["Remarque (2)"] == "b"
    assert sheet.headers == ["Numéro", "Remarque", "Offre", "Montant", "Remarque"]
    assert sheet.notes == [
        "columns carried through to the results unchanged (not order columns): Remarque, Remarque"
    ]


def test_a_duplicated_order_column_names_file_and_sheet(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "d.xlsx", [["Numéro", "Offre", "Téléphone", "Montant"]])
    with pytest.raises(
        SheetError,
        match=r"sheet 'Orders' of .*d.xlsx, row 1: columns A \('Numéro'\) and C \('Téléphone'\) "
        r"both mean 'phone'; keep one",
    ):
        read_sheet(path)


def test_a_formula_without_value_keeps_its_text_in_a_note_column(tmp_path: Path) -> None:
    """openpyxl, like many generators, writes formulas without a computed value."""
    path = xlsx(
        tmp_path / "f.xlsx",
        [
            ["phone", "plan_code", "amount", "Note"],
            ["0661234567", "PREPAID_MOBILIS", 500, '=CONCATENATE("a","&b")'],
            ["0661234568", "PREPAID_MOBILIS", "=250*2", "plain"],
        ],
    )
    sheet = read_sheet(path)
    assert sheet.rows[0].cells["Note"] == '=CONCATENATE("a","&b")'
    assert sheet.rows[0].formulas == {"Note"}
    assert sheet.rows[1].cells["amount"] == "" and sheet.rows[1].formulas == {"amount"}
