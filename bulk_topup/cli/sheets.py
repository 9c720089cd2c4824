"""validate, catalog and template: the commands that read sheets and the catalog."""

from __future__ import annotations

import sys
from typing import Any

import click

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
from .reporting import csv_dialect_option, language_option


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
    sys.exit(EXIT_OK if not result.invalid else EXIT_INVALID)


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
        "summary": {**result.summary, "catalog_notes": result.catalog_notes},
    }


def _problem_json(p: Any) -> dict[str, Any]:
    """A problem with the column as the user wrote it and the order field it stands for."""
    return {"column": p.column, "field": p.field or None, "message": p.message}


def print_notes(result: Any) -> None:
    """What was read and what was not: sheets left aside, columns carried, rows skipped."""
    for note in result.sheet_notes:
        click.secho(f"note: {note}", fg="yellow")
    for note in result.catalog_notes:
        click.secho(f"note: {note}", fg="yellow")


def print_warnings(result: Any, limit: int = 20) -> None:
    """Before money moves: the notes, and what was repaired or looks odd (not errors)."""
    print_notes(result)
    warnings = [p for o in result.orders for p in o.warnings] + result.skipped
    for p in warnings[:limit]:
        click.secho(f"warning {p}", fg="yellow")
    if len(warnings) > limit:
        click.secho(f"... and {len(warnings) - limit} more warnings (bulk-topup validate shows "
                    f"them all)", fg="yellow")  # fmt: skip


def print_validation(sheet: Any, result: Any) -> None:
    where = f"{sheet.path}" + (f" [{sheet.name}]" if sheet.name else "")
    click.echo(f"{where}: {len(sheet.rows)} rows (header on row {sheet.header_row})")
    print_notes(result)
    errors = [p for o in result.orders for p in o.errors]
    warnings = sorted([p for o in result.orders for p in o.warnings] + result.skipped,
                      key=lambda p: p.row)  # fmt: skip
    for p in errors:
        click.secho(f"error   {p}", fg="red")
    for p in warnings:
        click.secho(f"warning {p}", fg="yellow")
    s = result.summary
    click.echo("")
    kinds = ", ".join(
        f"{k} {v['valid']} valid / {v['invalid']} invalid"
        for k, v in s["per_kind"].items()
        if v["valid"] or v["invalid"]
    )
    click.echo(f"rows: {s['rows']} ({kinds or 'none'})")
    for key, entry in s["per_product"].items():
        click.echo(
            f"  {key:<48} {entry['rows']:>6} rows {entry['face_value']:>14,.2f} DA "
            f"face  {entry['cost']:>14,.2f} DA cost"
        )
    click.echo(
        f"total of valid rows: {s['face_value']:,.2f} DA face value, {s['cost']:,.2f} DA cost"
    )
    if s["duplicates"]:
        click.echo(f"duplicates: {len(s['duplicates'])} rows repeat an earlier row")
    if not result.orders:
        verdict = "the sheet has no order rows below its header"
    elif errors:
        verdict = f"{s['invalid']} invalid rows, nothing sent"
    elif result.catalog_notes:
        verdict = "every row passed the checks that could be made (see the notes above)"
    else:
        verdict = "every row is valid"
    click.secho(verdict, fg="green" if not errors else "red", bold=True)


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
            f"the API could not be reached and nothing is cached for: {', '.join(cat.missing)}",
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
        click.secho(f"note: {note} served from an old cache (API unreachable)", fg="yellow")
    if "plans" in parts:
        click.secho("Mobile plans", bold=True)
        for p in sorted(cat.plans.values(), key=lambda p: (p.operator, p.code)):
            rng = f"{p.amount} DA fixed" if p.is_fixed else f"{p.min_amount}-{p.max_amount} DA"
            state = "" if p.enabled else "  (switched off)"
            cost = f"cost x{p.cost:g}" if p.cost is not None else "cost n/a"
            click.echo(f"  {p.code:<22} {p.operator:<9} {rng:<16} {cost:<13} {p.name}{state}")
    if "internet" in parts:
        click.secho("Internet cards", bold=True)
        for kind, products in cat.internet.items():
            for p in products:
                stock = "in stock" if p.available else "OUT OF STOCK"
                click.echo(f"  {kind:<5} {p.value:>6} DA  cost {p.cost:>8,.2f}  {stock}")
    if "gift" in parts:
        click.secho("Gift cards (product_id / type_id)", bold=True)
        for p in cat.gifts.values():
            state = "" if p.enabled else "  (not on sale)"
            click.echo(f"  {p.id}  {p.title} [{p.category}]{state}")
            for t in cat.gift_types.get(p.id, []):
                click.echo(f"      {t.id:<14} {t.name:<32} {t.price:>9,.2f} DA  stock {t.quantity}")


@main.command()
@click.argument("out", type=click.Path(dir_okay=False))
@csv_dialect_option
@language_option
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
