"""The validate, catalog and template commands, driven through click."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from bulk_topup.cli import main

SAMPLES = Path(__file__).parent.parent / "samples"


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [*args, "--emulator", "--state-dir", str(tmp_path / "state")])

    return invoke


def test_sample_is_valid(cli) -> None:
    result = cli("validate", str(SAMPLES / "orders.xlsx"))
    assert result.exit_code == 0, result.output
    assert "every row is valid" in result.output
    assert (
        "rows: 13 (mobile 8 valid / 0 invalid, internet 2 valid / 0 invalid, giftcard 3 valid"
        in result.output
    )


def test_messy_sheet_json(cli) -> None:
    result = cli("validate", str(SAMPLES / "messy.csv"), "--format", "json", "--batch", "dec")
    assert result.exit_code == 3
    out = json.loads(result.output)
    rows = {r["row"]: r for r in out["rows"]}
    assert rows[4]["valid"] and rows[4]["order"]["MSSIDN"] == "0778037340"
    assert rows[4]["kind"] == "mobile" and rows[4]["ref"].startswith("dec-")
    assert rows[4]["warnings"] == [
        {
            "column": "Numéro",
            "field": "phone",
            "message": "leading 0 restored (lost by Excel): read as 0778037340",
        },
        {"column": "Montant", "field": "amount", "message": '"1 000" read as 1000 DA'},
    ]
    assert rows[11]["errors"] == [
        {
            "column": "Numéro",
            "field": "phone",
            "message": '"77803734" has 8 digits; an Algerian mobile number has 10 (0XXXXXXXXX)',
        }
    ]
    assert rows[11]["ref"] is None
    assert out["summary"]["per_kind"]["mobile"] == {"valid": 6, "invalid": 3}
    assert out["summary"]["face_value"] == 5750
    assert set(out["summary"]) >= {"rows", "valid", "invalid", "per_product", "duplicates"}


@pytest.mark.parametrize("body", ["", ",,\n,,\n"], ids=["header only", "blank rows"])
def test_a_sheet_without_order_rows_is_not_a_clean_validate(cli, tmp_path: Path, body) -> None:
    """Nothing to check is not "every row is valid": exit 3, as `run` and `--dry-run` say of
    the same sheet, never 0 (success said of nothing)."""
    sheet = tmp_path / "empty.csv"
    sheet.write_text("Phone,Plan,Amount\n" + body, encoding="utf-8")
    for fmt in ("text", "json"):
        result = cli("validate", str(sheet), "--format", fmt)
        assert result.exit_code == 3, result.output
    assert "the sheet has no order rows below its header" in cli("validate", str(sheet)).output


def test_unreadable_sheet_exit_2_without_traceback(cli, tmp_path: Path) -> None:
    bad = tmp_path / "x.xlsx"
    bad.write_bytes(b"\x00\x01not a sheet")
    result = cli("validate", str(bad))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ")


def test_catalog_json(cli) -> None:
    result = cli("catalog", "mobile", "--format", "json")
    assert result.exit_code == 0
    codes = {p["code"] for p in json.loads(result.output)["mobile"]}
    assert "PREPAID_DJEZZY" in codes


def test_template_round_trips(cli, tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    assert cli("template", str(out)).exit_code == 0
    wb = load_workbook(out)
    ws = wb["Orders"]
    assert ws["B1"].value == "phone" and ws["B2"].number_format == "@"
    assert any("Lists!" in dv.formula1 for dv in ws.data_validations.dataValidation)
    ws["B2"] = "0661234567"
    ws["C2"] = "PREPAID_MOBILIS"
    ws["D2"] = 500
    wb.save(out)
    result = cli("validate", str(out))
    assert result.exit_code == 0, result.output


def test_numbers_beyond_any_amount_are_refused_on_their_row(cli, tmp_path: Path) -> None:
    """Thousands of digits in a cell (a pasted blob, a hostile sheet) are a sentence naming the
    row and column, quoted short; Python's own integer limits never surface as a crash."""
    long = "5" * 5000
    sheet = tmp_path / "huge.csv"
    sheet.write_text(
        "Kind,Phone,Plan,Amount,Product ID,Type ID,Quantity\n"
        f"mobile,0770000001,PREPAID_DJEZZY,{long}\n"
        f"mobile,{'7' * 5000},PREPAID_DJEZZY,500\n"
        f"mobile,7E+999999999,PREPAID_DJEZZY,500\n"
        f"mobile,0770000002,PREPAID_DJEZZY,{'1' * 400}.000\n"
        f"giftcard,,,,gp-1,t-1,{'9' * 5000}\n"
        "mobile,0770000003,PREPAID_DJEZZY,000000000000000000000500\n",
        encoding="utf-8",
    )
    result = cli("validate", str(sheet))
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output and long not in result.output
    lines = result.output.splitlines()
    clipped = '"' + "5" * 39 + '…"'
    assert f"error   row 2, Amount: {clipped} is far too large to be an amount in dinars" in lines
    assert any(
        line.startswith("error   row 3, Phone: ") and "5000 digits" in line for line in lines
    )
    assert any(line.startswith("error   row 4, Phone: ") and "scientific" in line for line in lines)
    assert any(line.startswith("error   row 5, Amount: ") and "too large" in line for line in lines)
    assert any(
        line.startswith("error   row 6, Quantity: ") and "too many" in line for line in lines
    )
    assert not any(line.startswith("error   row 7") for line in lines)
    assert 'warning row 7, Amount: "000000000000000000000500" read as 500 DA' in lines
    assert max(map(len, lines)) < 300
