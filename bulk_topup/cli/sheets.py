"""validate, catalog and template: the commands that read sheets and the catalog."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..i18n import _, money, ngettext, shown
from . import (
    EXIT_INVALID,
    EXIT_NOT_FINAL,
    EXIT_OK,
    QUICK_RETRY,
    api_options,
    fail,
    handle_errors,
    main,
    make_settings,
    run_async,
)
from .reporting import csv_dialect_option


@main.command()
@click.argument("sheet", type=click.Path(dir_okay=False))
@click.option(
    "--sheet",
    "sheet_name",
    default=None,
    help="The sheet to read (default: the first visible worksheet).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text for people, json for scripts (every row, its problems and the summary).",
)  # fmt: skip
@click.option("--batch", default=None, help="Batch key the refs are made for (default: file name).")
@click.option("--allow-duplicates", is_flag=True, help="The same order twice is meant, not a slip.")
@api_options
@handle_errors
def validate(
    sheet: str,
    sheet_name: str | None,
    fmt: str,
    batch: str | None,
    allow_duplicates: bool,
    **kw: Any,
) -> None:
    """Check every row of SHEET and summarise it; nothing is sent, nothing is paid."""
    import json
    from pathlib import Path

    from ..plan import validate_sheet

    settings = make_settings(kw)

    async def go() -> Any:
        async with settings.client(retry=QUICK_RETRY) as client:
            return await validate_sheet(
                sheet,
                batch=batch or Path(sheet).stem,
                client=client,
                state_dir=settings.state_dir,
                api_url=settings.api_url,
                sheet_name=sheet_name,
                allow_duplicates=allow_duplicates,
            )

    read, result = run_async(go())
    if fmt == "json":
        click.echo(json.dumps(validation_json(result), ensure_ascii=False, indent=1))
    else:
        print_validation(read, result)
    # A sheet whose checks against the catalog could not all be made is not a clean validate:
    # 5, as for an open batch, means "try again later" (when the API answers). A sheet with no
    # order row is the sheet's fault (3, as `run` says of it): 0 is never said of nothing.
    if result.invalid or not result.orders:
        sys.exit(EXIT_INVALID)
    sys.exit(EXIT_NOT_FINAL if result.unchecked else EXIT_OK)


def validation_json(result: Any) -> dict[str, Any]:
    rows = []
    for o in result.orders:
        rows.append(
            {
                "row": o.row,
                "kind": o.kind,
                "valid": o.valid,
                "ref": o.ref or None,
                "errors": [_problem_json(p) for p in o.errors],
                "warnings": [_problem_json(p) for p in o.warnings],
                "order": {
                    **o.payload(),
                    "face_value": o.face_value,
                    "cost": o.cost,
                    "operator": o.operator or None,
                    "label": o.label or None,
                },
            }
        )
    return {
        "rows": rows,
        "skipped": [{"row": p.row, **_problem_json(p)} for p in result.skipped],
        "sheet_notes": result.sheet_notes,
        "summary": {
            **result.summary,
            "skipped": [{"row": p.row, "why": shown(p.message)} for p in result.skipped],
            "catalog_notes": result.catalog_notes,
        },
    }


def _problem_json(p: Any) -> dict[str, Any]:
    """A problem with the column as the user wrote it and the order field it stands for (its
    message in the reader's language)."""
    return {"column": p.column, "field": p.field or None, "message": shown(p.message)}


def print_notes(result: Any) -> None:
    """What was read and what was not: sheets left aside, columns carried, rows skipped."""
    for note in [*result.sheet_notes, *result.catalog_notes]:
        click.secho(_("note: {note}").format(note=note), fg="yellow")


def print_warnings(result: Any, limit: int = 20) -> None:
    """Before money moves: the notes, and what was repaired or looks odd (not errors)."""
    print_notes(result)
    warnings = [p for o in result.orders for p in o.warnings] + result.skipped
    for p in warnings[:limit]:
        click.secho(_("warning {problem}").format(problem=p.shown()), fg="yellow")
    if len(warnings) > limit:
        click.secho(
            _("... and {n} more warnings (bulk-topup validate shows them all)").format(
                n=len(warnings) - limit
            ),
            fg="yellow",
        )


def print_validation(sheet: Any, result: Any, *, skip_invalid: bool = False) -> None:
    """Every problem of every row, then the summary. With `skip_invalid` (run, dry run, plan)
    the valid rows go on, so the verdict says the invalid ones are left out, not "nothing sent"."""
    where = f"{sheet.path}" + (f" [{sheet.name}]" if sheet.name else "")
    click.echo(
        ngettext(
            "{where}: {n} row (header on row {header})",
            "{where}: {n} rows (header on row {header})",
            len(sheet.rows),
        ).format(where=where, n=len(sheet.rows), header=sheet.header_row)
    )
    print_notes(result)
    errors = [p for o in result.orders for p in o.errors]
    warnings = sorted([p for o in result.orders for p in o.warnings] + result.skipped,
                      key=lambda p: p.row)  # fmt: skip
    for p in errors:
        click.secho(_("error   {problem}").format(problem=p.shown()), fg="red")
    for p in warnings:
        click.secho(_("warning {problem}").format(problem=p.shown()), fg="yellow")
    s = result.summary
    click.echo("")
    kinds = ", ".join(
        _("{kind} {valid} valid / {invalid} invalid").format(
            kind=k, valid=v["valid"], invalid=v["invalid"]
        )
        for k, v in s["per_kind"].items()
        if v["valid"] or v["invalid"]
    )
    click.echo(_("rows: {n} ({kinds})").format(n=s["rows"], kinds=kinds or _("none")))
    for key, entry in s["per_product"].items():
        click.echo(
            _("  {product} {n} rows {face} DA face  {cost} DA cost").format(
                product=f"{key:<48}", n=f"{entry['rows']:>6}",
                face=f"{money(entry['face_value']):>14}", cost=f"{money(entry['cost']):>14}",
            )
        )  # fmt: skip
    click.echo(
        _("total of valid rows: {face} DA face value, {cost} DA cost").format(
            face=money(s["face_value"]), cost=money(s["cost"])
        )
    )
    if s["duplicates"]:
        click.echo(_("duplicates: {n} rows repeat an earlier row").format(n=len(s["duplicates"])))
    if not result.orders:
        verdict = _("the sheet has no order rows below its header")
    elif errors and skip_invalid:
        verdict = _("{n} invalid rows, left out (--skip-invalid)").format(n=s["invalid"])
    elif errors:
        verdict = _("{n} invalid rows, nothing sent").format(n=s["invalid"])
    elif result.catalog_notes:
        verdict = _("every row passed the checks that could be made (see the notes above)")
    else:
        verdict = _("every row is valid")
    click.secho(verdict, fg="green" if result.orders and not errors else "red", bold=True)


@main.command()
@click.argument("what", type=click.Choice(["mobile", "internet", "gift", "all"]), default="all")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text for people, json for scripts.",
)  # fmt: skip
@click.option("--refresh", is_flag=True, help="Fetch again even when the cache is fresh.")
@api_options
@handle_errors
def catalog(what: str, fmt: str, refresh: bool, **kw: Any) -> None:
    """Plans, internet products and gift cards, with prices and stock."""
    import json
    from dataclasses import asdict

    from ..catalog import load_catalog

    settings = make_settings(kw)
    parts = {
        "mobile": ("plans",),
        "internet": ("internet",),
        "gift": ("gift",),
        "all": ("plans", "internet", "gift"),
    }[what]

    async def go() -> Any:
        async with settings.client(retry=QUICK_RETRY) as client:
            return await load_catalog(
                client, settings.state_dir, settings.api_url, parts=parts, refresh=refresh
            )

    cat = run_async(go())
    if cat.missing:
        fail(
            _("the API could not be reached and nothing is cached for: {parts}").format(
                parts=", ".join(cat.missing)
            ),
            EXIT_NOT_FINAL,
        )
    if fmt == "json":
        out: dict[str, Any] = {}
        if "plans" in parts:
            out["mobile"] = [asdict(p) for p in cat.plans.values()]
        if "internet" in parts:
            out["internet"] = {k: [asdict(p) for p in v] for k, v in cat.internet.items()}
        if "gift" in parts:
            out["gift"] = [
                {**asdict(p), "types": [asdict(t) for t in cat.gift_types.get(p.id, [])]}
                for p in cat.gifts.values()
            ]
        click.echo(json.dumps(out, ensure_ascii=False, indent=1))
        return
    for note in cat.stale:
        click.secho(
            _("note: {part} served from an old cache (API unreachable)").format(part=note),
            fg="yellow",
        )
    if "plans" in parts:
        click.secho(_("Mobile plans"), bold=True)
        for p in sorted(cat.plans.values(), key=lambda p: (p.operator, p.code)):
            rng = (
                _("{amount} DA fixed").format(amount=p.amount)
                if p.is_fixed
                else f"{p.min_amount}-{p.max_amount} DA"
            )
            state = "" if p.enabled else "  " + _("(switched off)")
            cost = _("cost x{factor}").format(factor=f"{p.cost:g}") if p.cost is not None else (
                _("cost n/a"))  # fmt: skip
            click.echo(f"  {p.code:<22} {p.operator:<9} {rng:<16} {cost:<13} {p.name}{state}")
    if "internet" in parts:
        click.secho(_("Internet cards"), bold=True)
        for kind, products in cat.internet.items():
            for p in products:
                stock = _("in stock") if p.available else _("OUT OF STOCK")
                click.echo(
                    _("  {kind} {value} DA  cost {cost}  {stock}").format(
                        kind=f"{kind:<5}", value=f"{p.value:>6}", cost=f"{money(p.cost):>8}",
                        stock=stock,
                    )
                )  # fmt: skip
    if "gift" in parts:
        click.secho(_("Gift cards (product_id / type_id)"), bold=True)
        for p in cat.gifts.values():
            state = "" if p.enabled else "  " + _("(not on sale)")
            click.echo(f"  {p.id}  {p.title} [{p.category}]{state}")
            for t in cat.gift_types.get(p.id, []):
                click.echo(
                    _("      {type} {name} {price} DA  stock {n}").format(
                        type=f"{t.id:<14}", name=f"{t.name:<32}", price=f"{money(t.price):>9}",
                        n=t.quantity,
                    )
                )  # fmt: skip


@main.command()
@click.argument("out", type=click.Path(dir_okay=False))
@csv_dialect_option
@api_options
@handle_errors
def template(out: str, csv_dialect: str, **kw: Any) -> None:
    """Write an empty order sheet OUT: .xlsx with drop-down lists from the catalog, or .csv with
    the header line alone."""
    from pathlib import Path

    from ..catalog import load_catalog
    from ..errors import UsageError
    from ..i18n import _
    from ..report.settings import csv_dialect as dialect_named
    from ..template import write_csv_template, write_template

    suffix = Path(out).suffix.lower()
    if suffix == ".csv":
        write_csv_template(out, dialect_named(csv_dialect).delimiter)
        click.echo(
            _("wrote {out}: fill one row per order, then run: bulk-topup validate {out}").format(
                out=out
            )
        )
        return
    if suffix != ".xlsx":
        raise UsageError(
            _(
                "a template is written as .xlsx (with drop-down lists) or .csv; {out} ends in "
                "neither"
            ).format(out=out)
        )
    settings = make_settings(kw)

    async def go() -> Any:
        async with settings.client(retry=QUICK_RETRY) as client:
            return await load_catalog(client, settings.state_dir, settings.api_url)

    cat = run_async(go())
    write_template(out, cat)
    click.echo(
        _("wrote {out}: fill one row per order, then run: bulk-topup validate {out}").format(
            out=out
        )
    )
    if cat.missing:
        click.secho(
            _("note: no catalog for {parts}: those lists are empty").format(
                parts=", ".join(cat.missing)
            ),
            fg="yellow",
        )
