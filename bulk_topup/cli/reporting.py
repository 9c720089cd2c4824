"""Options shared by the commands that write results: time zone, CSV dialect, card codes in
custody. `run`, `resume` and `reconcile` take them as `report` does:

    @report_options            # adds --tz --csv-dialect --codes-file --codes-password-file
    def run(..., **kw):
        report = report_settings(kw, out=result_path)   # before anything is sent
        ...
        write_results(journal, out, fmt, settings=report)

The language (`--lang`) is every command's: see `cli/__init__.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..i18n import _
from ..report.settings import CSV_DIALECTS, DEFAULT_TZ, ENV_PASSWORD, ENV_TZ
from . import F


def csv_dialect_option(fn: F) -> F:
    return click.option(
        "--csv-dialect",
        type=click.Choice(list(CSV_DIALECTS)),
        default="excel",
        show_default=True,
        help="CSV for a spreadsheet in an English locale (excel: ',' and 1192.50) or a French "
        "one (excel-fr: ';' and 1192,50); UTF-8 with a byte order mark either way.",
    )(fn)


def report_options(fn: F) -> F:
    """The options of the commands that write results."""
    options = [
        click.option(
            "--tz",
            envvar=ENV_TZ,
            default=None,
            help=f"Time zone of the dates in the results, e.g. Europe/Paris or UTC [env {ENV_TZ}; "
            f"default {DEFAULT_TZ}].",
        ),
        csv_dialect_option,
        click.option(
            "--codes-file",
            type=click.Path(dir_okay=False),
            default=None,
            help="Keep card codes out of the results: masked there, in full in this .xlsx "
            "file, encrypted with the password of --codes-password-file or env "
            f"{ENV_PASSWORD}.",
        ),
        click.option(
            "--codes-password-file",
            type=click.Path(dir_okay=False),
            default=None,
            help=f"File holding the codes file's password (else env {ENV_PASSWORD}; never on "
            "the command line).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def report_settings(kw: dict[str, Any], out: str | Path | None = None) -> Any:
    """The ReportSettings of the options `report_options` added (popped from `kw`). Raises
    UsageError (exit 2) for a wrong zone, a codes file without a password, and the like."""
    from ..config import key_file_is_private
    from ..report.settings import ReportSettings, csv_dialect, custody, time_zone

    password_file = kw.pop("codes_password_file", None)
    settings = ReportSettings(
        tz=time_zone(kw.pop("tz", None)),
        csv=csv_dialect(kw.pop("csv_dialect", None)),
        custody=custody(kw.pop("codes_file", None), password_file, Path(out) if out else None),
    )
    if password_file and not key_file_is_private(password_file):
        click.secho(
            _(
                "warning: the password file {path} can be read by other users of this "
                "machine; chmod 600 it"
            ).format(path=password_file),
            fg="yellow",
            err=True,
        )
    return settings


def echo_written(path: Path, settings: Any) -> None:
    """Say where the results (and the codes) went."""
    click.echo(_("results: {path}").format(path=path))
    if settings.custody is not None:
        click.echo(
            _(
                "card codes: {path} (encrypted with the password you gave; the results show "
                "them masked)"
            ).format(path=settings.custody.path)
        )
