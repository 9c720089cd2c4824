"""An empty order sheet in the user's language: xlsx with drop-down lists built from the catalog
and its number columns as text, or a CSV holding the header line alone.

The headers are ones the sheet reader recognises in every language (`Numéro`, `Offre`,
`Montant`...), so a template filled in as it is validates; the Retry sheet of the results uses
the same headers.
"""

from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from .catalog import Catalog
from .i18n import N_, NP_, _, pgettext
from .sheet import ORDER_COLUMNS

COLUMNS = [*ORDER_COLUMNS, "name", "employee_id"]
TEXT_COLUMNS = {"phone", "number", "product_id", "type_id", "employee_id"}
ROWS = 1000

#: An order sheet's headers (context "order column": the French ones are aliases the sheet
#: reader knows, so a translated template or Retry sheet reads back as it is).
ORDER_HEADERS = {
    "kind": NP_("order column", "kind"),
    "phone": NP_("order column", "phone"),
    "plan_code": NP_("order column", "plan_code"),
    "amount": NP_("order column", "amount"),
    "internet_type": NP_("order column", "internet_type"),
    "number": NP_("order column", "number"),
    "value": NP_("order column", "value"),
    "product_id": NP_("order column", "product_id"),
    "type_id": NP_("order column", "type_id"),
    "quantity": NP_("order column", "quantity"),
    "name": NP_("order column", "name"),
    "employee_id": NP_("order column", "employee_id"),
}

INSTRUCTIONS = [
    N_("One row per order. Leave the columns of other kinds empty."),
    N_("{kind}: mobile, internet or giftcard (inferred from the filled columns when empty)."),
    N_(
        "mobile: {phone} (0XXXXXXXXX), {plan_code} (list), {amount} in whole DA (empty for "
        "fixed plans)."
    ),  # fmt: skip
    N_(
        "internet: {internet_type} (ADSL or 4G), {number} (ADSL 0XXXXXXXX, 4G 213XXXXXXXXX), "
        "{value} (list)."
    ),  # fmt: skip
    N_("giftcard: {product_id} and {type_id} (see the {lists} sheet), {quantity} (1 or more)."),
    N_("Other columns ({name}, {employee_id}...) are copied to the results as they are."),
    N_("Phone and line number columns are text: Excel keeps the leading 0."),
    N_("Check the sheet with: bulk-topup validate THIS_FILE"),
]


def order_header(column: str) -> str:
    """The header of an order sheet column in the current language."""
    return pgettext("order column", ORDER_HEADERS.get(column, column))


def _quoted(sheet: str) -> str:
    """A sheet name as a formula names it: quoted when it holds more than letters and digits."""
    if sheet.isascii() and sheet.replace("_", "").isalnum():
        return sheet
    return "'" + sheet.replace("'", "''") + "'"


def headers() -> list[str]:
    return [order_header(c) for c in COLUMNS]


def write_template(path: str | Path, catalog: Catalog) -> None:
    """Write the xlsx template to `path`."""
    names = headers()
    wb = Workbook()
    ws = wb.active
    ws.title = pgettext("sheet", "Orders")
    ws.append(names)
    for cell in ws[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="305496")
    ws.freeze_panes = "A2"
    lists_name = pgettext("sheet", "Lists")
    lists = wb.create_sheet(lists_name)
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
        lists.cell(row=1, column=j, value=order_header(name)).font = Font(bold=True)
        for i, value in enumerate(values, start=2):
            lists.cell(row=i, column=j, value=str(value)).number_format = "@"
        if not values:
            continue
        col = ws.cell(row=1, column=COLUMNS.index(name) + 1).column_letter
        dv = DataValidation(
            type="list",
            formula1=f"={_quoted(lists_name)}!${letter}$2:${letter}${len(values) + 1}",
            allow_blank=True,
        )
        dv.add(f"{col}2:{col}{ROWS + 1}")
        ws.add_data_validation(dv)
    for j, name in enumerate(COLUMNS, start=1):
        ws.column_dimensions[ws.cell(row=1, column=j).column_letter].width = max(
            12, len(names[j - 1]) + 4
        )
        if name in TEXT_COLUMNS:
            for i in range(2, ROWS + 2):
                ws.cell(row=i, column=j).number_format = "@"
    help_ws = wb.create_sheet(pgettext("sheet", "Instructions"))
    help_ws.column_dimensions["A"].width = 100
    words = {c: order_header(c) for c in COLUMNS} | {"lists": lists_name}
    for line in INSTRUCTIONS:
        help_ws.append([_(line).format(**words)])
    wb.save(str(path))


def write_csv_template(path: str | Path, delimiter: str = ",") -> None:
    """Write a CSV template: the header line alone, UTF-8 with a byte order mark (Excel reads
    accents right only with one)."""
    with Path(path).open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f, delimiter=delimiter).writerow(headers())
