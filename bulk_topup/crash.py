"""When something unforeseen breaks: one sentence for the person, the whole story in a file.

The faces turn every error they know into a sentence and an exit code. For the ones nobody
foresaw, `describe()` finds the sentence (a full disk, an unreadable state dir, a closed output)
and `write_report()` keeps the full traceback in a crash report in the state dir: mode 0600, every
secret this process read replaced by a mark, so it can be mailed to whoever maintains the tool.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from . import __version__
from .config import redact
from .errors import BulkTopupError
from .i18n import _


def leaf(exc: BaseException) -> BaseException:
    """The error that matters in what a task group raised: the first of ours, else the first."""
    while isinstance(exc, BaseExceptionGroup):
        ours = [e for e in exc.exceptions if _has_ours(e)]
        exc = (ours or list(exc.exceptions))[0]
    return exc


def _has_ours(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_has_ours(e) for e in exc.exceptions)
    return isinstance(exc, BulkTopupError)


def disk_full(exc: BaseException | None) -> bool:
    """A full disk, wherever it shows: an OSError, SQLite's words for it, or a library's own
    error raised from one (the workbook writer wraps the OSError it met)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc).lower()
            if "disk is full" in text or "disk i/o error" in text:
                return True
        if any(f"[Errno {n}]" in str(exc) for n in (errno.ENOSPC, errno.EDQUOT)):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def describe(exc: BaseException) -> str | None:
    """A sentence for a failure nobody raised on purpose but that has a plain cause."""
    if disk_full(exc):
        return _(
            "the disk is full (or failing): the journal or the results could not be written; "
            "everything committed before is safe; free some space, then run the same command "
            "again (a batch continues with resume)"
        )
    if isinstance(exc, sqlite3.DatabaseError):
        return _(
            "the journal cannot be read or written ({reason}); it may be damaged or on a disk "
            "that fails; keep a copy of the state dir before anything else"
        ).format(reason=exc)
    if isinstance(exc, PermissionError):
        return _("permission denied: {path} cannot be written or read").format(
            path=exc.filename or ""
        )
    return None


def _without_credentials(text: str) -> str:
    """A command line without the passwords and tokens an address may carry
    (`--notify json://user:secret@host` -> `json://[secret]@host`)."""
    return re.sub(r"(\w+://)[^/\s@]+@", r"\1[secret]@", text)


def write_report(exc: BaseException, state_dir: Path | None) -> Path | None:
    """The full, redacted traceback in a 0600 file (in the state dir's crash folder, else the
    system's temporary folder). Returns its path, or None when nowhere could take it."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    text = _without_credentials(
        redact(
            f"bulk-topup {__version__} crash report, {stamp} UTC\n"
            f"command: {_without_credentials(' '.join(sys.argv))}\n\n"
            + "".join(traceback.format_exception(exc))
        )
    )
    folders = []
    if state_dir is not None:
        folders.append(state_dir / "crash")
    folders.append(Path(tempfile.gettempdir()))
    for folder in folders:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"crash-{stamp}-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp makes it 0600
                f.write(text)
            return Path(name)
        except OSError:
            continue
    return None
