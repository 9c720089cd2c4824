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


def test_a_sheet_of_headers_only_is_never_a_success(cli, tmp_path: Path) -> None:
    """Nothing to send is exit 3 from validate, plan and a dry run alike (a run says 3 too), and a
    dry run says it before a policy asks for an approval of 0 DA."""
    sheet = tmp_path / "headers.csv"
    sheet.write_text("Phone,Plan,Amount\n", encoding="utf-8")
    result = cli("validate", str(sheet))
    assert result.exit_code == 3, result.output
    assert "the sheet has no order rows below its header" in result.output
    assert cli("validate", str(sheet), "--format", "json").exit_code == 3
    planned = cli("plan", str(sheet), "--batch", "empty", "--out", str(tmp_path / "p.json"))
    assert planned.exit_code == 3, planned.output
    assert "there is nothing to plan" in planned.output
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[approvers]\nkarim = "ed25519:S/OklQV6PvaG1cQntJ4lkK2wndFloHNJDc9YJ0Q5Ohg="\n'
        "[approval]\nrequired = 1\n",
        encoding="utf-8",
    )
    dry = cli("run", str(sheet), "--batch", "empty", "--dry-run", "--policy", str(policy))
    assert dry.exit_code == 3, dry.output
    assert "approval" not in dry.output and "nothing was sent" in dry.output


@pytest.mark.parametrize(
    "url",
    ["notaurl", "ftp://api.example.dz", "http://", "http://[::1", "http://127.0.0.1:99999",
     "https://api.example.dz/?x=1", "https://api.example.dz/\x07"],
)  # fmt: skip
def test_an_api_address_no_client_can_call_is_a_usage_error(tmp_path: Path, url: str) -> None:
    """A mistyped ONECLICK_API_URL or --api-url is one sentence and exit 2 before any call,
    never a crash report (nor a run's exit 5 as if rows were open)."""
    state = tmp_path / "state"
    sheet = str(SAMPLES / "orders.csv")
    env = {"ONECLICK_API_KEY": "emulator-sandbox-key"}
    for args in (
        ["validate", sheet, "--api-url", url],
        ["run", sheet, "--batch", "u", "--yes", "--api-url", url],
    ):
        result = CliRunner().invoke(main, [*args, "--state-dir", str(state)], env=env)
        assert result.exit_code == 2, result.output
        assert "is not one bulk-topup can call" in result.output
    by_env = CliRunner().invoke(
        main, ["catalog", "--state-dir", str(state)], env={**env, "ONECLICK_API_URL": url}
    )
    assert by_env.exit_code == 2 and "ONECLICK_API_URL" in by_env.output
    assert not (state / "crash").exists()


def test_a_password_in_the_api_address_is_refused_unshown(tmp_path: Path) -> None:
    """A password in the address would be printed, written in plan files and journals: refused
    without echoing it."""
    result = CliRunner().invoke(
        main,
        ["validate", str(SAMPLES / "orders.csv"), "--state-dir", str(tmp_path / "s")],
        env={"ONECLICK_API_KEY": "emulator-sandbox-key",
             "ONECLICK_API_URL": "https://clerk:Hunter2secret@api.example.dz"},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "holds a password" in result.output and "Hunter2secret" not in result.output


@pytest.mark.parametrize(
    "option",
    [["--rate", "nan"], ["--rate", "inf"], ["--max-total", "nan"], ["--max-total", "inf"],
     ["--repeat-window", "nan"], ["--repeat-window", "1e9"], ["--emulator-speed", "inf"]],
)  # fmt: skip
def test_numbers_that_are_no_numbers_are_refused(cli, tmp_path: Path, option: list[str]) -> None:
    """click lets `nan` and `inf` through a range: `--max-total nan` switched the cap off in
    silence, `--rate nan` hung, `--rate inf` and a window of 1e9 days crashed."""
    result = cli("run", str(SAMPLES / "orders.csv"), "--batch", "n", "--dry-run", *option)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option[0]}'" in result.output
    assert not (tmp_path / "state" / "crash").exists()
