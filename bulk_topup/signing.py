"""Approvers' keys and their signatures on a plan's exact bytes (Ed25519, with `cryptography`).

Private keys live in `<config dir>/keys/NAME.key` (PKCS8 PEM, mode 0600, never overwritten); the
public half is the line `NAME = "ed25519:<base64>"` that goes under [approvers] in the policy.

Signatures live in a detached file beside the plan (`PLAN.sig`, one JSON line per approval), not
inside it: the plan's bytes, and so its sha256 and the digest people read aloud, never change as
approvals come in; approvers on different machines each add a line (files of lines merge with
`cat`); and nothing a signature adds can be mistaken for part of what was signed.

What is signed is the canonical JSON of (format, plan sha256, the signer's public key, the signing
time): a signature names its plan, and cannot be moved to another key or another plan.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import UsageError
from .i18n import _
from .planfile import Plan, signatures_path
from .statedir import config_dir

SIGNATURE_FORMAT = "bulk_topup.approval.v1"
KEY_PREFIX = "ed25519:"
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# --- keys ----------------------------------------------------------------------------------------


def keys_dir() -> Path:
    return config_dir() / "keys"


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str, where: str | None = None) -> Ed25519PublicKey:
    """`ed25519:<base64 of 32 bytes>` as `keys new` prints it. Raises UsageError."""
    where = where or _("the public key")
    text = text.strip()
    if not text.startswith(KEY_PREFIX):
        raise UsageError(
            _("{where} must start with {prefix} (as bulk-topup keys new prints it)").format(
                where=where, prefix=KEY_PREFIX
            )
        )
    try:
        raw = base64.b64decode(text[len(KEY_PREFIX) :], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise UsageError(
            _("{where} is not a valid Ed25519 public key").format(where=where)
        ) from None


def _check_name(name: str) -> None:
    if not KEY_NAME_RE.match(name):
        raise UsageError(
            _("{name!r} cannot name a key: use letters, digits, '.', '_' or '-' (at most 64)")
            .format(name=name)
        )  # fmt: skip


def new_key(name: str) -> tuple[Path, str]:
    """Make an Ed25519 key pair: the private key in `<config>/keys/NAME.key` (mode 0600, never
    overwritten), the public one beside it. Returns the private key's path and the policy line
    `NAME = "ed25519:..."` to add under [approvers]."""
    _check_name(name)
    folder = keys_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / f"{name}.key"
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise UsageError(
            _(
                "a key named {name} already exists ({path}); a key is never overwritten: choose "
                "another name, or remove the old key yourself if it is really to go"
            ).format(name=name, path=path)
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = public_key_text(key.public_key())
    line = f'{name} = "{public}"'
    (folder / f"{name}.pub").write_text(line + "\n", encoding="utf-8")
    return path, line


def load_signing_key(name: str | None) -> tuple[str, Ed25519PrivateKey]:
    """The approver's private key by name; without a name, the only key there is, or the one
    named after the OS user. Raises UsageError."""
    folder = keys_dir()
    if name is None:
        found = sorted(p.stem for p in folder.glob("*.key")) if folder.is_dir() else []
        if len(found) == 1:
            name = found[0]
        elif _os_user() in found:
            name = _os_user()
        elif not found:
            raise UsageError(
                _("no approval key in {folder}; make one with: bulk-topup keys new NAME").format(
                    folder=folder
                )
            )
        else:
            raise UsageError(
                _("several keys in {folder} ({names}); pick one with --key").format(
                    folder=folder, names=", ".join(found)
                )
            )
    _check_name(name)
    path = folder / f"{name}.key"
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            _("no key named {name} in {folder} (bulk-topup keys new {name})").format(
                name=name, folder=folder
            )
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            _(
                "the key file {path} can be read by other users, so a signature made with it "
                "proves nothing; chmod 600 it (and consider making a new key)"
            ).format(path=path)
        )
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise UsageError(
            _("{path} is not a private key bulk-topup can use").format(path=path)
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(_("{path} is not an Ed25519 key").format(path=path))
    return name, key


def _os_user() -> str:
    from .journal import _os_user as user

    return user()


# --- signatures ----------------------------------------------------------------------------------


def signed_message(plan_sha256: str, public_key: str, signed_at: str) -> bytes:
    from .refs import canonical_json

    return canonical_json([SIGNATURE_FORMAT, plan_sha256, public_key, signed_at])


def sign(plan: Plan, name: str, key: Ed25519PrivateKey, signed_at: str) -> dict[str, str]:
    """One approval of `plan`: a signature line, to be appended to the plan's .sig file."""
    public = public_key_text(key.public_key())
    signature = key.sign(signed_message(plan.sha256, public, signed_at))
    return {
        "format": SIGNATURE_FORMAT,
        "plan_sha256": plan.sha256,
        "approver": name,
        "public_key": public,
        "signed_at": signed_at,
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def read_signatures(plan_path: str | Path) -> list[Any]:
    """The signature lines beside a plan (a line that is not JSON comes back as its text)."""
    path = signatures_path(plan_path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(
            _("the signatures file {path} cannot be read ({reason})").format(path=path, reason=e)
        ) from None
    found: list[Any] = []
    for line in lines:
        if line.strip():
            try:
                found.append(json.loads(line))
            except ValueError:
                found.append(line)
    return found


def add_signature(plan_path: str | Path, line: dict[str, str]) -> Path:
    """Append one approval to the plan's .sig file (created if need be)."""
    path = signatures_path(plan_path)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


@dataclass(frozen=True)
class Approval:
    approver: str  # the policy's name for the key that signed
    public_key: str
    signed_at: str
