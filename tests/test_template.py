"""The empty order sheet: xlsx or CSV by its name, in the user's language, and it validates once
filled in as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from bulk_topup.cli import main


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    extra = ["--emulator", "--state-dir", str(tmp_path / "state")]
    return CliRunner().invoke(main, [*args, *extra], env=env)


def test_a_french_xlsx_template_validates_once_filled(tmp_path: Path) -> None:
    out = tmp_path / "modele.xlsx"
    result = cli(tmp_path, "template", str(out), "--lang", "fr")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"écrit {out} : remplissez une ligne par commande")
    wb = load_workbook(out)
    assert wb.sheetnames == ["Commandes", "Listes", "Mode d’emploi"]
    ws = wb["Commandes"]
    header = [c.value for c in ws[1]]
    assert header[:4] == ["Service", "Numéro", "Offre", "Montant"]
    assert header[-2:] == ["Nom", "Matricule"]
    assert ws["B2"].number_format == "@"  # the phone column is text: Excel keeps the 0
    assert any("'Listes'!" in dv.formula1 or "Listes!" in dv.formula1
               for dv in ws.data_validations.dataValidation)  # fmt: skip
    assert "Numéro" in wb["Mode d’emploi"]["A3"].value
    ws.append(["mobile", "0661234567", "PREPAID_MOBILIS", "500", None, None, None, None, None,
               None, "Amina", "E-01"])  # fmt: skip
    ws.append([None, None, None, None, "ADSL", "036362608", "1000", None, None, None, "Bureau"])
    wb.save(out)
    checked = cli(tmp_path, "validate", str(out))
    assert checked.exit_code == 0, checked.output
    assert "every row is valid" in checked.output


@pytest.mark.parametrize("dialect,sep", [("excel", ","), ("excel-fr", ";")])
def test_a_csv_template(tmp_path: Path, dialect: str, sep: str) -> None:
    out = tmp_path / "orders.csv"
    result = cli(tmp_path, "template", str(out), "--csv-dialect", dialect)
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads accents right only with a BOM
    assert raw.decode("utf-8-sig").splitlines() == [
        sep.join(["kind", "phone", "plan_code", "amount", "internet_type", "number", "value",
                  "product_id", "type_id", "quantity", "name", "employee_id"])
    ]  # fmt: skip
    with out.open("a", encoding="utf-8", newline="") as f:
        f.write(sep.join(["", "0661234567", "PREPAID_MOBILIS", "500"] + [""] * 8) + "\r\n")
    checked = cli(tmp_path, "validate", str(out))
    assert checked.exit_code == 0, checked.output


def test_a_template_is_xlsx_or_csv(tmp_path: Path) -> None:
    result = cli(tmp_path, "template", str(tmp_path / "orders.json"))
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: a template is written as .xlsx (with drop-down lists) or .csv; "
        f"{tmp_path / 'orders.json'} ends in neither"
    )
    assert not (tmp_path / "orders.json").exists()
