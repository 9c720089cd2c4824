"""The results workbook: Summary, Results, Gift cards, Needs attention and Retry, in the current
language, printable, its times in the report's time zone and its money as numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xlsxwriter

from ..i18n import NP_, _, ngettext, pgettext
from ..journal import Journal, Row, RowState
from ..sheet import ORDER_COLUMNS
from ..template import order_header
from .custody import shown
from .facts import retry_rows, summary
from .settings import ReportSettings
from .sheets import (
    DATE_WIDTH,
    LINE_HEIGHT,
    Col,
    Styles,
    Table,
    fit_width,
    lines_needed,
    print_setup,
)
from .words import (
    NEXT_STEP,
    STATE_ORDER,
    Columns,
    attention,
    describe,
    error_text,
    notes_text,
    offers_in_words,
    operator_of,
    state_words,
)

S = RowState
STATE_FILL = {
    S.FULFILLED: "C6EFCE",
    S.PARTIALLY_FILLED: "FFEB9C",
    S.REFUNDED: "FFC7CE",
    S.REJECTED: "FFC7CE",
    S.INVALID: "F4B183",
    S.UNKNOWN_ERROR: "FFD966",
    S.QUEUED: "DDEBF7",
    S.UNCERTAIN: "FFD966",
    S.SUBMITTED: "EDEDED",
    S.SENDING: "EDEDED",
    S.PLANNED: "FFFFFF",
}
SUMMARY_VALUE_WIDTH = 50  # the Summary's column of values, in characters
SHEETS = {
    "summary": NP_("sheet", "Summary"),
    "results": NP_("sheet", "Results"),
    "gifts": NP_("sheet", "Gift cards"),
    "attention": NP_("sheet", "Needs attention"),
    "retry": NP_("sheet", "Retry"),
}


def sheet_name(key: str) -> str:
    """A sheet's name in the current language (`--sheet` takes it to read the Retry sheet)."""
    return pgettext("sheet", SHEETS[key])


# --- the Results line, shared with the CSV ------------------------------------------------------

#: Columns of ours the printed Results leave out when no row of the batch fills them.
OPTIONAL = ("error", "offers", "card", "issued", "trans", "notes")


def result_layout(columns: Columns, inputs: list[str]) -> list[tuple[str, Col]]:
    """The Results columns: the sheet row, the `inputs` as the sheet wrote them, then ours."""
    return [
        ("row", Col(_("sheet row"), "count", 5)),
        *[(f"in:{c}", Col(columns.header(c), "wrap", columns.width(c))) for c in inputs],
        ("operator", Col(_("operator"), "text", 10)),
        ("product", Col(_("product"), "wrap", 16)),
        ("face", Col(_("face value"), "money", 12)),
        ("state", Col(_("state"), "wrap", 13)),
        ("code", Col(_("state code"), "text", 16)),
        ("ref", Col(_("ref"), "wrap", 15, small=True)),
        ("order", Col(_("order id"), "wrap", 11, small=True)),
        ("debited", Col(_("debited"), "money", 12)),
        ("error", Col(_("error"), "wrap", 26)),
        ("offers", Col(_("suggested offers"), "wrap", 14)),
        ("card", Col(_("card code"), "text", 13)),
        ("issued", Col(_("card issued"), "date", DATE_WIDTH)),
        ("trans", Col(_("transaction no."), "wrap", 12)),
        ("sent", Col(_("sent at"), "date", DATE_WIDTH)),
        ("settled", Col(_("settled at"), "date", DATE_WIDTH)),
        ("notes", Col(_("notes"), "wrap", 22)),
    ]


def result_values(r: Row, settings: ReportSettings, columns: Columns) -> dict[str, Any]:
    """A row's Results line by column key; dates as datetimes of the report's zone, money as
    numbers."""
    values: dict[str, Any] = {f"in:{c}": v for c, v in r.input}
    values.update(
        row=r.sheet_row,
        operator=operator_of(r),
        product=r.label,
        face=r.face_value if r.state != S.INVALID else None,
        state=state_words(r.state),
        code=r.state.value,
        ref=r.ref,
        order=r.order_id,
        debited=r.debited,
        error=error_text(r, columns),
        offers=offers_in_words(r),
        card=shown(r.card_code, settings),
        issued=settings.local(r.date_traitement) or r.date_traitement,
        trans=r.num_trans,
        sent=settings.local(r.sent_at),
        settled=settings.local(r.settled_at),
        notes=notes_text(r, columns),
    )
    return values


def _filled(journal: Journal) -> set[str]:
    """Which optional Results columns some row of the batch fills."""
    counts = journal.db.execute(
        "SELECT COUNT(NULLIF(error_message, '')) + COUNT(NULLIF(refund_message, '')) "
        "  + COALESCE(SUM(state = 'INVALID'), 0), "
        "COUNT(NULLIF(NULLIF(suggested, '[]'), '')), COUNT(NULLIF(card_code, '')), "
        "COUNT(NULLIF(date_traitement, '')), COUNT(NULLIF(num_trans, '')), "
        'COALESCE(SUM(problems LIKE \'%"severity": "warning"%\' OR in_sheet = 0), 0) FROM rows'
    ).fetchone()
    return {key for key, n in zip(OPTIONAL, counts, strict=True) if n}


# --- the workbook -------------------------------------------------------------------------------


def write_xlsx(journal: Journal, path: Path, settings: ReportSettings) -> None:
    # constant_memory: rows go to disk as they are written, so 100,000 rows cost no memory.
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    try:
        _fill(wb, journal, settings)
    finally:
        wb.close()


def _fill(wb: Any, journal: Journal, settings: ReportSettings) -> None:
    styles = Styles(wb)
    columns = Columns.of(journal)
    info = summary(journal)
    batch = str(info["batch"] or "")
    state_fills = {state_words(s): colour for s, colour in STATE_FILL.items()}
    _summary_sheet(wb, styles, info, settings)

    filled = _filled(journal)
    layout = [
        (key, col)
        for key, col in result_layout(columns, columns.used)
        if key != "code" and (key not in OPTIONAL or key in filled)
    ]
    keys = [key for key, _col in layout]
    table = Table(wb, sheet_name("results"), styles, batch, [col for _key, col in layout])
    for r in journal.iter_rows():
        values = result_values(r, settings, columns)
        table.append([values.get(k) for k in keys])
    rows = table.row - 1
    table.total(
        _("total"),
        {1: ngettext("{n} row", "{n} rows", rows).format(n=rows),
         keys.index("face"): info["face_value"], keys.index("debited"): info["debited"]},
    )  # fmt: skip
    table.colour(keys.index("state"), state_fills, last_row=rows)
    table.finish(filter_rows=rows)

    own = [c for c in columns.own if c in columns.filled]
    table = Table(wb, sheet_name("gifts"), styles, batch, [
        Col(_("sheet row"), "count", 5),
        *[Col(columns.header(c), "wrap", columns.width(c)) for c in own],
        Col(_("ref"), "wrap", 15, small=True),
        Col(_("order id"), "wrap", 11, small=True),
        Col(_("product id"), "wrap", 11, small=True),
        Col(_("type id"), "wrap", 12),
        Col(_("product"), "wrap", 24),
        Col(_("card code"), "wrap", 22),
        Col(_("serial"), "wrap", 14),
        Col(_("delivered at"), "date", DATE_WIDTH),
    ])  # fmt: skip
    for r in journal.iter_rows(with_cards=True):
        cells = dict(r.input)
        for card in r.cards:
            table.append(
                [r.sheet_row, *[cells.get(c) for c in own], r.ref, r.order_id,
                 r.payload.get("productId"), r.payload.get("typeId"), r.label,
                 shown(card.get("value"), settings), card.get("serial"),
                 settings.local(r.settled_at)]
            )  # fmt: skip
    cards = table.row - 1
    table.total(_("total"), {1: ngettext("{n} card", "{n} cards", cards).format(n=cards)})
    table.finish(filter_rows=cards)

    table = Table(wb, sheet_name("attention"), styles, batch, [
        Col(_("sheet row"), "count", 5),
        *[Col(columns.header(c), "wrap", columns.width(c)) for c in own],
        Col(_("ref"), "wrap", 15, small=True),
        Col(_("state"), "wrap", 13),
        Col(_("order"), "wrap", 26),
        Col(_("why"), "wrap", 40),
        Col(_("next step"), "wrap", 34),
    ])  # fmt: skip
    for r, why, step in attention(journal.iter_rows(NEXT_STEP), columns):
        cells = dict(r.input)
        table.append(
            [r.sheet_row, *[cells.get(c) for c in own], r.ref, state_words(r.state),
             describe(r), why, step]
        )  # fmt: skip
    rows = table.row - 1
    table.total(_("total"), {1: ngettext("{n} row", "{n} rows", rows).format(n=rows)})
    table.colour(1 + len(own) + 1, state_fills, last_row=rows)
    table.finish(filter_rows=rows)

    # The Retry sheet is an order sheet for a new batch: every cell text (phone numbers keep
    # their leading zero), the headers the sheet reader knows, and no totals line.
    # Its columns are as wide as what they hold: a line is typed again from the printed sheet.
    retry_cols = [*ORDER_COLUMNS, *own]
    retry_lines: list[list[str]] = []
    for r, line in retry_rows(journal.iter_rows([S.REFUNDED, S.PARTIALLY_FILLED])):
        cells = dict(r.input)
        line_values = [line.get(c) if c in line else cells.get(c) for c in retry_cols]
        retry_lines.append(
            ["" if v is None else str(v) for v in [*line_values, r.sheet_row, r.ref]]
        )
    headers = [*map(order_header, ORDER_COLUMNS), *map(columns.header, own), _("original row"),
               _("original ref")]  # fmt: skip
    widest = [40.0] * len(ORDER_COLUMNS) + [24.0] * len(own) + [10.0, 40.0]  # own columns: 24
    table = Table(wb, sheet_name("retry"), styles, batch, [
        Col(h, "text", fit_width(h, [texts[j] for texts in retry_lines], most=widest[j]))
        for j, h in enumerate(headers)
    ])  # fmt: skip
    for texts in retry_lines:
        table.append(texts)
    table.finish()


def _summary_sheet(wb: Any, styles: Styles, info: dict[str, Any], settings: ReportSettings) -> None:
    name = sheet_name("summary")
    ws = wb.add_worksheet(name)
    print_setup(ws, str(info["batch"] or ""), header_rows=0, one_page=True)
    ws.set_column(0, 0, 32)
    ws.set_column(1, 1, SUMMARY_VALUE_WIDTH)
    ws.set_column(2, 2, 18)
    ws.write_string(0, 0, _("Batch results"), styles.title)
    if settings.custody is not None:
        codes = _("masked here; in full in {file} (encrypted)").format(
            file=settings.custody.path.name
        )
    elif settings.mask_codes:
        codes = _("masked here; revealed one by one in the console, which records who saw them")
    else:
        codes = _("in this workbook: keep it like cash")
    rows: list[tuple[str, Any, str]] = [
        (_("batch"), info["batch"], "text"),
        (_("sheet"), info["sheet"], "wrap"),
        (_("sheet fingerprint"), info["fingerprint"], "text"),
        (_("environment"), info["environment"], "text"),
        (_("times are in"), settings.tz.key, "text"),
        (_("started"), settings.local(info["started_at"]), "date"),
        (_("last resumed"), settings.local(info["last_started_at"]), "date"),
        (_("finished"), settings.local(info["finished_at"]), "date"),
        (_("rows"), info["rows"], "count"),
        (_("face value"), info["face_value"], "money"),
        (_("debited"), info["debited"], "money"),
        (_("refunds"), info["refunds"], "money"),
        (_("balance before"), info["balance_before"], "money"),
        (_("balance after"), info["balance_after"], "money"),
        (_("card codes"), codes, "wrap"),
        (_("stopped because"), info["stop_reason"], "wrap"),
    ]
    r = 1
    for label, value, kind in rows:
        ws.write_string(r, 0, label, styles.bold)
        if value is None or value == "":
            pass
        elif kind == "date":
            ws.write_datetime(r, 1, value, styles.date)
        elif kind in ("money", "count"):
            ws.write_number(r, 1, value, styles.of(Col("", kind)))
        else:
            ws.write_string(r, 1, str(value), styles.of(Col("", kind)))
            if kind == "wrap":  # LibreOffice does not grow a row to fit its wrapped text
                ws.set_row(
                    r,
                    LINE_HEIGHT[False]
                    * lines_needed(str(value), Col("", kind, SUMMARY_VALUE_WIDTH)),
                )
        r += 1
    r += 1
    first = r  # the state table's header row (0-based)
    ws.write_string(r, 0, _("state"), styles.header)
    ws.write_string(r, 1, _("rows"), styles.header)
    ws.write_string(r, 2, _("state code"), styles.header)
    for state in STATE_ORDER:
        r += 1
        ws.write_string(r, 0, state_words(state), styles.fill(wb, STATE_FILL[state]))
        ws.write_number(r, 1, info["counts"][state.value], styles.count)
        ws.write_string(r, 2, state.value, styles.text)
    chart = wb.add_chart({"type": "bar"})
    chart.add_series({"name": _("rows"), "categories": [name, first + 1, 0, r, 0],
                      "values": [name, first + 1, 1, r, 1],
                      "data_labels": {"value": True}})  # fmt: skip
    chart.set_title({"name": _("Rows per state")})
    chart.set_legend({"none": True})
    chart.set_y_axis({"reverse": True})  # the states read top-down, as in the table
    chart.set_size({"width": 520, "height": 360})
    ws.insert_chart(1, 4, chart)
