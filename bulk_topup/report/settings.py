"""How the results are written: the time zone, the CSV dialect, and whether card codes go into
custody (a separate, encrypted workbook) instead of the results.

Everything a user can get wrong here is refused with one sentence (`UsageError`, exit 2) before
anything is written or sent, so `run` can check its options before money moves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..clock import parse_iso
from ..errors import UsageError
from ..i18n import _

DEFAULT_TZ = "Africa/Algiers"
ENV_TZ = "BULK_TOPUP_TZ"
ENV_PASSWORD = "BULK_TOPUP_CODES_PASSWORD"  # noqa: S105 (the variable's name, not a password)
FORMATS = ("xlsx", "csv", "json")


@dataclass(frozen=True)
class CsvDialect:
    """What a spreadsheet application in a given locale expects of a CSV file."""

    name: str
    delimiter: str
    decimal: str  # the decimal separator numbers are written with


#: `excel`: comma-separated, decimal point (Excel and LibreOffice in an English locale).
#: `excel-fr`: semicolon-separated, decimal comma (a French-locale Excel opens it in columns).
#: Both are UTF-8 with a byte order mark (Excel reads accents and Arabic right only with one).
CSV_DIALECTS = {
    "excel": CsvDialect("excel", ",", "."),
    "excel-fr": CsvDialect("excel-fr", ";", ","),
}


@dataclass(frozen=True)
class Custody:
    """Card codes kept out of the results: masked there, in full in `path`, encrypted."""

    path: Path
    password: str = field(repr=False)


@dataclass(frozen=True)
class ReportSettings:
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TZ))
    csv: CsvDialect = CSV_DIALECTS["excel"]
    custody: Custody | None = None
    #: Card codes masked in the results and written nowhere else: for results shown to, or
    #: downloaded by, people who reveal a code only on purpose (the console)
    mask_codes: bool = False

    @property
    def masked(self) -> bool:
        """True when the results show card codes masked (in the custody file, or on request)."""
        return self.custody is not None or self.mask_codes

    def local(self, text: str | None) -> datetime | None:
        """An ISO time of the journal (UTC) as the wall-clock time of `tz`, without a zone
        (spreadsheets have none); None when empty or unreadable."""
        if not text:
            return None
        try:
            moment = parse_iso(text)
        except ValueError:
            return None
        return moment.astimezone(self.tz).replace(tzinfo=None, microsecond=0)


def from_environment() -> ReportSettings:
    """The settings of a caller that passed none: the zone of `BULK_TOPUP_TZ` when it names one
    (a wrong one is refused where the options are read, never after money moved), codes in the
    results, the `excel` CSV dialect."""
    try:
        return ReportSettings(tz=time_zone(None))
    except UsageError:
        return ReportSettings()


def time_zone(name: str | None, env: Mapping[str, str] | None = None) -> ZoneInfo:
    """The zone `name`, else `BULK_TOPUP_TZ`, else Africa/Algiers. The IANA database comes from
    the system, or from the `tzdata` package where the system has none."""
    env = os.environ if env is None else env
    chosen = (name or env.get(ENV_TZ) or DEFAULT_TZ).strip()
    try:
        return ZoneInfo(chosen)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError, OSError):
        raise UsageError(
            _(
                "{zone!r} is not a time zone; write one such as Africa/Algiers, Europe/Paris or UTC"
            ).format(zone=chosen)
        ) from None


def csv_dialect(name: str | None) -> CsvDialect:
    try:
        return CSV_DIALECTS[name or "excel"]
    except KeyError:
        raise UsageError(
            _("{name!r} is not a CSV dialect; write one of: {known}").format(
                name=name, known=", ".join(CSV_DIALECTS)
            )
        ) from None


def read_password(password_file: str | None, env: Mapping[str, str] | None = None) -> str:
    """The codes' password from `password_file`, else `BULK_TOPUP_CODES_PASSWORD` (never argv:
    other users of the machine can read a process's arguments). The file's last line break is
    not part of the password."""
    env = os.environ if env is None else env
    if password_file:
        try:
            text = Path(password_file).read_text(encoding="utf-8")
        except OSError as e:
            raise UsageError(
                _("the password file {path} cannot be read ({reason})").format(
                    path=password_file, reason=e.strerror or type(e).__name__
                )
            ) from None
        except UnicodeDecodeError:
            raise UsageError(
                _("the password file {path} is not UTF-8 text").format(path=password_file)
            ) from None
        password = text.removesuffix("\n").removesuffix("\r")
        where = password_file
    else:
        password = env.get(ENV_PASSWORD, "")
        where = ENV_PASSWORD
    if not password:
        if password_file:
            raise UsageError(_("the codes' password in {where} is empty").format(where=where))
        raise UsageError(
            _(
                "--codes-file needs a password: put it in a file named by "
                "--codes-password-file, or in the environment variable {env} (never on the "
                "command line)"
            ).format(env=ENV_PASSWORD)
        )
    return password


def custody(
    codes_file: str | None,
    password_file: str | None,
    results: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Custody | None:
    """The custody asked for by `--codes-file` and its password, or None (codes in the results)."""
    if not codes_file:
        if password_file:
            raise UsageError(_("--codes-password-file is only used with --codes-file"))
        return None
    path = Path(codes_file)
    if path.suffix.lower() != ".xlsx":
        raise UsageError(
            _("the codes file {path} must end in .xlsx: it is an encrypted Excel workbook").format(
                path=codes_file
            )
        )
    if results is not None and path.resolve() == Path(results).resolve():
        raise UsageError(_("the codes file and the results file must be two different files"))
    return Custody(path, read_password(password_file, env))


def output_format(out: str | None, fmt: str | None) -> str:
    """The format of the results: `--format` when given, else `out`'s extension, else xlsx.
    A `--format` that contradicts the extension is refused rather than guessed."""
    suffix = Path(out).suffix.lower().lstrip(".") if out else ""
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(
            _("{fmt!r} is not a format; write one of: {known}").format(
                fmt=fmt, known=", ".join(FORMATS)
            )
        )
    if fmt and suffix in FORMATS and suffix != fmt:
        raise UsageError(
            _(
                "--format {fmt} does not match {out}, whose name says {suffix}; change one of them"
            ).format(fmt=fmt, out=out, suffix=suffix)
        )
    if fmt:
        return fmt
    if not out:
        return "xlsx"
    if suffix in FORMATS:
        return suffix
    raise UsageError(
        _(
            "the format cannot be told from the name {out}: end it in .xlsx, .csv or .json, or "
            "give --format"
        ).format(out=out)
    )
