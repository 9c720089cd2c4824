"""The `bulk-topup` command line: options in, library calls, messages and exit codes out.

Only this module prints. Every command builds its objects, calls one library function, and turns
`BulkTopupError`s into a sentence and the exit code of DESIGN.md's contract.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import __version__
from .errors import BulkTopupError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3
EXIT_FAILED_ROWS, EXIT_NOT_FINAL, EXIT_REFUSED, EXIT_LOCKED = 4, 5, 6, 7


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Turn library errors into one clear sentence and the contract's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BulkTopupError as e:
            fail(e.message, e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_NOT_FINAL)

    return wrapper  # type: ignore[return-value]


def api_options(fn: F) -> F:
    """The options every command that talks to the API shares."""
    options = [
        click.option("--api-url", envvar="ONECLICK_API_URL", default=None,
                     help="API base URL [env ONECLICK_API_URL; default https://api.oneclickdz.com]."),
        click.option("--api-key-file", type=click.Path(dir_okay=False), default=None,
                     help="File holding the API key (else env ONECLICK_API_KEY)."),
        click.option("--emulator", is_flag=True,
                     help="Use the built-in emulator and its sandbox key (for trying things out)."),
        click.option("--emulator-speed", type=click.FloatRange(min=0.01), default=1.0,
                     show_default=True, help="With --emulator: how much faster its clock runs."),
        click.option("--state-dir", envvar="BULK_TOPUP_STATE_DIR", default=None,
                     help="Where journals and caches live [env BULK_TOPUP_STATE_DIR; "
                          "default ./.bulk-topup]."),
        click.option("--clock-speed", type=click.FloatRange(min=0.01), default=None, hidden=True,
                     envvar="BULK_TOPUP_CLOCK_SPEED",
                     help="Compress the runner's waits (for drills against a fast emulator)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_settings(kw: dict[str, Any]) -> Any:
    from .config import settings

    return settings(api_url=kw.pop("api_url"), key_file=kw.pop("api_key_file"),
                    state_dir=kw.pop("state_dir"), emulator=kw.pop("emulator"),
                    emulator_speed=kw.pop("emulator_speed"),
                    clock_speed=kw.pop("clock_speed"))  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bulk-topup")
def main() -> None:
    """Turn an order sheet (CSV or Excel) into paid OneClickDz top-ups, never paying twice."""


# --- emulator -----------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--speed", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="How much faster than real time the provider's clock runs.")
@click.option("--rate-limit", type=click.FloatRange(min=0.1), default=None,
              help="Requests per second before answering 429 with Retry-After.")
@click.option("--balance", type=float, default=500_000.0, show_default=True,
              help="The account balance in DZD.")
@click.option("--latency", type=float, default=0.0, help="Seconds added to every answer.")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Share of requests answered 500/503 before any work.")
@click.option("--drop-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Share of POSTs committed, then dropped without an answer.")
@click.option("--no-ref-dedup", is_flag=True,
              help="Let a reused ref create a second order (to prove a client never resends).")
@click.option("--production-key", default=None, help="Also accept this key, typed PRODUCTION.")
@click.option("--read-only-key", default=None, help="Also accept this key, READ-ONLY.")
@click.option("--seed", type=int, default=0, help="Seed of the fault dice.")
def emulator(host: str, port: int, speed: float, rate_limit: float | None, balance: float,
             latency: float, error_rate: float, drop_rate: float, no_ref_dedup: bool,
             production_key: str | None, read_only_key: str | None, seed: int) -> None:  # fmt: skip
    """Serve the OneClickDz API emulator over HTTP (uvicorn)."""
    import uvicorn

    from .clock import SystemClock
    from .emulator import SANDBOX_KEY, ApiKey, Faults, World, create_app

    keys = {SANDBOX_KEY: ApiKey(SANDBOX_KEY)}
    if production_key:
        keys[production_key] = ApiKey(production_key, "PRODUCTION")
    if read_only_key:
        keys[read_only_key] = ApiKey(read_only_key, "SANDBOX", "READ-ONLY")
    faults = Faults(latency=latency, error_rate=error_rate, drop_rate=drop_rate,
                    ref_dedup=not no_ref_dedup, seed=seed)  # fmt: skip
    world = World(clock=SystemClock(speed), balance=balance, keys=keys, rate_limit=rate_limit,
                  faults=faults)  # fmt: skip
    click.echo(f"OneClickDz v3 emulator on http://{host}:{port}  (speed x{speed:g}, "
               f"rate limit {rate_limit or 'none'}, balance {balance:,.2f} DZD)")  # fmt: skip
    click.echo(f"accepted key: {SANDBOX_KEY}  (header X-Access-Token)")
    click.echo("admin: GET /__emulator/stats, POST /__emulator/faults, /__emulator/reset")
    sys.stdout.flush()
    uvicorn.run(create_app(world), host=host, port=port, log_level="warning")


# --- validate, catalog, template ------------------------------------------------------------------


def _run(coro: Any) -> Any:
    import anyio

    async def go() -> Any:
        return await coro

    return anyio.run(go)


@main.command()
@click.argument("sheet", type=click.Path(dir_okay=False))
@click.option("--sheet", "sheet_name", default=None, help="The sheet to read (default: the first).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--batch", default=None, help="Batch key the refs are made for (default: file name).")
@click.option("--allow-duplicates", is_flag=True, help="The same order twice is meant, not a slip.")
@api_options
@handle_errors
def validate(sheet: str, sheet_name: str | None, fmt: str, batch: str | None,
             allow_duplicates: bool, **kw: Any) -> None:  # fmt: skip
    """Check every row of SHEET and summarise it; nothing is sent, nothing is paid."""
    import json
    from pathlib import Path

    from .plan import validate_sheet

    settings = make_settings(kw)

    async def go() -> Any:
        async with settings.client() as client:
            return await validate_sheet(sheet, batch=batch or Path(sheet).stem, client=client,
                                        state_dir=settings.state_dir, api_url=settings.api_url,
                                        sheet_name=sheet_name,
                                        allow_duplicates=allow_duplicates)  # fmt: skip

    read, result = _run(go())
    if fmt == "json":
        click.echo(json.dumps(validation_json(result), ensure_ascii=False, indent=1))
    else:
        print_validation(read, result)
    sys.exit(EXIT_OK if not result.invalid else EXIT_INVALID)


def validation_json(result: Any) -> dict[str, Any]:
    rows = []
    for o in result.orders:
        rows.append({
            "row": o.row, "kind": o.kind, "valid": o.valid, "ref": o.ref or None,
            "errors": [{"column": p.column, "message": p.message} for p in o.errors],
            "warnings": [{"column": p.column, "message": p.message} for p in o.warnings],
            "order": {**o.payload(), "face_value": o.face_value, "cost": o.cost,
                      "operator": o.operator or None, "label": o.label or None},
        })  # fmt: skip
    return {"rows": rows, "summary": {**result.summary, "catalog_notes": result.catalog_notes}}


def print_validation(sheet: Any, result: Any) -> None:
    where = f"{sheet.path}" + (f" [{sheet.name}]" if sheet.name else "")
    click.echo(f"{where}: {len(sheet.rows)} rows (header on row {sheet.header_row})")
    for note in result.catalog_notes:
        click.secho(f"note: {note}", fg="yellow")
    errors = [p for o in result.orders for p in o.errors]
    warnings = [p for o in result.orders for p in o.warnings]
    for p in errors:
        click.secho(f"error   {p}", fg="red")
    for p in warnings:
        click.secho(f"warning {p}", fg="yellow")
    s = result.summary
    click.echo("")
    kinds = ", ".join(f"{k} {v['valid']} valid / {v['invalid']} invalid"
                      for k, v in s["per_kind"].items() if v["valid"] or v["invalid"])  # fmt: skip
    click.echo(f"rows: {s['rows']} ({kinds or 'none'})")
    for key, entry in s["per_product"].items():
        click.echo(f"  {key:<48} {entry['rows']:>6} rows {entry['face_value']:>14,.2f} DA "
                   f"face  {entry['cost']:>14,.2f} DA cost")  # fmt: skip
    click.echo(f"total of valid rows: {s['face_value']:,.2f} DA face value, {s['cost']:,.2f} DA cost")
    if s["duplicates"]:
        click.echo(f"duplicates: {len(s['duplicates'])} rows repeat an earlier row")
    verdict = "every row is valid" if not errors else f"{s['invalid']} invalid rows, nothing sent"
    click.secho(verdict, fg="green" if not errors else "red", bold=True)


@main.command()
@click.argument("what", type=click.Choice(["mobile", "internet", "gift", "all"]), default="all")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--refresh", is_flag=True, help="Fetch again even when the cache is fresh.")
@api_options
@handle_errors
def catalog(what: str, fmt: str, refresh: bool, **kw: Any) -> None:
    """Plans, internet products and gift cards, with prices and stock."""
    import json
    from dataclasses import asdict

    from .catalog import load_catalog

    settings = make_settings(kw)
    parts = {"mobile": ("plans",), "internet": ("internet",), "gift": ("gift",),
             "all": ("plans", "internet", "gift")}[what]  # fmt: skip

    async def go() -> Any:
        async with settings.client() as client:
            return await load_catalog(client, settings.state_dir, settings.api_url, parts=parts,
                                      refresh=refresh)  # fmt: skip

    cat = _run(go())
    if cat.missing:
        fail(f"the API could not be reached and nothing is cached for: {', '.join(cat.missing)}",
             EXIT_NOT_FINAL)  # fmt: skip
    if fmt == "json":
        out: dict[str, Any] = {}
        if "plans" in parts:
            out["mobile"] = [asdict(p) for p in cat.plans.values()]
        if "internet" in parts:
            out["internet"] = {k: [asdict(p) for p in v] for k, v in cat.internet.items()}
        if "gift" in parts:
            out["gift"] = [{**asdict(p), "types": [asdict(t) for t in cat.gift_types.get(p.id, [])]}
                           for p in cat.gifts.values()]  # fmt: skip
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
@api_options
@handle_errors
def template(out: str, **kw: Any) -> None:
    """Write an empty order sheet OUT.xlsx with drop-down lists from the catalog."""
    from .catalog import load_catalog
    from .template import write_template

    settings = make_settings(kw)

    async def go() -> Any:
        async with settings.client() as client:
            return await load_catalog(client, settings.state_dir, settings.api_url)

    cat = _run(go())
    write_template(out, cat)
    click.echo(f"wrote {out}: fill one row per order, then run: bulk-topup validate {out}")
    if cat.missing:
        click.secho(f"note: no catalog for {', '.join(cat.missing)}: those lists are empty",
                    fg="yellow")  # fmt: skip
