"""The approval policy: who may approve, how many approvals a plan needs, and the caps.

A TOML file, read with the standard library's `tomllib`: `/etc/bulk-topup/policy.toml` when it
exists (then nothing else may replace it), else `--policy`, else env `BULK_TOPUP_POLICY`, else
`policy.toml` in the user's config dir (`BULK_TOPUP_CONFIG_DIR`, default
platformdirs' `user_config_dir("bulk-topup")`). Without a policy file nothing needs approving and
no cap applies. Every key is checked: a misspelt key in a control that guards money must not
silently weaken it.

    [approvers]                      # name = the public line `bulk-topup keys new NAME` prints
    alice = "ed25519:..."

    [approval]
    required = 1                     # approvals every run needs (0: only the tiers ask for some)
    self_approval = false            # may the person who prepared a plan approve it?
    price_tolerance_percent = 2      # how far a catalog price may move between plan and run

    [[approval.tiers]]               # more approvals above a total face value (DA)
    above = 500000
    required = 2

    [caps]                           # DA of face value; leave a cap out for none
    per_run = 2000000
    per_recipient = 20000            # to one number in one run
    per_period = 10000000            # across every batch of the state dir...
    period_days = 30                 # ...in the last this many days

Amounts are face value (what the recipients get), the figure `--max-total` and the plan's totals
use too.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import tomllib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .clock import parse_iso
from .errors import UsageError
from .i18n import _, money
from .statedir import config_dir

#: The machine's policy: when it exists, it is the one in force for every user and command.
SYSTEM_POLICY = Path("/etc/bulk-topup/policy.toml")

#: States of a row whose money is (or may be) spent: what a period cap counts. Refused and
#: refunded rows gave the money back; planned and invalid rows never sent any.
SPENT_STATES = ("SENDING", "SUBMITTED", "FULFILLED", "PARTIALLY_FILLED", "UNCERTAIN",
                "UNKNOWN_ERROR", "QUEUED")  # fmt: skip


@dataclass(frozen=True)
class Tier:
    above: float
    required: int


@dataclass
class Policy:
    path: Path
    approvers: dict[str, str] = field(default_factory=dict)  # name -> "ed25519:<base64>"
    required: int = 1
    tiers: list[Tier] = field(default_factory=list)
    self_approval: bool = False
    price_tolerance: float = 0.0  # percent
    per_run: float | None = None
    per_recipient: float | None = None
    per_period: float | None = None
    period_days: int = 30
    sha256: str = ""  # of the file as read: the journal records which policy a run was under

    def approvals_needed(self, face_value: float) -> int:
        """Approvals a plan of this total needs: the base, or a tier's above its threshold."""
        return max([self.required] + [t.required for t in self.tiers if face_value > t.above])

    def approver_of(self, public_key: str) -> str | None:
        """The policy's name for a public key (None: not an approver)."""
        return next((n for n, k in self.approvers.items() if k == public_key), None)


def policy_path(explicit: str | None) -> tuple[Path, bool]:
    """The policy file to read, and whether it was asked for (then it must exist).

    The machine's policy (`SYSTEM_POLICY`, kept by an administrator) is the control itself when
    it exists: a person who runs batches controls their own options and environment, so neither
    `--policy` nor BULK_TOPUP_POLICY may put another file in its place."""
    env = os.environ.get("BULK_TOPUP_POLICY", "").strip()
    if SYSTEM_POLICY.exists():
        for asked in (explicit, env):
            if asked and not _same_file(Path(asked).expanduser(), SYSTEM_POLICY):
                raise UsageError(
                    _(
                        "the policy in force on this machine is {system}, kept by its "
                        "administrator; {path} cannot replace it (leave out --policy and "
                        "BULK_TOPUP_POLICY)"
                    ).format(system=SYSTEM_POLICY, path=asked)
                )
        return SYSTEM_POLICY, True
    if explicit:
        return Path(explicit).expanduser(), True
    if env:
        return Path(env).expanduser(), True
    return config_dir() / "policy.toml", False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def load_policy(explicit: str | None = None) -> Policy | None:
    """The policy in force (None when there is none). A policy asked for by `--policy` or
    BULK_TOPUP_POLICY must exist; any policy file must parse. Raises UsageError (exit 2)."""
    path, asked = policy_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if asked:
            raise UsageError(_("the policy file {path} does not exist").format(path=path)) from None
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(
            _("the policy file {path} cannot be read ({reason})").format(path=path, reason=e)
        ) from None
    return parse_policy(text, path)


def parse_policy(text: str, path: Path) -> Policy:
    """A policy from its TOML text; every mistake named, with the file."""
    from .signing import parse_public_key

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(
            _("the policy file {path} is not valid TOML: {reason}").format(path=path, reason=e)
        ) from None
    where = _("the policy file {path}").format(path=path)
    _only(doc, {"approvers", "approval", "caps"}, where)
    policy = Policy(path, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    approvers = _table(doc, "approvers", where)
    for name, key in approvers.items():
        if not isinstance(key, str):
            raise UsageError(
                _("{where}: approver {name} must be a quoted public key line").format(
                    where=where, name=name
                )
            )
        parse_public_key(key, _("{where}, approver {name}").format(where=where, name=name))
        policy.approvers[name] = key.strip()
    approval = _table(doc, "approval", where)
    _only(approval, {"required", "self_approval", "price_tolerance_percent", "tiers"},
          f"{where}, [approval]")  # fmt: skip
    policy.required = _count(approval, "required", 1, f"{where}, [approval]")
    policy.self_approval = _flag(approval, "self_approval", False, f"{where}, [approval]")
    tolerance = _amount(approval, "price_tolerance_percent", f"{where}, [approval]")
    policy.price_tolerance = tolerance or 0.0
    tiers = approval.get("tiers", [])
    if not isinstance(tiers, list):
        raise UsageError(
            _("{where}: [[approval.tiers]] must be a list of tables").format(where=where)
        )
    for n, tier in enumerate(tiers, 1):
        at = _("{where}, tier {n}").format(where=where, n=n)
        if not isinstance(tier, dict):
            raise UsageError(_("{where} must be a table with above and required").format(where=at))
        _only(tier, {"above", "required"}, at)
        above = _amount(tier, "above", at)
        if above is None or "required" not in tier:
            raise UsageError(
                _("{where} needs both above (DA) and required (approvals)").format(where=at)
            )
        policy.tiers.append(Tier(above, _count(tier, "required", 1, at)))
    caps = _table(doc, "caps", where)
    _only(caps, {"per_run", "per_recipient", "per_period", "period_days"}, f"{where}, [caps]")
    policy.per_run = _amount(caps, "per_run", f"{where}, [caps]")
    policy.per_recipient = _amount(caps, "per_recipient", f"{where}, [caps]")
    policy.per_period = _amount(caps, "per_period", f"{where}, [caps]")
    days = _count(caps, "period_days", 30, f"{where}, [caps]")
    if days < 1:
        raise UsageError(_("{where}, [caps]: period_days must be at least 1").format(where=where))
    policy.period_days = days
    most = max([policy.required] + [t.required for t in policy.tiers])
    if most > len(policy.approvers):
        raise UsageError(
            _(
                "{where} asks for {most} approvals but lists {n} approvers: no plan could ever be "
                "approved (add approvers, or set required = 0 in [approval] for a policy of caps "
                "only)"
            ).format(where=where, most=most, n=len(policy.approvers))
        )
    return policy


def _only(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(
            _("{where}: unknown key {key!r} (known: {known})").format(
                where=where, key=unknown[0], known=", ".join(sorted(allowed))
            )
        )


def _table(doc: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise UsageError(_("{where}: [{name}] must be a table").format(where=where, name=name))
    return value


def _count(table: dict[str, Any], name: str, default: int, where: str) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(
            _("{where}: {name} must be a whole number, 0 or more (found {value!r})").format(
                where=where, name=name, value=value
            )
        )
    return value


def _flag(table: dict[str, Any], name: str, default: bool, where: str) -> bool:
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise UsageError(
            _("{where}: {name} must be true or false (found {value!r})").format(
                where=where, name=name, value=value
            )
        )
    return value


def _amount(table: dict[str, Any], name: str, where: str) -> float | None:
    if name not in table:
        return None
    value = table[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(
            _("{where}: {name} must be a number (found {value!r})").format(
                where=where, name=name, value=value
            )
        )
    if value < 0:
        raise UsageError(_("{where}: {name} cannot be negative").format(where=where, name=name))
    return float(value)


# --- caps ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spend:
    """One row about to be sent: who it pays and how much (face value)."""

    ref: str
    recipient: str | None
    face_value: float


def spent_since(state_dir: Path, since: datetime) -> tuple[float, dict[str, set[str]], list[Path]]:
    """Face value sent since `since` across every batch of the state dir (journals opened
    read-only), the refs already spent per batch key (so a resumed batch is not counted twice),
    and the journals that could not be read (a cap that cannot be counted is not passed)."""
    total = 0.0
    refs: dict[str, set[str]] = defaultdict(set)
    unreadable: list[Path] = []
    marks = ",".join("?" * len(SPENT_STATES))
    folder = state_dir / "batches"
    for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
        try:
            db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
            try:
                meta = db.execute("SELECT value FROM meta WHERE key = 'batch'").fetchone()
                rows = db.execute(
                    f"SELECT ref, face_value, sent_at FROM rows WHERE state IN ({marks})",
                    SPENT_STATES,
                ).fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            unreadable.append(path)
            continue
        key = meta[0] if meta else path.stem
        for ref, face, sent_at in rows:
            if ref:
                refs[key].add(ref)
            try:
                when = parse_iso(sent_at) if sent_at else None
            except ValueError:
                when = None
            if when is None or when >= since:  # an unknown send time is counted, not forgiven
                total += face or 0.0
    return round(total, 2), refs, unreadable


def cap_problems(
    policy: Policy,
    rows: Iterable[Spend],
    *,
    batch: str,
    state_dir: Path,
    now: datetime,
) -> list[str]:
    """Every cap this run would exceed, one sentence each (empty: within every cap)."""
    rows = list(rows)
    found: list[str] = []
    total = round(sum(r.face_value for r in rows), 2)
    if policy.per_run is not None and total > policy.per_run:
        found.append(
            _("this run sends {total} DA, more than the policy's cap of {cap} DA per run").format(
                total=money(total), cap=money(policy.per_run)
            )
        )
    if policy.per_recipient is not None:
        per: dict[str, float] = defaultdict(float)
        for r in rows:
            if r.recipient:
                per[r.recipient] += r.face_value
        over = sorted((v, k) for k, v in per.items() if v > policy.per_recipient)
        for value, who in reversed(over[-3:]):
            found.append(
                _(
                    "{who} would receive {value} DA in this run, more than the policy's cap of "
                    "{cap} DA per recipient"
                ).format(
                    who=who.split(":")[-1], value=money(value), cap=money(policy.per_recipient)
                )
            )
        if len(over) > 3:
            found.append(_("and {n} more recipients over the cap").format(n=len(over) - 3))
    if policy.per_period is not None:
        since = now - timedelta(days=policy.period_days)
        already, refs, unreadable = spent_since(state_dir, since)
        sent_here = refs.get(batch, set())
        for path in unreadable:
            found.append(
                _(
                    "the journal {path} cannot be read, so what was sent in the last {days} days "
                    "cannot be counted against the policy's cap"
                ).format(path=path, days=policy.period_days)
            )
        new = round(sum(r.face_value for r in rows if r.ref not in sent_here), 2)
        if already + new > policy.per_period:
            found.append(
                _(
                    "{already} DA were sent in the last {days} days and this run adds {new} DA, "
                    "more than the policy's cap of {cap} DA per {days} days"
                ).format(
                    already=money(already), days=policy.period_days, new=money(new),
                    cap=money(policy.per_period),
                )
            )  # fmt: skip
    return found
