"""status, report, batches and discard: what the journals say, without an API call."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..i18n import _, ngettext
from . import (
    handle_errors,
    main,
    state_dir_option,
)
from .reporting import echo_written, report_options, report_settings


@main.command()
@click.option("--batch", required=True, help="The batch key given to run.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text for people, json for scripts.",
)  # fmt: skip
@state_dir_option
@handle_errors
def status(batch: str, fmt: str, state_dir: str) -> None:
    """Counts per state of a batch, from its journal (no API call)."""
    import json

    from ..batchfile import open_batch
    from ..runner import exit_code_for

    with open_batch(Path(state_dir), batch, now=lambda: "", lock=False, create=False) as journal:
        counts = journal.counts()
        meta = journal.meta()
    rows = sum(counts.values())
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "batch": batch,
                    "counts": counts,
                    "rows": rows,
                    "environment": meta.get("environment"),
                    "finished_at": meta.get("finished_at") or None,  # "" while a run goes on
                    "stop_reason": meta.get("stop_reason") or None,
                    "exit_code": exit_code_for(counts),
                }
            )
        )
        return
    click.echo(
        ngettext("batch {batch}: {n} row", "batch {batch}: {n} rows", rows).format(
            batch=batch, n=rows
        )
        + (f" ({meta['environment']})" if meta.get("environment") else "")
    )
    if not rows:
        from ..batchfile import batch_locked

        if batch_locked(Path(state_dir), batch):
            click.echo(_("  it holds no rows yet: a run is writing the sheet's rows right now"))
        else:
            click.echo(
                _(
                    "  it holds no rows: the run that created it stopped before the sheet's rows "
                    "were written; run the sheet again, or discard the batch"
                )
            )
    for state, n in sorted(counts.items()):
        click.echo(f"  {state:<17} {n}")


@main.command()
@click.option("--batch", required=True, help="The batch key given to run.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Results file; its extension (.xlsx, .csv, .json) says the format (default: the "
    "batch's results file).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["xlsx", "csv", "json"]),
    default=None,
    help="Format of the results, when --out's extension does not say it (default xlsx).",
)
@report_options
@state_dir_option
@handle_errors
def report(batch: str, out: str | None, fmt: str | None, state_dir: str, **kw: Any) -> None:
    """Rebuild the results of a batch from its journal (no API call)."""
    from pathlib import Path

    from ..batchfile import open_batch
    from ..report import default_path, output_format, write_results

    fmt = output_format(out, fmt)
    with open_batch(Path(state_dir), batch, now=lambda: "", lock=False, create=False) as journal:
        if out is None:
            saved = journal.get_meta("out")
            target = Path(saved).with_suffix(f".{fmt}") if saved else default_path(None, batch, fmt)
        else:
            target = Path(out)
        settings = report_settings(kw, target)
        path = write_results(journal, target, fmt, settings=settings)
    echo_written(path, settings)


@main.command()
@state_dir_option
def batches(state_dir: str) -> None:
    """The batches in the state dir, with their counts per state."""
    from ..batchfile import list_batches

    found = list_batches(Path(state_dir))
    if not found:
        click.echo(_("no batches in {state_dir}").format(state_dir=state_dir))
        return
    for key, _path, counts, meta in found:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or _("no rows")
        when = meta.get("finished_at") or meta.get("created_at") or ""
        click.echo(f"{key:<30} {when:<25} {parts}")


@main.command()
@click.option("--batch", required=True, help="The batch to discard.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@state_dir_option
@handle_errors
def discard(batch: str, yes: bool, state_dir: str) -> None:
    """Delete a batch that never sent anything (abandoned at the confirmation, or refused)."""
    from ..errors import RefusedError
    from ..service import discard_batch

    if not yes:
        if not sys.stdin.isatty():
            raise RefusedError(_("discard needs a confirmation; pass --yes"))
        question = _("Discard batch {batch!r} (nothing of it was sent)?").format(batch=batch)
        if not click.confirm(question, default=False):
            raise RefusedError(_("not confirmed; nothing was discarded"))
    rows = discard_batch(Path(state_dir), batch)
    click.echo(
        ngettext(
            "discarded batch {batch}: {n} row, never sent",
            "discarded batch {batch}: {n} rows, none of them sent",
            rows,
        ).format(batch=batch, n=rows)
    )
