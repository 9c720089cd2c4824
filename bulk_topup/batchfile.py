"""A batch's journal file in the state dir: where it is, opening it under the batch's lock, and
the list of every batch.

A batch is locked while it runs: `open_batch(..., lock=True)` takes a non-blocking OS lock beside
the journal file, so a second run of the same batch stops at once (exit 7) before any API call.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import unicodedata
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .errors import BatchLockedError, UsageError
from .i18n import _
from .journal import Journal
from .refs import batch_slug
from .statedir import prepare_state_dir, private_folder

#: The longest batch key: it names files, appears in every command printed and in every ref.
MAX_BATCH_KEY = 100
#: Unicode categories that show nothing: controls, format marks (zero-width, bidi overrides),
#: surrogates, private use, unassigned, line and paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_batch_key(key: str) -> str:
    """A new batch's key as given, or a UsageError (exit 2): not empty, at most MAX_BATCH_KEY
    characters, and no invisible character (a control or format character would hide in every
    command printed, and make two keys that look alike)."""
    if not key.strip():
        raise UsageError(_("the batch key is empty; give one such as payroll-2026-11"))
    if len(key) > MAX_BATCH_KEY:
        raise UsageError(_("a batch key has at most {n} characters").format(n=MAX_BATCH_KEY))
    hidden = [c for c in key if unicodedata.category(c) in _INVISIBLE]
    if hidden:
        raise UsageError(
            _(
                "the batch key {key!r} holds a character that cannot be seen (U+{code:04X}); "
                "type it again with letters, digits and dashes"
            ).format(key=key, code=ord(hidden[0]))
        )
    return key


def batch_path(state_dir: Path, batch: str) -> Path:
    """The journal file of a batch: readable slug plus a hash, so keys never collide."""
    tag = hashlib.sha256(batch.encode()).hexdigest()[:8]
    return state_dir / "batches" / f"{batch_slug(batch)}-{tag}.sqlite"


def open_batch(
    state_dir: Path, batch: str, *, now: Any, lock: bool = True, create: bool = True
) -> Journal:
    """Open (or create) the journal of `batch`, taking its lock unless `lock=False`."""
    path = batch_path(state_dir, batch)
    if not create and not path.exists():
        raise UsageError(
            _(
                "there is no batch {batch!r} in {state_dir} (bulk-topup batches lists them; "
                "--state-dir says where to look)"
            ).format(batch=batch, state_dir=state_dir)
        )
    prepare_state_dir(state_dir)
    private_folder(path.parent)
    file_lock = None
    if lock:
        file_lock = FileLock(str(path) + ".lock")
        try:
            file_lock.acquire(timeout=0)
        except Timeout:
            raise BatchLockedError(
                _(
                    "batch {batch!r} is being run by another process right now (lock {lock}); "
                    "nothing was sent"
                ).format(batch=batch, lock=file_lock.lock_file)
            ) from None
    try:
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)  # card codes live here: 0600
            os.close(fd)
        journal = Journal(path, file_lock, now)
    except BaseException:
        if file_lock is not None:
            file_lock.release()
        raise
    if journal.get_meta("batch") is None:
        journal.set_meta(batch=batch, created_at=now())
    return journal


def batch_locked(state_dir: Path, batch: str) -> bool:
    """Whether a run (of this process or another: a CLI run, a console run) holds the batch's
    lock right now. The probe takes the lock for an instant when it is free, so a run starting
    at that very instant would stop with exit 7 (safely: nothing sent); call it when a person
    looks, not in a loop."""
    path = batch_path(state_dir, batch)
    if not path.exists():
        return False
    probe = FileLock(str(path) + ".lock")
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def list_batches(state_dir: Path) -> list[tuple[str, Path, dict[str, int], dict[str, str]]]:
    """(batch key, path, counts per state, meta) of every journal in the state dir."""
    found: list[tuple[str, Path, dict[str, int], dict[str, str]]] = []
    folder = state_dir / "batches"
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.sqlite")):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            counts = dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
            db.close()
        except sqlite3.Error:
            continue
        found.append((meta.get("batch", path.stem), path, counts, meta))
    return found
