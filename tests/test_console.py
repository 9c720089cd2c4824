"""The console through Starlette's TestClient, against the in-process emulator in virtual time:
sign-in, CSRF, headers, uploads, the Check page's cells, a run from confirmation to results, the
lock, approvals, code reveals, the language, and the API key never in a byte sent."""

from __future__ import annotations

import io
import stat
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from starlette.routing import Route
from starlette.testclient import TestClient

from bulk_topup.batchfile import batch_path, open_batch
from bulk_topup.cli import main
from bulk_topup.clock import VirtualClock
from bulk_topup.config import Settings
from bulk_topup.console.app import CSP
from bulk_topup.console.auth import COOKIE
from bulk_topup.emulator import ApiKey, EmulatorTransport, World, create_app
from bulk_topup.journal import _os_user
from bulk_topup.sheet import read_sheet

from .consolekit import Kit, cells_of, console_app

SAMPLES = Path(__file__).parent.parent / "samples"
KEY = "console-test-key-7Q2xZ"  # a key no page may ever show


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    clock = VirtualClock()
    world = World(clock=clock, keys={KEY: ApiKey(KEY)})
    world.faults.update({"ref_dedup": False})  # a resent ref would show as a second order
    world.rate_clock = clock.now
    settings = Settings("http://emulator.test", KEY, tmp_path / "state", clock,
                        EmulatorTransport(create_app(world)))  # fmt: skip
    app = console_app(settings)
    with TestClient(app) as client:
        yield Kit(app, client, world)


def orders(world: World) -> dict[str, int]:
    return dict(world.stats()["orders_per_ref"])


# --- sign-in, CSRF, headers ----------------------------------------------------------------------


def test_nothing_without_a_session(kit: Kit) -> None:
    for path in ("/", "/batches", "/sheets/0123456789abcdef", "/template.csv"):
        r = kit.client.get(path)
        assert r.status_code == 401 and "Sign in with the link" in r.text
    assert kit.client.get("/static/htmx.min.js").status_code == 200  # a library, no data


def test_the_token_works_once_and_gives_a_strict_cookie(kit: Kit) -> None:
    token = kit.app.state.sessions.new_token()
    first = kit.client.get(f"/login?token={token}", follow_redirects=False)
    assert first.status_code == 303
    cookie = first.headers["set-cookie"]
    name = kit.app.state.config.cookie  # one per console: a browser keeps cookies per host
    assert name.startswith(COOKIE) and cookie.startswith(f"{name}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert token not in cookie
    again = TestClient(kit.app).get(f"/login?token={token}", follow_redirects=False)
    assert again.status_code == 403 and "used already" in again.text
    assert (
        TestClient(kit.app).get("/login?token=guessed", follow_redirects=False).status_code == 403
    )


def test_every_request_that_changes_something_needs_the_csrf_token(kit: Kit) -> None:
    kit.sign_in()
    posts = [r for r in kit.app.routes if isinstance(r, Route) and "POST" in (r.methods or ())]
    assert len(posts) >= 12
    for route in posts:
        path = route.path.replace("{upload}", "0123456789abcdef").replace("{batch}", "b-00000000")
        for data in ({}, {"csrf": "forged"}):
            r = kit.client.post(path, data=data, follow_redirects=False)
            assert r.status_code == 403, (path, r.status_code)
            assert "CSRF" in r.text
    # an upload without the token stores nothing
    r = kit.client.post("/upload", files={"sheet": ("a.csv", b"phone,plan_code\n")})
    assert r.status_code == 403
    assert not (kit.app.state.config.settings.state_dir / "uploads").exists() or not any(
        (kit.app.state.config.settings.state_dir / "uploads").iterdir()
    )


def test_every_response_carries_the_security_headers(kit: Kit) -> None:
    kit.sign_in()
    for r in (kit.client.get("/"), kit.client.get("/batches"), kit.client.get("/nowhere"),
              kit.client.get("/static/console.css"), TestClient(kit.app).get("/")):  # fmt: skip
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert "'unsafe-inline'" not in CSP and "default-src 'self'" in CSP
    page = kit.client.get("/").text
    assert "<script>" not in page and "style=" not in page and " on" + "click=" not in page


def test_the_remote_address_needs_allow_remote() -> None:
    result = CliRunner().invoke(main, ["console", "--emulator", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "pass --allow-remote only behind your team's TLS proxy and sign-on" in result.output


# --- uploads and the Check page ------------------------------------------------------------------


def test_an_uploaded_sheet_is_private_and_checked_cell_by_cell(kit: Kit) -> None:
    kit.sign_in()
    upload = kit.upload(SAMPLES / "messy.csv", "december")
    folder = kit.app.state.config.settings.state_dir / "uploads" / upload
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "messy.csv").stat().st_mode) == 0o600
    page = kit.client.get(f"/sheets/{upload}")
    assert page.status_code == 200
    cells = cells_of(page.text)
    # errors on the cell that has them, in the user's own header words
    assert cells[(10, "Montant")][0] == "err" and "not a whole number" in cells[(10, "Montant")][1]
    assert cells[(11, "Numéro")][0] == "err" and "has 8 digits" in cells[(11, "Numéro")][1]
    assert cells[(13, "Offre")][0] == "err" and "switched off" in cells[(13, "Offre")][1]
    # repairs as warnings on their cells; a clean cell is neither
    assert cells[(4, "Numéro")][0] == "warn" and "read as 0778037340" in cells[(4, "Numéro")][1]
    assert cells[(4, "Montant")][0] == "warn"
    assert cells[(4, "Nom")] == ("", "Amel")
    assert cells[(11, "Montant")][0] == ""
    assert "3 invalid rows" in page.text and "SANDBOX" in page.text


def test_uploads_are_limited_in_size_and_kind(kit: Kit) -> None:
    kit.sign_in()
    kit.app.state.config.upload_limit = 1000
    big = b"phone,plan_code,amount\n" + b"0661234567,PREPAID_MOBILIS,500\n" * 100
    r = kit.client.post("/upload", data={"csrf": kit.csrf}, files={"sheet": ("big.csv", big)})
    assert r.status_code == 413 and "larger than the console accepts" in r.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it comes
        boundary = b"--x\r\n"
        yield boundary + b'Content-Disposition: form-data; name="csrf"\r\n\r\n'
        yield kit.csrf.encode() + b"\r\n" + boundary
        yield b'Content-Disposition: form-data; name="sheet"; filename="big.csv"\r\n\r\n'
        for _ in range(50):
            yield big
        yield b"\r\n--x--\r\n"

    r = kit.client.post("/upload", content=chunks(),
                        headers={"content-type": "multipart/form-data; boundary=x"})  # fmt: skip
    assert r.status_code == 413
    kit.app.state.config.upload_limit = 20 * 2**20
    r = kit.client.post("/upload", data={"csrf": kit.csrf}, files={"sheet": ("a.exe", b"MZ")})
    assert r.status_code == 400 and "is not an order sheet" in r.text
    uploads = kit.app.state.config.settings.state_dir / "uploads"
    assert not uploads.exists() or not any(p.is_dir() for p in uploads.iterdir())


# --- a run, its results, its codes ---------------------------------------------------------------


def test_a_run_from_confirmation_to_results(kit: Kit) -> None:
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", "nov")
    figures = kit.figures(upload)
    assert figures == {"rows": "13", "face_value": "12280.0", "cost": "12106.5",
                       "environment": "SANDBOX"}  # fmt: skip
    r = kit.start(upload, figures)
    assert r.status_code == 303
    bid = batch_path(kit.app.state.config.settings.state_dir, "nov").stem
    assert r.headers["location"] == f"/batches/{bid}"
    run = kit.wait("nov")
    assert run.error is None and run.result.exit_code == 5  # the sample's UNKNOWN_ERROR row
    assert sorted(orders(kit.world).values()) == [1] * 10  # every top-up once (gifts have no ref)
    page = kit.client.get(f"/batches/{bid}").text
    assert "Some rows are not final yet" in page and 'id="resume"' in page
    results = kit.client.get(f"/batches/{bid}/results").text
    assert "Needs attention" in results and "0600000003" in results
    assert "retry.xlsx" in results
    # the workbook, codes masked
    book = openpyxl.load_workbook(
        io.BytesIO(kit.client.get(f"/batches/{bid}/results.xlsx").content)
    )
    gifts = [row for row in book["Gift cards"].iter_rows(values_only=True)][1:-1]
    assert gifts and all("•" in str(row[book["Gift cards"].max_column - 3]) for row in gifts)
    # the Retry sheet is an order sheet bulk-topup reads
    retry = kit.client.get(f"/batches/{bid}/retry.xlsx")
    path = kit.app.state.config.settings.state_dir.parent / "retry.xlsx"
    path.write_bytes(retry.content)
    sheet = read_sheet(path)
    assert [r.cells["phone"] for r in sheet.rows if r.cells.get("phone")] == [
        "0600000001", "0600000002"]  # fmt: skip


def test_a_code_is_masked_until_revealed_and_the_reveal_is_recorded(kit: Kit) -> None:
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", "codes")
    kit.start(upload)
    kit.wait("codes")
    state = kit.app.state.config.settings.state_dir
    with open_batch(state, "codes", now=lambda: "", lock=False, create=False) as j:
        row = next(r for r in j.iter_rows() if r.cards)
        code = row.cards[0]["value"]
    bid = batch_path(state, "codes").stem
    assert code not in kit.client.get(f"/batches/{bid}/results").text
    shown = kit.client.post(f"/batches/{bid}/reveal",
                            data={"csrf": kit.csrf, "idx": row.idx, "card": 1})  # fmt: skip
    assert shown.status_code == 200 and code in shown.text
    with open_batch(state, "codes", now=lambda: "", lock=False, create=False) as j:
        events = [e for e in j.events() if "revealed" in (e["detail"] or "")]
    assert len(events) == 1 and events[0]["actor"] == _os_user()  # the console's user
    assert code not in str(events[0])
    whole = kit.client.post(f"/batches/{bid}/results-with-codes.xlsx", data={"csrf": kit.csrf})
    book = openpyxl.load_workbook(io.BytesIO(whole.content))
    assert code in [c for row in book["Gift cards"].iter_rows(values_only=True) for c in row]


def test_a_run_whose_facts_changed_since_confirmation_sends_nothing(kit: Kit) -> None:
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", "changed")
    figures = {**kit.figures(upload), "rows": "12", "face_value": "11280.0"}
    kit.start(upload, figures)
    run = kit.wait("changed")
    assert "changed since it was confirmed" in run.error and "nothing was sent" in run.error
    assert orders(kit.world) == {} and kit.world.stats()["total_calls"] > 0
    bid = batch_path(kit.app.state.config.settings.state_dir, "changed").stem
    assert "changed since it was confirmed" in kit.client.get(f"/batches/{bid}").text


def test_a_batch_locked_by_another_process_is_not_started(kit: Kit) -> None:
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", "locked")
    figures = kit.figures(upload)
    state = kit.app.state.config.settings.state_dir
    with open_batch(state, "locked", now=lambda: "2026-01-01T00:00:00.000Z"):  # a CLI's run
        r = kit.start(upload, figures)
        assert r.status_code == 409 and "being run by another process" in r.text
        page = kit.client.get(f"/batches/{batch_path(state, 'locked').stem}").text
        assert "Being run by another process right now" in page
        assert "being run by another process" in kit.client.get("/batches").text
    assert orders(kit.world) == {}


def test_a_restarted_console_rebuilds_the_batch_from_its_journal(kit: Kit, tmp_path: Path) -> None:
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", "restart")
    kit.start(upload)
    kit.wait("restart")
    settings = kit.app.state.config.settings
    other = console_app(settings)
    with TestClient(other) as client:
        fresh = Kit(other, client, kit.world)
        fresh.sign_in()
        page = client.get(f"/batches/{batch_path(settings.state_dir, 'restart').stem}").text
    assert "12 of 13 rows final" in page
    assert page.count('id="row-') == 13 and "delivered" in page
    assert "restart" in client.get("/batches").text


def test_the_live_view_sends_rows_and_ends(kit: Kit) -> None:
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", "live")
    kit.start(upload)
    kit.wait("live")
    bid = batch_path(kit.app.state.config.settings.state_dir, "live").stem
    stream = kit.client.get(f"/batches/{bid}/events?since=1")
    assert stream.headers["content-type"].startswith("text/event-stream")
    text = stream.text
    assert "event: update" in text and "event: done" in text
    assert 'hx-swap-oob="true"' in text and 'id="row-0"' in text and "id: " in text


# --- approvals -----------------------------------------------------------------------------------


def test_nothing_runs_unapproved_and_an_approval_in_the_console_lets_it(
    kit: Kit, own_config: Path
) -> None:
    from bulk_topup.signing import new_key

    _path, line = new_key("boss")
    policy = own_config / "policy.toml"
    policy.write_text(f"[approvers]\n{line}\n[approval]\nrequired = 1\n")
    kit.app.state.config.policy = str(policy)
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", "approved")
    confirm = kit.client.get(f"/sheets/{upload}/run").text
    assert "This run cannot start" in confirm and "needs 1 approval" in confirm
    kit.start(upload, {"rows": "13", "face_value": "12280.0", "cost": "12106.5",
                       "environment": "SANDBOX"})  # fmt: skip
    refused = kit.wait("approved")
    assert "needs 1 approval" in refused.error and orders(kit.world) == {}
    kit.client.post(f"/sheets/{upload}/plan", data={"csrf": kit.csrf})
    plan = kit.client.get(f"/sheets/{upload}/plan").text
    assert "Not approved yet: 0 of 1 approval." in plan and "approver boss" in plan
    digest = plan.split('id="digest">', 1)[1].split("<", 1)[0]
    done = kit.client.post(f"/sheets/{upload}/approve",
                           data={"csrf": kit.csrf, "key": "boss", "digest": digest})  # fmt: skip
    assert "Approved: 1 of 1 approval." in done.text
    kit.start(upload)
    run = kit.wait("approved")
    assert run.error is None, run.error
    assert len(orders(kit.world)) == 10
    state = kit.app.state.config.settings.state_dir
    with open_batch(state, "approved", now=lambda: "", lock=False, create=False) as j:
        said = [e["detail"] for e in j.events() if e["idx"] is None]
    assert any("approved by boss" in d for d in said)


# --- language and secrets ------------------------------------------------------------------------


def test_the_console_speaks_the_users_language(kit: Kit) -> None:
    kit.sign_in()
    kit.client.headers["accept-language"] = "fr-DZ,fr;q=0.9,en;q=0.5"
    assert "Déposer" in kit.client.get("/").text or "Téléverser" in kit.client.get("/").text
    kit.client.post("/language", data={"csrf": kit.csrf, "language": "en", "back": "/"})
    assert "Upload an order sheet" in kit.client.get("/").text
    kit.client.post("/language", data={"csrf": kit.csrf, "language": "fr", "back": "/"})
    upload = kit.upload(SAMPLES / "messy.csv", "fr")
    page = kit.client.get(f"/sheets/{upload}").text
    assert "lignes invalides" in page


def test_the_api_key_is_never_sent_to_the_browser(kit: Kit) -> None:
    kit.sign_in()
    seen = []
    upload = kit.upload(SAMPLES / "orders.csv", "secret")
    for path in ("/", f"/sheets/{upload}", f"/sheets/{upload}/plan", f"/sheets/{upload}/run"):
        seen.append(kit.client.get(path))
    kit.start(upload)
    kit.wait("secret")
    bid = batch_path(kit.app.state.config.settings.state_dir, "secret").stem
    later = ["", "/results", "/events", "/results.xlsx", "/retry.xlsx", "/resume"]
    for path in [f"/batches/{bid}{p}" for p in later] + ["/batches", "/template.xlsx",
                                                         "/template.csv"]:  # fmt: skip
        seen.append(kit.client.get(path))
    seen.append(kit.client.post(f"/batches/{bid}/results-with-codes.xlsx", data={"csrf": kit.csrf}))
    assert all(r.status_code == 200 for r in seen), [(r.url, r.status_code) for r in seen]
    for r in seen:
        assert KEY.encode() not in r.content, r.url
        assert KEY not in str(r.headers), r.url


def test_behind_a_sign_on_proxy_each_person_is_themselves_and_signs_with_their_own_key(
    kit: Kit,
) -> None:
    from bulk_topup.signing import new_key

    new_key("nadia")
    new_key("yacine")
    kit.app.state.config.user_header = "X-Forwarded-User"
    # The sign-on proxy, on this machine (the console believes the header from loopback only)
    kit = Kit(kit.app, TestClient(kit.app, client=("127.0.0.1", 41000)), kit.world)
    assert kit.client.get(f"/login?token={kit.app.state.sessions.new_token()}").status_code == 401
    kit.client.headers["X-Forwarded-User"] = "nadia"
    kit.sign_in()
    assert "nadia" in kit.client.get("/").text
    kit.client.headers["X-Forwarded-User"] = "yacine"  # nadia's cookie, someone else
    assert kit.client.get("/").status_code == 401
    kit.client.headers["X-Forwarded-User"] = "nadia"
    upload = kit.upload(SAMPLES / "orders.csv", "proxy")
    kit.client.post(f"/sheets/{upload}/plan", data={"csrf": kit.csrf})
    plan = kit.client.get(f"/sheets/{upload}/plan").text
    assert 'value="nadia"' in plan and 'value="yacine"' not in plan
    assert "prepared by" in plan and "nadia" in plan
    digest = plan.split('id="digest">', 1)[1].split("<", 1)[0]
    r = kit.client.post(f"/sheets/{upload}/approve",
                        data={"csrf": kit.csrf, "key": "yacine", "digest": digest})  # fmt: skip
    assert r.status_code == 400 and "no approval key named yacine" in r.text


def test_an_uncertain_gift_row_shows_the_command_that_resends_it(kit: Kit, tmp_path: Path) -> None:
    """Resume leaves an UNCERTAIN gift row to a person: the results page says so, with the
    command a person runs once they have checked the provider's gift orders."""
    kit.sign_in()
    sheet = tmp_path / "gift.csv"
    sheet.write_text(
        "Kind,Product ID,Type ID,Quantity\ngiftcard,507f1f77bcf86cd799439011,type_001,1\n"
    )
    upload = kit.upload(sheet, "gifts")
    figures = kit.figures(upload)
    kit.world.faults.update({"fail_next": 1, "fail_on": "POST /v3/gift-cards/placeOrder"})
    kit.start(upload, figures)
    run = kit.wait("gifts")
    assert run.error is None and run.result.exit_code == 5
    assert kit.world.stats()["orders"] == 0
    bid = batch_path(kit.app.state.config.settings.state_dir, "gifts").stem
    page = kit.client.get(f"/batches/{bid}/results").text
    assert "sent again only once a person has checked the provider" in page
    assert "bulk-topup resume --batch gifts --state-dir" in page
    assert "--resend-uncertain-gifts</code>" in page
    # What resuming would do says the same: the gift row is looked for, never sent again here.
    resume = kit.client.get(f"/batches/{bid}/resume").text
    assert 'id="gifts-to-check">1 row, looked for among the provider' in resume
    assert "left to a person and not sent again from here" in resume
    assert "sent again only if it never got" not in resume
    # The workbook names the sheet as it was uploaded, not by the server's upload folder.
    book = openpyxl.load_workbook(
        io.BytesIO(kit.client.get(f"/batches/{bid}/results.xlsx").content)
    )
    named = {r[0]: r[1] for r in book.worksheets[0].iter_rows(values_only=True) if r and r[0]}
    assert named["sheet"] == "gift.csv"


def test_a_batch_key_with_an_invisible_character_is_refused_at_upload(kit: Kit) -> None:
    kit.sign_in()
    calls = kit.world.stats()["total_calls"]
    with (SAMPLES / "orders.csv").open("rb") as f:
        r = kit.client.post(
            "/upload", data={"csrf": kit.csrf, "batch": "nov\x01"},
            files={"sheet": ("orders.csv", f, "application/octet-stream")},
            follow_redirects=False,
        )  # fmt: skip
    assert r.status_code != 303
    assert "holds a character that cannot be seen (U+0001)" in r.text
    assert kit.world.stats()["total_calls"] == calls
