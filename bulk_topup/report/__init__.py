"""The results, rebuilt from the journal at any time: an xlsx workbook, or CSV, or JSON.

The workbook is what a finance team reads, prints and files: a Summary on one page with its chart,
one Results line per input row in input order, the delivered Gift cards, what Needs attention and
why, and a Retry sheet that is a ready order sheet for the refunded rows; in the current language
(`i18n.use_language`), its times real dates in the settings' time zone, its money numbers.

Card codes are cash: by default they are in the results; with `ReportSettings.custody` they are
masked there and written in full to a separate workbook encrypted with a password.

Every file is written under a temporary name, made 0600 and renamed over the old one, so a crash
never leaves a half-written file.

    report/
      settings.py  time zone, CSV dialect, custody, output format: the user's choices, checked
      words.py     a row in words: states, next steps, provider messages, operator
      facts.py     the Summary's figures, the Retry lines
      sheets.py    one printable worksheet (kinds of column, widths, print set-up, footer)
      xlsx.py      the results workbook
      flat.py      CSV and JSON
      custody.py   the codes workbook, encrypted
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..journal import Journal
from .custody import write_codes
from .facts import summary
from .flat import write_csv, write_json
from .settings import FORMATS, Custody, ReportSettings, from_environment, output_format
from .xlsx import sheet_name, write_xlsx

__all__ = [
    "FORMATS",
    "Custody",
    "ReportSettings",
    "default_path",
    "output_format",
    "sheet_name",
    "summary",
    "write_results",
]

_WRITERS: dict[str, Callable[[Journal, Path, ReportSettings], None]] = {
    "xlsx": write_xlsx,
    "csv": write_csv,
    "json": write_json,
}


def default_path(sheet: str | None, batch: str, fmt: str = "xlsx") -> Path:
    """`<sheet name>-<batch>-results.xlsx` next to the input sheet (else in the working dir)."""
    from ..refs import batch_slug

    if sheet:
        p = Path(sheet)
        return p.with_name(f"{p.stem}-{batch_slug(batch)}-results.{fmt}")
    return Path(f"{batch_slug(batch)}-results.{fmt}")


def _atomically(out: Path, write: Callable[[Path], None]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)  # mkstemp made it 0600 already: codes are never readable by others, even now
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _write_bytes(out: Path, data: bytes) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return _atomically(out, write)


def write_results(
    journal: Journal,
    out: str | Path,
    fmt: str = "xlsx",
    *,
    settings: ReportSettings | None = None,
) -> Path:
    """Write the results of `journal` to `out` (atomically, mode 0600) in `fmt`, and, when
    `settings.custody` is set, the card codes to the custody file, encrypted. Returns the
    results' path. The language is the current one (`i18n.use_language`); without settings,
    the environment's (`BULK_TOPUP_TZ`)."""
    settings = settings or from_environment()
    if fmt not in _WRITERS:
        raise ValueError(f"unknown format {fmt!r}")
    out = Path(out)
    writer = _WRITERS[fmt]
    if settings.custody is not None:
        # The codes first: results that say "masked here, in the codes file" never exist
        # without that file.
        write_codes(journal, settings.custody.path, settings, _write_bytes)
    return _atomically(out, lambda tmp: writer(journal, tmp, settings))
