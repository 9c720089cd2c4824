"""A validated sheet laid out as the person wrote it: their headers, their rows, and every problem
on the cell that has it (a repair as a warning on its cell), for a face to show: in the reader's
language (the current one when `review` is called).

A problem names its column twice (`Problem.field` the canonical name, `Problem.column` the header
as written); it goes on the cell of that column, and on the row as a whole when the sheet has no
such column (an amount the sheet never gave, a duplicate of another row).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .i18n import _, shown
from .orders import Order, Problem, Validation
from .sheet import Sheet


@dataclass
class Cell:
    text: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ReviewedRow:
    number: int  # the row number the spreadsheet shows
    cells: list[Cell]  # one per header, in the sheet's order
    kind: str = ""
    ref: str = ""
    valid: bool = True
    skipped: bool = False  # not an order (a totals line)
    errors: list[str] = field(default_factory=list)  # problems of no column of the sheet
    warnings: list[str] = field(default_factory=list)
    order: Order | None = None

    @property
    def problems(self) -> int:
        return len(self.errors) + sum(len(c.errors) for c in self.cells)


def _place(row: ReviewedRow, sheet: Sheet, problem: Problem) -> None:
    index = None
    if problem.field and problem.field in sheet.columns:
        index = sheet.columns.index(problem.field)
    elif problem.column in sheet.headers:
        index = sheet.headers.index(problem.column)
    error = problem.severity == "error"
    message = shown(problem.message)
    if index is None:
        said = _("{column}: {message}").format(column=problem.column, message=message)
        (row.errors if error else row.warnings).append(said)
    else:
        (row.cells[index].errors if error else row.cells[index].warnings).append(message)


def review(sheet: Sheet, validation: Validation) -> list[ReviewedRow]:
    """Every row of the sheet, in its order, with its problems placed on its cells."""
    orders = {o.row: o for o in validation.orders}
    skipped: dict[int, list[Problem]] = {}
    for p in validation.skipped:
        skipped.setdefault(p.row, []).append(p)
    rows = []
    for line in sheet.rows:
        cells = [Cell(line.cells.get(column, "")) for column in sheet.columns]
        row = ReviewedRow(line.number, cells)
        order = orders.get(line.number)
        problems: list[Problem] = list(skipped.get(line.number, []))
        if order is not None:
            row.kind, row.ref, row.valid, row.order = order.kind, order.ref, order.valid, order
            problems += order.errors + order.warnings
        else:
            row.skipped = True
        for p in problems:
            _place(row, sheet, p)
        rows.append(row)
    return rows
