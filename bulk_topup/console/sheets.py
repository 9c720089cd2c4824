"""Pages of an uploaded sheet: Upload, Check, Plan and approval, and the confirmation that starts
its run. Each calls what the CLI's validate, plan, approve and run call."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from ..approval import approval_status
from ..batchfile import batch_path
from ..catalog import load_catalog
from ..clock import iso
from ..context import RunOptions
from ..errors import UsageError
from ..i18n import _, current_language, ngettext
from ..planfile import build_plan, prepare, read_plan, signatures_path, write_plan
from ..policy import load_policy
from ..preview import Expected, expected_of_dry_run
from ..report.settings import CSV_DIALECTS, ReportSettings
from ..report.words import kind_words
from ..review import review
from ..service import SheetRun, dry_run, run_sheet
from ..signing import add_signature, keys_dir, load_signing_key, public_key_text, sign
from ..template import write_csv_template, write_template
from . import uploads
from .web import changes, money, needs_api, render, state, user_of

SHOWN_ROWS = 200  # rows shown whole on the Check page; every row with a problem is shown too
MOST_SHOWN = 2000


def _settings(request: Request) -> Any:
    return state(request).config.settings


def _upload(request: Request) -> uploads.Upload:
    found = uploads.load(_settings(request).state_dir, request.path_params["upload"])
    if found is None:
        raise HTTPException(404, _("there is no such uploaded sheet"))
    return found


def batch_id(settings: Any, batch: str) -> str:
    """The name of a batch in the console's addresses: its journal's file name (safe in a URL)."""
    return batch_path(settings.state_dir, batch).stem


def allow_hints() -> dict[str, str]:
    """How the library's refusals say, in the console's words, to do on purpose what they
    refused (`SheetRun.allow_hints`): the console offers each of these."""
    return {
        "edits": _("tick \u201cSend the edited rows as new orders\u201d on the Run page to send "
                   "them on purpose"),
        "repeats": _("tick \u201cPay these rows again\u201d on the Run page"),
        "invalid": _("or tick \u201cSend the valid rows even if some are invalid\u201d in the "
                     "options of the Check page"),
        "approval": _("prepare the plan on the Plan and approval page and have it approved; the "
                      "console then sends the approved plan"),
    }  # fmt: skip


def sheet_run(request: Request, upload: uploads.Upload, choices: Any = None) -> SheetRun:
    """What the CLI's `run SHEET --batch KEY` would be asked, with the approved plan when the
    policy is there to check it (`run --plan`), and what the person ticked on the Run page
    (`choices`: the page's query or form)."""
    config = state(request).config
    policy = load_policy(config.policy)
    plan = upload.plan_path if policy is not None and upload.plan_path.exists() else None
    choices = choices or {}
    return SheetRun(
        sheet=upload.path, batch=upload.batch, sheet_name=upload.sheet_name,
        options=RunOptions(rate=config.rate, concurrency=config.concurrency),
        skip_invalid=upload.skip_invalid, allow_duplicates=upload.allow_duplicates,
        send_edited=bool(choices.get("send_edited")),
        allow_repeat=bool(choices.get("allow_repeat")),
        report=ReportSettings(tz=config.tz), plan=plan, policy=policy, actor=user_of(request),
        allow_hints=allow_hints(),
    )  # fmt: skip


async def home(request: Request) -> Response:
    return render(request, "upload.html", recent=uploads.recent(_settings(request).state_dir),
                  limit=state(request).config.upload_limit)  # fmt: skip


@changes(upload=True)
async def upload(request: Request, form: FormData) -> Response:
    file = form.get("sheet")
    if not isinstance(file, UploadFile) or not file.filename:
        raise UsageError(_("choose a sheet to upload (a .csv, .xlsx, .xls or .ods file)"))
    settings = _settings(request)
    name = uploads.safe_name(file.filename)
    today = settings.clock.wall().strftime("%Y-%m-%d")
    stored = await uploads.store(
        settings.state_dir, file, name=name, user=user_of(request),
        batch=uploads.batch_key(str(form.get("batch", "")), name, today),
        now=iso(settings.clock.wall()), sheet_name=str(form.get("sheet_name", "")) or None,
        skip_invalid=bool(form.get("skip_invalid")),
        allow_duplicates=bool(form.get("allow_duplicates")),
    )  # fmt: skip
    return RedirectResponse(f"/sheets/{stored.id}", status_code=303)


async def template(request: Request) -> Response:
    """The empty order sheet, in the user's language: xlsx with the catalog's lists, or CSV."""
    settings = _settings(request)
    suffix = request.path_params["suffix"]
    if suffix not in ("xlsx", "csv"):
        raise HTTPException(404, _("a template is an .xlsx or a .csv file"))
    if suffix == "xlsx":
        needs_api(request)
    tmp = Path(tempfile.mkdtemp(dir=uploads.uploads_dir(settings.state_dir)))
    path = tmp / f"{_('orders-template')}.{suffix}"
    if suffix == "csv":
        # As a spreadsheet of the reader's locale opens it: semicolons for a French Excel.
        dialect = CSV_DIALECTS["excel-fr" if current_language() == "fr" else "excel"]
        write_csv_template(path, delimiter=dialect.delimiter)
    else:
        async with settings.client() as client:
            write_template(path, await load_catalog(client, settings.state_dir, settings.api_url))
    return FileResponse(path, filename=path.name, background=BackgroundTask(_remove, tmp))


def _remove(folder: Path) -> None:
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


async def check(request: Request) -> Response:
    sheet = _upload(request)
    needs_api(request)
    found = await dry_run(_settings(request), sheet_run(request, sheet))
    state(request).config.environment = found.key_type
    rows = review(found.sheet, found.validation)
    shown = [r for n, r in enumerate(rows) if n < SHOWN_ROWS or r.problems or r.warnings
             or any(c.warnings for c in r.cells)][:MOST_SHOWN]  # fmt: skip
    return render(request, "check.html", upload=sheet, found=found, rows=shown, total=len(rows),
                  summary=found.validation.summary, kind_words=kind_words,
                  blocked=blockers(found, sheet.skip_invalid))  # fmt: skip


@changes()
async def options(request: Request, form: FormData) -> Response:
    sheet = _upload(request)
    today = _settings(request).clock.wall().strftime("%Y-%m-%d")
    sheet.batch = uploads.batch_key(str(form.get("batch", "")), sheet.name, today)
    sheet.sheet_name = str(form.get("sheet_name", "")).strip() or None
    sheet.skip_invalid = bool(form.get("skip_invalid"))
    sheet.allow_duplicates = bool(form.get("allow_duplicates"))
    sheet.save()
    return RedirectResponse(f"/sheets/{sheet.id}", status_code=303)


def _keys(request: Request) -> list[str]:
    """The approval keys this person may sign with: on a console shared behind a sign-on proxy,
    only the key named after them; on one's own machine, every key of the config dir (as
    `bulk-topup approve --key`); on a console others reach that knows nobody, none."""
    if not state(request).config.identified:
        return []
    folder = keys_dir()
    names = sorted(p.stem for p in folder.glob("*.key")) if folder.is_dir() else []
    if state(request).config.user_header:
        return [n for n in names if n == user_of(request)]
    return names


async def plan_page(request: Request) -> Response:
    sheet = _upload(request)
    policy = load_policy(state(request).config.policy)
    plan = read_plan(sheet.plan_path) if sheet.plan_path.exists() else None
    status = approval_status(plan, policy) if plan is not None and policy is not None else None
    keys = []
    for name in _keys(request):
        try:
            _name, key = load_signing_key(name)
        except UsageError:
            continue
        approver = policy.approver_of(public_key_text(key.public_key())) if policy else None
        keys.append({"name": name, "approver": approver})
    return render(request, "plan.html", upload=sheet, plan=plan, policy=policy, status=status,
                  keys=keys, approved=request.query_params.get("approved"),
                  identified=state(request).config.identified, kind_words=kind_words)  # fmt: skip


@changes()
async def make_plan(request: Request, form: FormData) -> Response:
    sheet = _upload(request)
    settings = _settings(request)
    if signatures_path(sheet.plan_path).exists():
        raise UsageError(
            _(
                "this plan has approvals already: it is not replaced, so that no signature is "
                "left beside a plan it did not approve; to plan the sheet anew, upload it again"
            )
        )
    needs_api(request)
    async with settings.client() as client:
        ready = await prepare(
            client, sheet.path, batch=sheet.batch, state_dir=settings.state_dir,
            api_url=settings.api_url, sheet_name=sheet.sheet_name,
            allow_duplicates=sheet.allow_duplicates,
        )  # fmt: skip
    made = build_plan(
        ready.sheet, ready.validation, ready.catalog, sheet_bytes=ready.sheet_bytes,
        batch=sheet.batch, api_url=settings.api_url, environment=ready.environment,
        preparer=user_of(request), prepared_at=iso(settings.clock.wall()),
        skip_invalid=sheet.skip_invalid, allow_duplicates=sheet.allow_duplicates,
    )  # fmt: skip
    write_plan(made, sheet.plan_path)
    return RedirectResponse(f"/sheets/{sheet.id}/plan", status_code=303)


@changes()
async def approve(request: Request, form: FormData) -> Response:
    sheet = _upload(request)
    if not state(request).config.identified:
        raise UsageError(unidentified())
    name = str(form.get("key", ""))
    if name not in _keys(request):
        raise UsageError(_("you have no approval key named {name} here").format(name=name))
    if not sheet.plan_path.exists():
        raise UsageError(_("there is no plan to approve yet"))
    made = read_plan(sheet.plan_path)
    if made.digest != form.get("digest"):
        raise UsageError(
            _(
                "the plan changed since you looked at it (digest {digest} now); "
                "look at it again before approving"
            ).format(digest=made.digest)
        )
    _name, key = load_signing_key(name)
    add_signature(sheet.plan_path, sign(made, name, key, iso(_settings(request).clock.wall())))
    return RedirectResponse(f"/sheets/{sheet.id}/plan?approved={name}", status_code=303)


def unidentified() -> str:
    return _(
        "approving needs a person the console knows, and this one knows nobody: other "
        "machines reach it and no sign-on proxy names who is signed in (--user-header), so "
        "everyone is the account that runs it. Approve with bulk-topup approve on your own "
        "machine, with your own key."
    )


async def confirm_page(request: Request) -> Response:
    """What a run would send now; the choices the person made here (send edited rows, pay
    again) are in the page's address, so the figures shown are those of that very run."""
    sheet = _upload(request)
    needs_api(request)
    choices = request.query_params
    found = await dry_run(_settings(request), sheet_run(request, sheet, choices))
    state(request).config.environment = found.key_type
    blocked = blockers(found, sheet.skip_invalid)
    return render(request, "confirm.html", upload=sheet, found=found, blocked=blocked,
                  expected=expected_of_dry_run(found),
                  send_edited=bool(choices.get("send_edited")),
                  allow_repeat=bool(choices.get("allow_repeat")))  # fmt: skip


def blockers(found: Any, skip_invalid: bool) -> list[str]:
    """Why a run would be refused now, as the CLI's dry run says it (nothing is offered to send
    then)."""
    said = list(found.refusals)
    invalid = len(found.validation.invalid)
    if invalid and not skip_invalid:
        said.append(ngettext(
            "{n} invalid row: fix it, or tick \u201cSend the valid rows even if some are "
            "invalid\u201d in the options of the Check page",
            "{n} invalid rows: fix them, or tick \u201cSend the valid rows even if some are "
            "invalid\u201d in the options of the Check page",
            invalid).format(n=invalid))  # fmt: skip
    if found.unauthorised:
        said.append(found.unauthorised)
    if found.key_scope != "READ-WRITE":
        said.append(_("this API key is {scope}: it can look but not buy").format(
            scope=found.key_scope))  # fmt: skip
    if found.cost > found.balance:
        said.append(_("the balance ({balance}) does not cover {cost}").format(
            balance=money(found.balance), cost=money(found.cost)))  # fmt: skip
    if found.to_send == 0 and found.to_check == 0:
        said.append(_("nothing to send: every valid row of this batch was sent already"))
    return said


@changes()
async def start_run(request: Request, form: FormData) -> Response:
    sheet = _upload(request)
    settings = _settings(request)
    try:
        expected = Expected(int(str(form["rows"])), float(str(form["face_value"])),
                            float(str(form["cost"])), str(form["environment"]))  # fmt: skip
    except (KeyError, ValueError):
        raise UsageError(_("confirm the figures on the confirmation page first")) from None
    needs_api(request)
    asked = sheet_run(request, sheet, form)
    state(request).runs.start(
        sheet.batch, "run", user_of(request), lambda h: run_sheet(settings, asked, h), expected
    )
    return RedirectResponse(f"/batches/{batch_id(settings, sheet.batch)}", status_code=303)


ROUTES = [
    Route("/", home),
    Route("/upload", upload, methods=["POST"]),
    Route("/template.{suffix:str}", template),
    Route("/sheets/{upload}", check),
    Route("/sheets/{upload}/options", options, methods=["POST"]),
    Route("/sheets/{upload}/plan", plan_page),
    Route("/sheets/{upload}/plan", make_plan, methods=["POST"]),
    Route("/sheets/{upload}/approve", approve, methods=["POST"]),
    Route("/sheets/{upload}/run", confirm_page),
    Route("/sheets/{upload}/run", start_run, methods=["POST"]),
]
