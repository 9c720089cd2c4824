"""Who the console believes and what it answers: the sign-on header only from the proxy, no
approval where nobody is known, a cookie per console, the CSRF token before the body, the
security headers on a server error, a refused API key asked about once, a usable link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bulk_topup.cli import main
from bulk_topup.cli.console import link_host, warnings_for
from bulk_topup.clock import VirtualClock
from bulk_topup.config import Settings
from bulk_topup.console.app import CSP
from bulk_topup.emulator import ApiKey, EmulatorTransport, World, create_app

from .consolekit import Kit, console_app

SAMPLES = Path(__file__).parent.parent / "samples"
KEY = "security-console-key-4Rt"
HEADER = "X-Forwarded-User"


def _settings(tmp_path: Path, key: str = KEY) -> tuple[Settings, World]:
    clock = VirtualClock()
    world = World(clock=clock, keys={KEY: ApiKey(KEY)})
    world.rate_clock = clock.now
    settings = Settings("http://emulator.test", key, tmp_path / "state", clock,
                        EmulatorTransport(create_app(world)))  # fmt: skip
    return settings, world


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    settings, world = _settings(tmp_path)
    app = console_app(settings)
    with TestClient(app) as client:
        yield Kit(app, client, world)


def _as(kit: Kit, address: str, **headers: str) -> Kit:
    """The same console, reached from `address` (a browser, or a proxy)."""
    return Kit(kit.app, TestClient(kit.app, client=(address, 50000), headers=headers), kit.world)


# --- the sign-on header --------------------------------------------------------------------------


def test_the_user_header_is_believed_only_from_the_proxy(kit: Kit) -> None:
    """Anyone who reaches the console's port directly could name themselves the boss in the
    header; only requests from the sign-on proxy's addresses may carry who they are."""
    config = kit.app.state.config
    config.user_header = HEADER
    token = kit.app.state.sessions.new_token()
    stranger = TestClient(kit.app, client=("10.1.2.3", 50000), headers={HEADER: "boss"})
    r = stranger.get(f"/login?token={token}", follow_redirects=False)
    assert r.status_code == 401
    assert "did not come through" in r.text and "sign-on" in r.text
    assert r.headers["content-security-policy"] == CSP
    # the token was not spent on the stranger: the proxy on this machine signs in with it
    proxy = TestClient(kit.app, client=("127.0.0.1", 50000), headers={HEADER: "nadia"})
    assert proxy.get(f"/login?token={token}", follow_redirects=False).status_code == 303
    assert "nadia" in proxy.get("/").text
    # a session opened through the proxy is no use from elsewhere, even with its cookie
    stolen = TestClient(kit.app, client=("10.1.2.3", 50000), headers={HEADER: "nadia"},
                        cookies=proxy.cookies)  # fmt: skip
    assert stolen.get("/").status_code == 401
    # a proxy on another machine is named with --trusted-proxy (an address or a network)
    config.trusted_proxies = ("10.1.2.0/24",)
    token = kit.app.state.sessions.new_token()
    assert stranger.get(f"/login?token={token}", follow_redirects=False).status_code == 303
    assert proxy.get("/").status_code == 401  # loopback is no longer the proxy


def test_the_proxy_scheme_is_believed_only_from_the_proxy(kit: Kit) -> None:
    """Behind TLS on another machine the cookie must be Secure: X-Forwarded-Proto is taken
    from a trusted proxy (uvicorn's own default would trust 127.0.0.1 alone), and from no one
    else."""
    kit.app.state.config.trusted_proxies = ("192.0.2.10",)
    forwarded = {"x-forwarded-proto": "https"}
    via_proxy = TestClient(kit.app, client=("192.0.2.10", 50000), headers=forwarded)
    r = via_proxy.get(f"/login?token={kit.app.state.sessions.new_token()}",
                      follow_redirects=False)  # fmt: skip
    assert "secure" in r.headers["set-cookie"].lower()
    direct = TestClient(kit.app, client=("192.0.2.99", 50000), headers=forwarded)
    r = direct.get(f"/login?token={kit.app.state.sessions.new_token()}", follow_redirects=False)
    assert r.status_code == 303 and "secure" not in r.headers["set-cookie"].lower()


def test_a_console_that_knows_nobody_refuses_approvals(kit: Kit, own_config: Path) -> None:
    """--allow-remote without --user-header: everyone signs in as the account running the
    console, so a signature made there would be nobody's in particular."""
    from bulk_topup.signing import new_key

    _path, line = new_key("boss")
    (own_config / "policy.toml").write_text(f"[approvers]\n{line}\n[approval]\nrequired = 1\n")
    config = kit.app.state.config
    config.policy = str(own_config / "policy.toml")
    config.remote = True
    kit.sign_in()
    upload = kit.upload(SAMPLES / "orders.csv", "nobody")
    kit.client.post(f"/sheets/{upload}/plan", data={"csrf": kit.csrf})
    page = kit.client.get(f"/sheets/{upload}/plan").text
    assert "Approving needs a person the console knows" in page
    assert 'id="approve"' not in page
    digest = page.split('id="digest">', 1)[1].split("<", 1)[0]
    r = kit.client.post(f"/sheets/{upload}/approve",
                        data={"csrf": kit.csrf, "key": "boss", "digest": digest})  # fmt: skip
    assert r.status_code == 400 and "approving needs a person the console knows" in r.text
    assert not list((config.settings.state_dir / "uploads" / upload).glob("*.sig"))
    # the same console on one's own machine (not remote) knows its one person: approval works
    config.remote = False
    r = kit.client.post(f"/sheets/{upload}/approve",
                        data={"csrf": kit.csrf, "key": "boss", "digest": digest})  # fmt: skip
    assert "Approved: 1 of 1 approval." in r.text


def test_the_start_warns_when_the_console_knows_nobody() -> None:
    said = " ".join(warnings_for(True, True, None, "svc"))
    assert "knows nobody" in said and "recorded as svc" in said
    assert "approvals in the console are refused" in said and "--user-header" in said
    assert warnings_for(True, True, HEADER, "svc") == []
    assert warnings_for(False, True, None, "svc") == []
    assert "reachable from other machines" in " ".join(warnings_for(True, False, HEADER, "svc"))


def test_a_trusted_proxy_must_be_an_address() -> None:
    result = CliRunner().invoke(main, ["console", "--emulator", "--trusted-proxy", "proxy.lan"])
    assert result.exit_code == 2 and "--trusted-proxy takes an address" in result.output


def test_the_printed_link_is_one_a_browser_can_open() -> None:
    assert link_host("127.0.0.1") == "127.0.0.1"
    assert link_host("::1") == "[::1]"
    assert link_host("fe80::1") == "[fe80::1]"
    assert link_host("console.example") == "console.example"
    for wildcard in ("0.0.0.0", "::"):  # noqa: S104 (the address under test)
        shown = link_host(wildcard)
        assert shown not in ("0.0.0.0", "::", "[::]") and shown  # noqa: S104


# --- cookies, CSRF, headers ----------------------------------------------------------------------


def test_two_consoles_on_one_host_keep_their_own_sessions(tmp_path: Path) -> None:
    """One browser, two consoles of one machine (two ports): signing in to the second leaves
    the first signed in, as the browser keeps both cookies."""
    apps = [console_app(_settings(tmp_path / n)[0], port=p) for n, p in (("a", 8765), ("b", 8766))]
    jar: dict[str, str] = {}  # a browser's cookies of one host and path: one value per name
    for app in apps:
        r = TestClient(app).get(f"/login?token={app.state.sessions.new_token()}",
                                follow_redirects=False)  # fmt: skip
        name, value = r.headers["set-cookie"].split(";", 1)[0].split("=", 1)
        jar[name] = value
    for app in apps:
        assert TestClient(app, cookies=jar).get("/").status_code == 200, app.state.config.cookie
    names = [app.state.config.cookie for app in apps]
    assert names[0] != names[1] and all("876" in n for n in names)


class BodyWatch:
    """The console, and whether it read any of a request's body."""

    def __init__(self, app: Any) -> None:
        self.app, self.read = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def watched() -> Any:
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, watched, send)


def test_a_forged_upload_is_refused_before_its_body_is_read(kit: Kit) -> None:
    kit.sign_in()
    watch = BodyWatch(kit.app)
    client = TestClient(watch, cookies=kit.client.cookies)
    big = b"phone,plan_code,amount\n" + b"0661234567,PREPAID_MOBILIS,500\n" * 30_000
    r = client.post("/upload?csrf=forged", files={"sheet": ("big.csv", big)},
                    data={"csrf": kit.csrf})  # fmt: skip
    assert r.status_code == 403 and "CSRF" in r.text
    assert watch.read == 0
    # the page's own form carries the token in its address: checked first, then the body
    page = kit.client.get("/").text
    action = re.search(r'action="(/upload\?csrf=[^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = client.post(action.replace("&amp;", "&"), data={"batch": "url-token"},
                    files={"sheet": ("orders.csv", (SAMPLES / "orders.csv").read_bytes())},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and watch.read > 0


def test_an_ordinary_form_over_the_limit_is_a_form_too_large(kit: Kit) -> None:
    kit.sign_in()
    r = kit.client.post("/language", data={"csrf": kit.csrf, "back": "/" + "x" * 70_000})
    assert r.status_code == 413
    assert "the form is too large" in r.text and "file" not in r.text.split("refusal")[1][:80]
    r = kit.client.post("/language", data={"csrf": kit.csrf}, files={"x": ("a.csv", b"1")})
    assert r.status_code == 400 and "Too many files" not in r.text
    assert "the form could not be read" in r.text


def test_a_server_error_is_a_sentence_with_the_security_headers(kit: Kit) -> None:
    """Starlette answers an unforeseen error outside every middleware it was given: the shell
    around it adds the headers, and the page says what happened and where the details are."""

    async def broken(request: Request) -> Response:
        raise RuntimeError("an unforeseen bug")

    kit.app.router.routes.insert(0, Route("/broken", broken))
    kit.sign_in()
    client = TestClient(kit.app, raise_server_exceptions=False, cookies=kit.client.cookies)
    r = client.get("/broken")
    assert r.status_code == 500
    assert r.headers["content-security-policy"] == CSP and r.headers["x-frame-options"] == "DENY"
    assert "something unexpected went wrong" in r.text and "RuntimeError" in r.text
    reports = list(kit.app.state.config.settings.state_dir.glob("**/crash-*"))
    assert reports and reports[0].name in r.text
    assert str(kit.app.state.config.settings.state_dir) not in r.text


def test_the_favicon_is_served(kit: Kit) -> None:
    r = TestClient(kit.app).get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    kit.sign_in()
    assert 'rel="icon" href="/static/favicon.svg"' in kit.client.get("/").text
    assert kit.client.get("/static/favicon.svg").status_code == 200


# --- a refused key -------------------------------------------------------------------------------


def test_a_refused_key_is_said_at_once_and_not_tried_on_every_page(tmp_path: Path) -> None:
    """The provider blocks an address after 5 refused keys: a console that asked on every page
    would lock the team out within five clicks."""
    settings, world = _settings(tmp_path, key="a-key-the-provider-does-not-know")
    app = console_app(settings)
    with TestClient(app) as client:
        kit = Kit(app, client, world)
        kit.sign_in()
        home = client.get("/").text
        assert "API key refused" in home and "environment unknown" not in home
        assert "refused this console&#39;s API key" in home
        upload = kit.upload(SAMPLES / "orders.csv", "refused")
        for path in (f"/sheets/{upload}", f"/sheets/{upload}/run", "/template.xlsx"):
            r = client.get(path)
            assert r.status_code == 400 and "restart the console" in r.text, path
        r = client.post(f"/sheets/{upload}/plan", data={"csrf": kit.csrf})
        assert r.status_code == 400
        assert client.get("/template.csv").status_code == 200  # needs no API
    assert sum(len(f) for f in world.failures.values()) == 1  # asked once, at start
