"""Where state lives: one folder per user, created private, never loosened or tightened behind
the user's back.

Journals (card codes among them), catalog caches, gift locks and crash reports live in the state
dir. The default is the user's XDG state dir, so every batch of a user shares one history wherever
a command runs; `--state-dir` / `BULK_TOPUP_STATE_DIR` override it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import StateDirError, UsageError
from .i18n import _


def default_state_dir() -> Path:
    """The user's state dir (XDG_STATE_HOME/bulk-topup, usually ~/.local/state/bulk-topup)."""
    import platformdirs

    return Path(platformdirs.user_state_path("bulk-topup"))


def prepare_state_dir(path: Path) -> Path:
    """Create the state dir 0700, or check one that exists: a directory of this user that others
    cannot write to. Raises StateDirError with a sentence; never changes an existing folder."""
    try:
        if not path.exists() and not path.is_symlink():
            path.mkdir(mode=0o700, parents=True)
            return path
        info = path.stat()  # follows a symlink: the folder that would hold the journals
    except FileExistsError:
        raise StateDirError(
            _("the state dir {path} cannot be created: a file has that name").format(path=path)
        ) from None
    except OSError as e:
        raise StateDirError(
            _("the state dir {path} cannot be created or read ({reason})").format(
                path=path, reason=e.strerror
            )
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise StateDirError(
            _("the state dir {path} is a file, not a folder; give another --state-dir").format(
                path=path
            )
        )
    if info.st_uid != os.getuid():
        raise StateDirError(
            _(
                "the state dir {path} belongs to another user; journals and card codes must live "
                "in a folder of your own: give another --state-dir"
            ).format(path=path)
        )
    if info.st_mode & stat.S_IWOTH:
        raise StateDirError(
            _(
                "the state dir {path} can be written by every user of this machine (like /tmp), "
                "so another user could alter its journals; give a folder of your own (--state-dir "
                "or BULK_TOPUP_STATE_DIR), or chmod o-w it yourself"
            ).format(path=path)
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateDirError(
            _("the state dir {path} cannot be written to; give another --state-dir").format(
                path=path
            )
        )
    return path


def private_folder(path: Path) -> Path:
    """A folder inside the state dir, created 0700 when it is missing."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StateDirError(
            _("{path} cannot be created ({reason})").format(path=path, reason=e.strerror)
        ) from None
    return path


def config_dir() -> Path:
    """Where keys and the default policy live: env BULK_TOPUP_CONFIG_DIR, else the user's
    config dir (e.g. ~/.config/bulk-topup)."""
    given = os.environ.get("BULK_TOPUP_CONFIG_DIR", "").strip()
    if given:
        folder = Path(given).expanduser()
    else:
        from platformdirs import user_config_dir

        folder = Path(user_config_dir("bulk-topup"))
    if folder.exists() and not folder.is_dir():
        raise UsageError(
            _(
                "the config dir {path} is a file, not a folder: set BULK_TOPUP_CONFIG_DIR to a "
                "folder"
            ).format(path=folder)
        )
    return folder
