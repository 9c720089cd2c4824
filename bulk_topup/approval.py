"""Maker-checker: the check before a run, and the record of who prepared and who approved.

    bulk-topup plan      the maker writes a plan file (planfile.py)
    bulk-topup approve   each checker signs the plan's bytes with their own key (signing.py)
    bulk-topup run --plan PLAN
                         `authorise_run()` refuses, before any API call that sends, unless every
                         signature verifies against the policy's approvers (policy.py), enough of
                         them approve, the preparer did not approve their own plan (unless the
                         policy allows it), the sheet is the very file approved, the rows, the
                         environment, the API and the prices are those of the plan, and no cap is
                         exceeded

`record_authorisation()` then chains into the batch's journal who prepared the plan, who approved
it and who started the run, so `bulk-topup audit` can say so later.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from .errors import AuthError, RefusedError, UsageError
from .i18n import N_, _, money, ngettext
from .orders import Validation
from .planfile import (
    PRICE_PARTS,
    Plan,
    read_plan,
    recipient,
    row_differences,
    signatures_path,
)
from .policy import Policy, Spend, cap_problems
from .signing import (
    SIGNATURE_FORMAT,
    Approval,
    parse_public_key,
    read_signatures,
    signed_message,
)

# --- the check before a run ----------------------------------------------------------------------


@dataclass
class Authorisation:
    """Why a run may go ahead: the plan it follows (if any), who approved it, under which policy.
    `record_authorisation()` writes it into the batch's journal."""

    policy: Policy | None
    plan: Plan | None = None
    approvals: list[Approval] = field(default_factory=list)
    needed: int = 0
    face_value: float = 0.0


def price_moves(plan: Plan, catalog: Any, tolerance: float) -> list[str]:
    """A sentence for each catalog price that moved more than `tolerance` % since the plan."""
    found: list[str] = []
    for kind, prices in sorted(plan.data["prices"].items()):
        for key, old in sorted(prices.items()):
            missing, new = _current_price(kind, key, catalog)
            what = _(_PRICED[kind])
            if missing:
                found.append(
                    _("the {what} {key} of the plan is no longer in the provider's catalog").format(
                        what=what, key=key
                    )
                )
                continue
            if kind == "mobile":  # a plan without a cost factor is charged its face value
                old = 1.0 if old is None else old
                new = 1.0 if new is None else new
            if old is None or new is None or old == new:
                continue
            change = abs(new - old) / old * 100 if old else float("inf")
            if change > tolerance:
                template = (
                    N_(
                        "the price of the {what} {key} went up from {old} to {new} ({change} %) "
                        "since the plan was prepared; the policy allows {tolerance} %"
                    )
                    if new > old
                    else N_(
                        "the price of the {what} {key} went down from {old} to {new} ({change} %) "
                        "since the plan was prepared; the policy allows {tolerance} %"
                    )
                )
                found.append(
                    _(template).format(
                        what=what, key=key, old=f"{old:g}", new=f"{new:g}",
                        change=f"{change:.2f}", tolerance=f"{tolerance:g}",
                    )
                )  # fmt: skip
    return found


#: What a price of the plan is the price of.
_PRICED = {"mobile": N_("plan"), "internet": N_("internet card"), "giftcard": N_("gift card")}


def _current_price(kind: str, key: str, catalog: Any) -> tuple[bool, float | None]:
    if kind == "mobile":
        plan = catalog.plans.get(key)
        return (True, None) if plan is None else (False, plan.cost)
    if kind == "internet":
        product_type, _sep, value = key.partition(" ")
        product = catalog.internet_product(product_type, int(value) if value.isdigit() else -1)
        return (True, None) if product is None else (False, product.cost)
    product_id, _sep, type_id = key.partition(" ")
    gift_type = catalog.gift_type(product_id, type_id)
    return (True, None) if gift_type is None else (False, gift_type.price)


def _refuse(problems: list[str]) -> None:
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise RefusedError(_("this run is refused; nothing was sent:\n{lines}").format(lines=lines))


async def authorise_run(
    client: Any,
    *,
    plan_path: str | Path | None,
    policy: Policy | None,
    sheet_path: str | Path,
    validation: Validation,
    batch: str,
    api_url: str,
    state_dir: Path,
    now: datetime,
    how: str | None = None,
) -> Authorisation | None:
    """May this run send? Call after validation and before any API call that sends (`how`:
    how to have a run approved, in the face's words; default: the command line's).

    Without a plan and without a policy: None (nothing to check). With a policy and no plan: the
    run must need no approval for its total, and stay within the caps. With a plan: every check
    of the module docstring. Makes only reading API calls (the key's environment, the current
    prices). Raises RefusedError (exit 6) listing every reason, one sentence each.
    """
    if plan_path is None:
        if policy is None:
            return None
        face = round(sum(o.face_value for o in validation.valid), 2)
        needed = policy.approvals_needed(face)
        problems = []
        if needed:
            problems.append(
                ngettext(
                    "the policy ({path}) needs {n} approval for a run of {face} DA: {how}",
                    "the policy ({path}) needs {n} approvals for a run of {face} DA: {how}",
                    needed,
                ).format(
                    path=policy.path,
                    n=needed,
                    face=money(face),
                    how=how
                    or _(
                        "prepare a plan (bulk-topup plan), have it approved (bulk-topup approve), "
                        "then run it with --plan"
                    ),
                )  # fmt: skip
            )
        spends = [Spend(o.ref, recipient(o), o.face_value) for o in validation.valid]
        problems += cap_problems(policy, spends, batch=batch, state_dir=state_dir, now=now)
        _refuse(problems)
        return Authorisation(policy, face_value=face)
    plan = read_plan(plan_path)
    if policy is None:
        _refuse([
            _("there is no approval policy to check the plan's signatures against "
              "(/etc/bulk-topup/policy.toml, --policy, env BULK_TOPUP_POLICY, or policy.toml in "
              "the config dir)")
        ])  # fmt: skip
    assert policy is not None
    status = approval_status(plan, policy)
    approvals, needed, problems = status.approvals, status.needed, list(status.problems)
    problems += _plan_against_run(plan, sheet_path, validation, batch, api_url)
    problems += await _plan_against_api(plan, client, policy, state_dir, api_url)
    spends = [Spend(r["ref"], r["recipient"], float(r["face_value"])) for r in plan.rows]
    problems += cap_problems(policy, spends, batch=batch, state_dir=state_dir, now=now)
    _refuse(problems)
    return Authorisation(policy, plan, approvals, needed, plan.face_value)


@dataclass
class ApprovalStatus:
    """Where a plan stands under a policy: the approvals that count, how many it needs, and a
    sentence for each signature that does not count or each approval still missing."""

    approvals: list[Approval]
    needed: int
    problems: list[str]

    @property
    def approved(self) -> bool:
        return not self.problems and len(self.approvals) >= self.needed


def approval_status(plan: Plan, policy: Policy) -> ApprovalStatus:
    """The signatures beside `plan` checked against `policy` (no API call): what `run --plan`
    requires of them, and what a person approving wants to see first."""
    assert plan.path is not None
    approvals, problems = verify_signatures(plan, read_signatures(plan.path), policy)
    needed = policy.approvals_needed(plan.face_value)
    if not policy.self_approval and any(
        a.approver.casefold() == plan.preparer.casefold() for a in approvals
    ):
        problems.append(
            _(
                "{preparer} prepared this plan and also approved it, which the policy does not "
                "allow; another approver must sign instead"
            ).format(preparer=plan.preparer)
        )
        approvals = [a for a in approvals if a.approver.casefold() != plan.preparer.casefold()]
    if len(approvals) < needed:
        who = ", ".join(a.approver for a in approvals) or _("nobody")
        problems.append(
            ngettext(
                "the plan has {n} valid approval ({who}) and the policy needs {needed} for "
                "{face} DA",
                "the plan has {n} valid approvals ({who}) and the policy needs {needed} for "
                "{face} DA",
                len(approvals),
            ).format(n=len(approvals), who=who, needed=needed, face=money(plan.face_value))
        )
    return ApprovalStatus(approvals, needed, problems)


def _plan_against_run(
    plan: Plan, sheet_path: str | Path, validation: Validation, batch: str, api_url: str
) -> list[str]:
    import hashlib

    found: list[str] = []
    if plan.batch != batch:
        found.append(
            _("the plan is for batch {planned!r}, not {batch!r}").format(
                planned=plan.batch, batch=batch
            )
        )
    if plan.data["api_url"] != api_url:
        found.append(
            _("the plan was approved for the API at {planned}, not {api_url}").format(
                planned=plan.data["api_url"], api_url=api_url
            )
        )
    try:
        sheet_sha = hashlib.sha256(Path(sheet_path).read_bytes()).hexdigest()
    except OSError as e:
        sheet_sha = f"unreadable: {e}"
    sheet = plan.data["sheet"]
    if sheet_sha != sheet["sha256"]:
        found.append(
            _(
                "the sheet {name} is not the one approved ({file}, sha256 {sha}...): it was "
                "changed or replaced since the plan was made"
            ).format(name=Path(sheet_path).name, file=sheet["file"], sha=sheet["sha256"][:16])
        )
    found += row_differences(plan, validation)
    skipped_now = sorted(o.row for o in validation.invalid)
    skipped_then = sorted(r["row"] for r in plan.data.get("skipped", []))
    if skipped_now != skipped_then:
        found.append(
            _("the plan skips rows {then} as invalid, the sheet now has rows {now} invalid").format(
                then=skipped_then or _("none"), now=skipped_now or _("none")
            )
        )
    return found


async def _plan_against_api(
    plan: Plan, client: Any, policy: Policy, state_dir: Path, api_url: str
) -> list[str]:
    from .catalog import load_catalog

    found: list[str] = []
    try:
        key = await client.validate_key()
    except AuthError as e:
        return [
            _("the API refused the key ({code}: {message})").format(code=e.code, message=e.message)
        ]
    if key.type != plan.data["environment"]:
        found.append(
            _("the plan was approved for the {planned} environment and this key is {now}").format(
                planned=plan.data["environment"], now=key.type
            )
        )
    kinds = sorted(plan.data["prices"])
    parts = tuple(part for kind in kinds for part in PRICE_PARTS[kind])
    gifts = {r["target"] for r in plan.rows if r["kind"] == "giftcard"}
    # Fresh prices, never the cache: a price that moved since the plan must be seen.
    catalog = await load_catalog(
        client, state_dir, api_url, parts=parts, gift_products=gifts, refresh=True
    )
    unsure = sorted(set(catalog.missing) | set(catalog.stale))
    if unsure:
        found.append(
            _(
                "the current {parts} prices could not be fetched from the API to compare with "
                "the plan's"
            ).format(parts=", ".join(unsure))
        )
    else:
        found += price_moves(plan, catalog, policy.price_tolerance)
    return found


def record_authorisation(
    journal: Any, auth: Authorisation | None, *, actor: str | None = None
) -> None:
    """Chain into the batch's journal who prepared the plan, who approved it (once per plan) and
    who started this run with it. Call once the run is allowed, before it sends."""
    if auth is None:
        return
    runner = actor or journal.actor
    plan = auth.plan
    if plan is None:
        journal.record(
            f"run started by {runner} under the policy {auth.policy.path if auth.policy else ''} "
            f"(no approval needed for {auth.face_value:,.2f} DA)",
            {"what": "run started", "run_by": runner, "plan_sha256": None,
             "face_value": auth.face_value, "approvals_needed": 0,
             "policy": str(auth.policy.path) if auth.policy else None,
             "policy_sha256": auth.policy.sha256 if auth.policy else None},
            actor=runner,
        )  # fmt: skip
        return
    seen = set()
    for (text,) in journal.db.execute(
        "SELECT data FROM events WHERE idx IS NULL AND data IS NOT NULL"
    ):
        data = json.loads(text)
        if data.get("plan_sha256") == plan.sha256:
            seen.add((data.get("what"), data.get("approver")))
    if ("plan prepared", None) not in seen:
        journal.record(
            f"plan {plan.digest} prepared by {plan.preparer}",
            {"what": "plan prepared", "plan_sha256": plan.sha256, "prepared_by": plan.preparer,
             "prepared_at": plan.data.get("prepared_at"), "sheet": plan.data["sheet"],
             "rows": plan.totals["rows"], "face_value": plan.face_value,
             "cost": plan.totals["cost"], "environment": plan.data["environment"],
             "api_url": plan.data["api_url"]},
            actor=plan.preparer,
        )  # fmt: skip
    for a in auth.approvals:
        if ("plan approved", a.approver) not in seen:
            journal.record(
                f"plan {plan.digest} approved by {a.approver}",
                {"what": "plan approved", "plan_sha256": plan.sha256, "approver": a.approver,
                 "public_key": a.public_key, "signed_at": a.signed_at},
                actor=a.approver,
            )  # fmt: skip
    journal.record(
        f"run started by {runner} with plan {plan.digest}",
        {"what": "run started", "run_by": runner, "plan_sha256": plan.sha256,
         "face_value": plan.face_value, "approvals_needed": auth.needed,
         "approved_by": [a.approver for a in auth.approvals],
         "policy": str(auth.policy.path) if auth.policy else None,
         "policy_sha256": auth.policy.sha256 if auth.policy else None},
        actor=runner,
    )  # fmt: skip
    journal.set_meta(plan_sha256=plan.sha256, plan_digest=plan.digest)


def check_resume(journal: Any, policy: Policy | None, how: str | None = None) -> None:
    """`resume` sends the rows a run admitted; a batch the policy wants approved must have been
    started with an approved plan. Raises RefusedError (exit 6); `how` says how to have a run
    approved, in the face's words."""
    if policy is None or journal.get_meta("plan_sha256"):
        return
    if not journal.counts().get("PLANNED"):
        return  # nothing left to send: resume only reconciles and polls
    face = journal.totals()["face_value"]
    needed = policy.approvals_needed(face)
    if needed:
        raise RefusedError(
            ngettext(
                "this batch was started without an approved plan and the policy ({path}) needs "
                "{n} approval for {face} DA: {how}; nothing was sent",
                "this batch was started without an approved plan and the policy ({path}) needs "
                "{n} approvals for {face} DA: {how}; nothing was sent",
                needed,
            ).format(
                path=policy.path,
                n=needed,
                face=money(face),
                how=how or _("prepare a plan, have it approved and run it with run --plan"),
            )  # fmt: skip
        )


def verify_signatures(
    plan: Plan, lines: list[Any], policy: Policy
) -> tuple[list[Approval], list[str]]:
    """The approvals that verify against the policy's approvers (one per approver), and a
    sentence for every signature that is forged, wrongly keyed, for another plan or unreadable."""
    approvals: dict[str, Approval] = {}
    problems: list[str] = []
    for n, line in enumerate(lines, 1):
        if not isinstance(line, dict) or line.get("format") != SIGNATURE_FORMAT:
            problems.append(
                _("signature {n} in {file} is not a bulk-topup approval; remove it").format(
                    n=n, file=signatures_path(plan.path or "plan").name
                )
            )
            continue
        claimed = str(line.get("approver", "?"))
        what = _("signature {n} ({approver})").format(n=n, approver=claimed)
        public, signed_at = str(line.get("public_key", "")), str(line.get("signed_at", ""))
        if line.get("plan_sha256") != plan.sha256:
            problems.append(_("{what} approves another plan, not this one").format(what=what))
            continue
        name = policy.approver_of(public)
        if name is None:
            problems.append(
                _("{what} was made with a key the policy does not list as an approver's").format(
                    what=what
                )
            )
            continue
        try:
            raw = base64.b64decode(str(line.get("signature", "")), validate=True)
            parse_public_key(public).verify(raw, signed_message(plan.sha256, public, signed_at))
        except (binascii.Error, ValueError, InvalidSignature, UsageError):
            problems.append(
                _(
                    "{what} does not verify with {name}'s key: it is forged, or it or the plan "
                    "was altered"
                ).format(what=what, name=name)
            )
            continue
        approvals.setdefault(name, Approval(name, public, signed_at))
    return list(approvals.values()), problems
