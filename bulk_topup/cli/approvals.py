"""plan, approve, keys and audit: maker-checker and the audit of a batch's record.

Also the options and helpers the money-moving commands share for it: `--plan`, `--policy`,
`--notify`, `show_delivery()` (where the news went, or a warning) and `tells_refusal()` (a
command that stops with an error tells too: a cron run refused is the run that needs a person).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ..i18n import N_, _, listed, money, ngettext
from . import (
    EXIT_INTERNAL,
    EXIT_OK,
    F,
    api_options,
    fail,
    handle_errors,
    main,
    make_settings,
    new_batch_key,
    run_async,
    state_dir_option,
)

# --- shared options and helpers ------------------------------------------------------------------

plan_option = click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Run only what this approved plan says (bulk-topup plan, then approve).",
)
policy_option = click.option(
    "--policy",
    default=None,
    help="Approval policy file [env BULK_TOPUP_POLICY; default policy.toml in the config dir; "
    "/etc/bulk-topup/policy.toml, when it exists, is in force instead and cannot be replaced].",
)
notify_option = click.option(
    "--notify",
    metavar="URL",
    default=None,
    help="Tell URL when the batch ends, stops or needs a person: json://host/path, jsons://, "
    "mailto://, tgram://, slack://... [env BULK_TOPUP_NOTIFY].",
)


def show_delivery(delivery: Any) -> None:
    """Say where the notification went, or warn that it could not go (exit code unchanged)."""
    if delivery is None:
        return
    if delivery.ok:
        click.echo(_("notified: {where}").format(where=delivery.detail))
    else:
        click.secho(
            _(
                "warning: the notification was not delivered ({why}); the exit code is unchanged"
            ).format(why=delivery.detail),
            fg="yellow",
            err=True,
        )


def tells_refusal(command: str) -> Callable[[F], F]:
    """A command that stops on a BulkTopupError (refused, invalid rows, locked...) sends word too,
    then the error goes on to `handle_errors` as before."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from ..errors import BulkTopupError
            from ..service import tell_refusal

            try:
                return fn(*args, **kwargs)
            except BulkTopupError as e:
                batch = kwargs.get("batch") or _("(all batches)")
                show_delivery(tell_refusal(kwargs.get("notify"), batch, command, e))
                raise

        return wrapper  # type: ignore[return-value]

    return wrap


# --- plan ----------------------------------------------------------------------------------------


def _money(value: float) -> str:
    return _("{amount} DA").format(amount=money(value))


def show_plan(plan: Any, rows: int) -> None:
    """What an approver must see before signing: where, who, totals, the rows, the prices."""
    d = plan.data
    colour = "red" if d["environment"] == "PRODUCTION" else "cyan"
    click.secho(_("plan {digest}").format(digest=plan.digest), bold=True)
    click.echo(
        _("  batch {batch}; sheet {file} (sha256 {sha})").format(
            batch=d["batch"], file=d["sheet"]["file"], sha=d["sheet"]["sha256"]
        )
    )
    click.secho(
        _("  {env} at {url}").format(env=d["environment"], url=d["api_url"]), fg=colour, bold=True
    )
    click.echo(
        _("  prepared by {who} at {when}").format(who=d["prepared_by"], when=d["prepared_at"])
    )
    t = d["totals"]
    click.echo(
        _("  rows to send: {n}").format(n=t["rows"])
        + (_("; {n} invalid rows skipped").format(n=t["skipped"]) if t["skipped"] else "")
    )
    for kind, entry in sorted(t["per_kind"].items()):
        click.echo(
            _("    {kind} {n} rows {face} face {cost} cost").format(
                kind=f"{kind:<9}", n=f"{entry['rows']:>6}",
                face=f"{_money(entry['face_value']):>18}", cost=f"{_money(entry['cost']):>18}",
            )
        )  # fmt: skip
    click.secho(
        _("  total: {face} face value, {cost} cost").format(
            face=_money(t["face_value"]), cost=_money(t["cost"])
        ),
        bold=True,
    )
    first_rows = d["rows"][:rows]
    if first_rows:
        click.echo(
            _("  first {n} of {total} rows:").format(n=len(first_rows), total=len(d["rows"]))
            if len(first_rows) < len(d["rows"])
            else _("  rows:")
        )
    for r in first_rows:
        who = " ".join(r["person"].values())
        what = (
            _("{product} {amount} DA to {target}").format(
                product=r["product"], amount=r["amount"], target=r["target"]
            )
            if r["kind"] != "giftcard"
            else _("{quantity} x {label}").format(
                quantity=r["quantity"], label=r["label"] or r["product"]
            )
        )
        click.echo(
            _("    row {row}  {what} {amount}  {who}").format(
                row=f"{r['row']:>5}", what=f"{what:<44}", amount=f"{_money(r['face_value']):>14}",
                who=who,
            )
        )  # fmt: skip
    if len(d["rows"]) > len(first_rows):
        n = len(d["rows"]) - len(first_rows)
        click.echo(ngettext("    ... and {n} more row", "    ... and {n} more rows", n).format(n=n))
    for s in d.get("skipped", [])[:rows]:
        click.secho(
            _("    row {row}  SKIPPED: {problems}").format(
                row=f"{s['row']:>5}", problems=listed(s["problems"])
            ),
            fg="yellow",
        )
    prices = listed(
        f"{key} {price if price is not None else _('face value')}"
        for kind in sorted(d["prices"])
        for key, price in sorted(d["prices"][kind].items())
    )
    click.echo(_("  prices: {prices}").format(prices=prices))


@main.command()
@click.argument("sheet", type=click.Path(dir_okay=False))
@click.option("--batch", required=True, callback=new_batch_key,
              help="The batch key the plan will run under.")  # fmt: skip
@click.option("--sheet", "sheet_name", default=None, help="The sheet to read (default: the first).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Plan file (default: <sheet>-<batch>.plan.json next to the sheet).")  # fmt: skip
@click.option("--skip-invalid", is_flag=True, help="Plan the valid rows; the plan lists the rest.")
@click.option("--allow-duplicates", is_flag=True, help="The same order twice is meant, not a slip.")
@click.option("--preparer", default=None, help="Who prepares the plan (default: the OS user).")
@api_options
@handle_errors
def plan(
    sheet: str,
    batch: str,
    sheet_name: str | None,
    out: str | None,
    skip_invalid: bool,
    allow_duplicates: bool,
    preparer: str | None,
    **kw: Any,
) -> None:
    """Validate SHEET and write a plan file for approvers to sign. Nothing is sent."""
    from pathlib import Path

    from ..clock import iso
    from ..journal import _os_user
    from ..planfile import build_plan, default_plan_path, prepare, write_plan
    from .sheets import print_validation, print_warnings

    settings = make_settings(kw)

    async def go() -> Any:
        async with settings.client() as client:
            return await prepare(
                client,
                sheet,
                batch=batch,
                state_dir=settings.state_dir,
                api_url=settings.api_url,
                sheet_name=sheet_name,
                allow_duplicates=allow_duplicates,
            )

    ready = run_async(go())
    if ready.validation.invalid:
        print_validation(ready.sheet, ready.validation, skip_invalid=skip_invalid)
    else:
        print_warnings(ready.validation)
    made = build_plan(
        ready.sheet,
        ready.validation,
        ready.catalog,
        sheet_bytes=ready.sheet_bytes,
        batch=batch,
        api_url=settings.api_url,
        environment=ready.environment,
        preparer=(preparer or "").strip() or _os_user(),
        prepared_at=iso(settings.clock.wall()),
        skip_invalid=skip_invalid,
        allow_duplicates=allow_duplicates,
    )
    path = write_plan(made, Path(out) if out else default_plan_path(sheet, batch))
    t = made.totals
    click.echo(_("plan written: {path}").format(path=path))
    click.secho(
        _("digest: {digest}   (read it to the approvers: approve shows the same)").format(
            digest=made.digest
        ),
        bold=True,
    )
    click.echo(
        _("batch {batch}, {env} at {url}, prepared by {who}").format(
            batch=batch, env=ready.environment, url=settings.api_url, who=made.preparer
        )
    )
    kinds = ", ".join(f"{k} {v['rows']}" for k, v in sorted(t["per_kind"].items()))
    skipped = _("; {n} invalid rows skipped").format(n=t["skipped"]) if t["skipped"] else ""
    click.echo(_("rows: {n} ({kinds}){skipped}").format(n=t["rows"], kinds=kinds, skipped=skipped))
    click.echo(
        _("total: {face} face value, {cost} cost").format(
            face=_money(t["face_value"]), cost=_money(t["cost"])
        )
    )
    click.echo(_("nothing was sent; next: bulk-topup approve {path}").format(path=path))


# --- approve and keys ----------------------------------------------------------------------------


@main.command()
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--key", "key_name", default=None, help="Your key's name (bulk-topup keys new).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@click.option("--rows", "show_rows", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many rows to show before asking.")  # fmt: skip
@policy_option
@handle_errors
def approve(
    plan_file: str, key_name: str | None, yes: bool, show_rows: int, policy: str | None
) -> None:
    """Sign PLAN with your own key, after seeing its totals and rows. No API call."""
    from datetime import UTC, datetime

    from ..clock import iso
    from ..errors import RefusedError
    from ..planfile import read_plan
    from ..policy import load_policy
    from ..signing import add_signature, load_signing_key, public_key_text, read_signatures, sign

    made = read_plan(plan_file)
    name, key = load_signing_key(key_name)
    public = public_key_text(key.public_key())
    show_plan(made, show_rows)
    rules = load_policy(policy)
    if rules is not None:
        approver = rules.approver_of(public)
        if approver is None:
            click.secho(
                _(
                    "warning: your key ({name}) is not among the approvers of {policy}: this "
                    "signature will not count there"
                ).format(name=name, policy=rules.path),
                fg="yellow",
                err=True,
            )
        elif approver.casefold() == made.preparer.casefold() and not rules.self_approval:
            click.secho(
                _(
                    "warning: {preparer} prepared this plan; the policy does not let a preparer "
                    "approve their own plan, so the run will refuse it"
                ).format(preparer=made.preparer),
                fg="yellow",
                err=True,
            )
    done = [s for s in read_signatures(plan_file) if isinstance(s, dict)
            and s.get("public_key") == public and s.get("plan_sha256") == made.sha256]  # fmt: skip
    if done:
        click.echo(
            _("already approved with key {name} at {when}; nothing to do").format(
                name=name, when=done[0].get("signed_at")
            )
        )
        return
    if not yes:
        if not sys.stdin.isatty():
            raise RefusedError(
                _(
                    "approving needs a confirmation and there is no terminal to ask on; pass "
                    "--yes to approve from a script; nothing was signed"
                )
            )
        question = _("Approve plan {digest} as {name}?").format(digest=made.digest, name=name)
        if not click.confirm(question, default=False):
            raise RefusedError(_("not confirmed; nothing was signed"))
    line = sign(made, name, key, iso(datetime.now(UTC)))
    path = add_signature(plan_file, line)
    click.secho(
        _("approved by {name}: signature added to {path}").format(name=name, path=path),
        fg="green",
    )


@main.group()
def keys() -> None:
    """Approval keys (Ed25519): one per approver, kept in the user's config dir."""


@keys.command("new")
@click.argument("name")
@handle_errors
def keys_new(name: str) -> None:
    """Make the key NAME and print the line to add to the policy's approvers."""
    from ..policy import config_dir
    from ..signing import new_key

    path, line = new_key(name)
    click.echo(
        _("private key: {path} (mode 0600; it never leaves this account: keep it so)").format(
            path=path
        )
    )
    click.echo(
        _("add this line under [approvers] in the policy ({policy}):").format(
            policy=config_dir() / "policy.toml"
        )
    )
    click.echo(line)


@keys.command("list")
@handle_errors
def keys_list() -> None:
    """The keys of this account, with their public lines."""
    from ..signing import keys_dir

    folder = keys_dir()
    found = sorted(folder.glob("*.pub")) if folder.is_dir() else []
    if not found:
        click.echo(
            _("no keys in {folder} (bulk-topup keys new NAME makes one)").format(folder=folder)
        )
    for path in found:
        click.echo(path.read_text(encoding="utf-8").strip())


# --- audit ---------------------------------------------------------------------------------------

#: What the batch-level events record, in words (the journal keeps the English key).
AUDIT_WHAT = {
    "plan prepared": N_("plan prepared"),
    "plan approved": N_("plan approved"),
    "run started": N_("run started"),
    "stop asked": N_("stop asked"),
    "card code revealed": N_("card code revealed"),
    "card codes revealed": N_("card codes revealed"),
}


@main.command()
@click.option("--batch", required=True, help="The batch to audit.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for scripts.")  # fmt: skip
@click.option("--head", "expect_head", default=None, metavar="HEX",
              help="A chain head noted earlier (audit, or a notification): check it is still "
              "in the chain, so events cut off the end are seen.")  # fmt: skip
@state_dir_option
@handle_errors
def audit(batch: str, fmt: str, expect_head: str | None, state_dir: str) -> None:
    """Verify a batch's hash-chained record, say who prepared, approved and ran it, what was sent
    and what became of it, and whether the rows table agrees with the events. Exit 0 when intact,
    1 when the journal was altered."""
    import dataclasses
    import json
    from pathlib import Path

    from ..audit import audit_batch

    report = audit_batch(Path(state_dir), batch, expect_head)
    if fmt == "json":
        data = dataclasses.asdict(report)
        data.update(path=str(report.path), intact=report.intact)
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        sys.exit(EXIT_OK if report.intact else EXIT_INTERNAL)
    click.echo(_("batch {batch}: {path}").format(batch=batch, path=report.path))
    broken = report.chain_break
    if broken is None:
        click.secho(
            _("hash chain: intact, {n} events, head {head}").format(
                n=report.events, head=report.head[:16]
            ),
            fg="green",
        )
    else:
        click.secho(
            _("hash chain: BROKEN at event {id} ({at}): {why}\n  event {id} now says: {says}")
            .format(id=broken.event_id, at=broken.at, why=broken.why, says=broken.says)
            + (
                "\n  " + _("{n} events in all do not verify").format(n=report.broken_events)
                if report.broken_events > 1
                else ""
            ),
            fg="red",
            bold=True,
        )  # fmt: skip
    if report.head_missing:
        click.secho(
            _(
                "hash chain: the head {head} noted earlier is not in it: events were cut off the "
                "end or rewritten"
            ).format(head=report.head_missing),
            fg="red",
            bold=True,
        )
    for who in report.people:
        click.echo(
            _("{what}: {who} at {at} ({detail})").format(
                what=_(AUDIT_WHAT.get(who.what, who.what)), who=who.who, at=who.at,
                detail=who.detail,
            )
        )  # fmt: skip
    if not report.people:
        click.echo(_("no plan, approval, run, stop or code shown recorded at batch level"))
    click.echo(ngettext("sent: {n} row", "sent: {n} rows", report.sent).format(n=report.sent))
    for state, entry in sorted(report.per_state.items()):
        click.echo(
            _("  {state} {n} rows {debited} debited").format(
                state=f"{state:<17}", n=f"{int(entry['rows']):>6}",
                debited=f"{_money(entry['debited']):>18}",
            )
        )  # fmt: skip
    if report.disagreements:
        click.secho(
            _("rows table: DISAGREES with the events ({n}):").format(n=len(report.disagreements)),
            fg="red",
            bold=True,
        )
        for line in report.disagreements[:20]:
            click.echo(f"  {line}")
        if len(report.disagreements) > 20:
            click.echo(_("  ... and {n} more").format(n=len(report.disagreements) - 20))
    else:
        click.secho(_("rows table: agrees with the events"), fg="green")
    if not report.intact:
        fail(
            _("the journal of batch {batch} was altered after it was written (see above)").format(
                batch=batch
            ),
            EXIT_INTERNAL,
        )
    sys.exit(EXIT_OK)
