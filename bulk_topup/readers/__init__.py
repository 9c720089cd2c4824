"""Workbook files (XLSX, XLS, ODS) to one sheet's grid of cells, bounded before anything is read.

The spreadsheet reader (python-calamine) allocates a dense grid from the first to the farthest
cell holding a value: one stray value at XFD1048576 asks for gigabytes and aborts the process.
So the extent of a sheet is measured first, cheaply, from the file itself (the sheet's XML for
XLSX, the BIFF cell records for XLS, `content.xml` for ODS; never from the `<dimension>` element,
which is only a claim), and a sheet beyond the limits is refused with the address of the cell
that puts it there. XLS and ODS workbooks are parsed whole when opened, so every sheet of them is
measured; XLSX sheets are read one at a time, so only the sheet to read is. The same scans find
what the reader does not say: formulas, Excel error values and hidden rows.

Everything that can go wrong in a reader, panics included, becomes one `SheetError` sentence
that names the file and says why in words.

extent.py (limits, Grid, Extent, SheetScan), xlsx.py, xls.py and ods.py (each format measured),
opening.py (a file opened, its sheet chosen and read).
"""

from .extent import (
    MAX_CELLS,
    MAX_COLUMNS,
    MAX_FILE_BYTES,
    MAX_ROWS,
    OLE_MAGIC,
    SAVE_AS_XLSX,
    ZIP_MAGIC,
    Grid,
    SheetInfo,
    column_letters,
)
from .opening import read_workbook

__all__ = [
    "MAX_CELLS",
    "MAX_COLUMNS",
    "MAX_FILE_BYTES",
    "MAX_ROWS",
    "OLE_MAGIC",
    "SAVE_AS_XLSX",
    "ZIP_MAGIC",
    "Grid",
    "SheetInfo",
    "column_letters",
    "read_workbook",
]
