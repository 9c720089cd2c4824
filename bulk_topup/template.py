"""An empty order sheet with drop-down lists built from the catalog, number columns as text."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from .catalog import Catalog
from .sheet import ORDER_COLUMNS

COLUMNS = [*ORDER_COLUMNS, "name", "employee_id"]
TEXT_COLUMNS = {"phone", "number", "product_id", "type_id", "employee_id"}
ROWS = 1000

INSTRUCTIONS = [
    "One row per order. Leave the columns of other kinds empty.",
    "kind: mobile, internet or giftcard (inferred from the filled columns when empty).",
    "mobile: phone (0XXXXXXXXX), plan_code (list), amount in whole DA (empty for fixed plans).",
    "internet: internet_type (ADSL or 4G), number (ADSL 0XXXXXXXX, 4G 213XXXXXXXXX), value (list).",
    "giftcard: product_id and type_id (see the Lists sheet), quantity (1 or more).",
    "Other columns (name, employee_id...) are copied to the results as they are.",
    "Phone and number columns are text: Excel keeps the leading 0.",
    "Check the sheet with: bulk-topup validate THIS_FILE.xlsx",
]


def write_template(path: str | Path, catalog: Catalog) -> None:
    """Write the template to `path`."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Orders"
    ws.append(COLUMNS)
    for cell in ws[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="305496")
    ws.freeze_panes = "A2"
    lists = wb.create_sheet("Lists")
    columns: dict[str, list[str]] = {
        "kind": ["mobile", "internet", "giftcard"],
        "plan_code": sorted(p.code for p in catalog.plans.values() if p.enabled),
        "internet_type": ["ADSL", "4G"],
        "value": [
            str(v)
            for v in sorted(
                {p.value for ps in catalog.internet.values() for p in ps if p.available}
            )
        ],
        "product_id": [p.id for p in catalog.gifts.values() if p.enabled],
        "type_id": sorted({t.id for ts in catalog.gift_types.values() for t in ts}),
    }
    for j, (name, values) in enumerate(columns.items(), start=1):
        letter = lists.cell(row=1, column=j).column_letter
        lists.cell(row=1, column=j, value=name).font = Font(bold=True)
        for i, value in enumerate(values, start=2):
            lists.cell(row=i, column=j, value=str(value)).number_format = "@"
        if not values:
            continue
        col = ws.cell(row=1, column=COLUMNS.index(name) + 1).column_letter
        dv = DataValidation(
            type="list",
            formula1=f"=Lists!${letter}$2:${letter}${len(values) + 1}",
            allow_blank=True,
        )
        dv.add(f"{col}2:{col}{ROWS + 1}")
        ws.add_data_validation(dv)
    for j, name in enumerate(COLUMNS, start=1):
        ws.column_dimensions[ws.cell(row=1, column=j).column_letter].width = max(12, len(name) + 4)
        if name in TEXT_COLUMNS:
            for i in range(2, ROWS + 2):
                ws.cell(row=i, column=j).number_format = "@"
    help_ws = wb.create_sheet("Instructions")
    help_ws.column_dimensions["A"].width = 100
    for line in INSTRUCTIONS:
        help_ws.append([line])
    wb.save(str(path))
