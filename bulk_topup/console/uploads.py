"""The sheets people upload: each in a folder of its own under `<state dir>/uploads/` (0700), the
file 0600 under the name it was uploaded with (so messages name the user's file), beside a small
`upload.json` of what was asked of it (batch key, worksheet, options).

A request body is read at most `limit` bytes: a larger one is refused before it is stored, and the
sheet itself then meets the reader's own limits (rows, columns, cells, zip bombs) when checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..batchfile import check_batch_key
from ..errors import UsageError
from ..i18n import _
from ..planfile import default_plan_path
from ..statedir import prepare_state_dir, private_folder

SHEET_SUFFIXES = (".csv", ".xlsx", ".xls", ".ods")
ID = re.compile(r"^[0-9a-f]{16}$")
NAME_BYTES = 150  # an uploaded file's name; 105 bytes are left for what names beside it add


class TooLarge(Exception):
    """A request body beyond the console's upload limit."""


def limited(receive: Callable[[], Awaitable[Any]], limit: int) -> Callable[[], Awaitable[Any]]:
    """An ASGI `receive` that raises TooLarge once more than `limit` body bytes came in."""
    seen = 0

    async def wrapped() -> Any:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise TooLarge
        return message

    return wrapped


@dataclass
class Upload:
    id: str
    name: str  # the file's name as uploaded (made safe)
    batch: str
    uploaded_by: str
    uploaded_at: str
    size: int
    sha256: str
    sheet_name: str | None = None
    skip_invalid: bool = False
    allow_duplicates: bool = False
    folder: Path = Path()

    @property
    def path(self) -> Path:
        return self.folder / self.name

    @property
    def plan_path(self) -> Path:
        return default_plan_path(self.path, self.batch)

    def save(self) -> None:
        data = {k: v for k, v in asdict(self).items() if k != "folder"}
        target = self.folder / "upload.json"
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        os.replace(tmp, target)


def uploads_dir(state_dir: Path) -> Path:
    prepare_state_dir(state_dir)
    folder = state_dir / "uploads"
    private_folder(folder)
    return folder


def safe_name(filename: str) -> str:
    """The uploaded file's own name, without folders or characters a file name should not hold,
    at most NAME_BYTES bytes of UTF-8 (a file name may have 255, and bulk-topup writes files
    named after it: `<name>-<batch>.plan.json.sig`, `.<name>-<batch>-results.xlsx.<id>.tmp`).
    Raises UsageError when it is not a sheet bulk-topup reads."""
    base = re.sub(r"[^\w .()-]", "_", Path(filename.replace("\\", "/")).name).strip(" .")
    base = unicodedata.normalize("NFC", base)
    if not base.lower().endswith(SHEET_SUFFIXES):
        raise UsageError(
            _("{name} is not an order sheet: upload a .csv, .xlsx, .xls or .ods file").format(
                name=filename or _("the file")
            )
        )
    stem, suffix = os.path.splitext(base)
    room = NAME_BYTES - len(suffix.encode())
    # Cut at a byte count, then drop a character the cut split in two.
    stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .") or "sheet"
    return stem + suffix


def batch_key(given: str, name: str, today: str) -> str:
    """The batch key asked for, else one made of the sheet's name and the day."""
    key = " ".join(given.split())
    return check_batch_key(key) if key else f"{Path(name).stem}-{today}"


async def store(
    state_dir: Path, file: Any, *, name: str, batch: str, user: str, now: str, **options: Any
) -> Upload:
    """Copy an uploaded file (Starlette's UploadFile) into a new folder of its own, 0600."""
    folder = uploads_dir(state_dir) / secrets.token_hex(8)
    folder.mkdir(mode=0o700)
    digest, size = hashlib.sha256(), 0
    try:
        fd = os.open(folder / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := await file.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        upload = Upload(folder.name, name, batch, user, now, size, digest.hexdigest(),
                        folder=folder, **options)  # fmt: skip
        upload.save()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no half-stored upload is left behind
        raise
    return upload


def load(state_dir: Path, upload_id: str) -> Upload | None:
    """The upload of that id, or None."""
    if not ID.match(upload_id):
        return None
    folder = state_dir / "uploads" / upload_id
    try:
        data = json.loads((folder / "upload.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Upload(**data, folder=folder)


def recent(state_dir: Path, limit: int = 10) -> list[Upload]:
    """The latest uploads, newest first."""
    folder = state_dir / "uploads"
    if not folder.is_dir():
        return []
    found = [u for p in folder.iterdir() if (u := load(state_dir, p.name)) is not None]
    return sorted(found, key=lambda u: u.uploaded_at, reverse=True)[:limit]
