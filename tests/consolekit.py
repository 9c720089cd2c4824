"""Helpers to drive the console: in-process through Starlette's TestClient (the emulator reached
through its ASGI transport, in virtual time), or served by uvicorn on a thread for a browser."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import uvicorn
from starlette.testclient import TestClient

from bulk_topup.console import ConsoleConfig, create_console

from .conftest import free_port

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FIGURES = re.compile(r'name="(rows|face_value|cost|environment)" value="([^"]*)"')


@dataclass
class Kit:
    """A console app, a client signed in to it, and the emulator behind it."""

    app: Any
    client: TestClient
    world: Any
    csrf: str = ""

    @property
    def runs(self) -> Any:
        return self.app.state.runs

    def sign_in(self) -> str:
        token = self.app.state.sessions.new_token()
        r = self.client.get(f"/login?token={token}", follow_redirects=False)
        assert r.status_code == 303, r.text
        self.csrf = CSRF.search(self.client.get("/").text).group(1)  # type: ignore[union-attr]
        return self.csrf

    def upload(self, path: Path, batch: str, **fields: str) -> str:
        with path.open("rb") as f:
            r = self.client.post(
                "/upload", data={"csrf": self.csrf, "batch": batch, **fields},
                files={"sheet": (path.name, f, "application/octet-stream")},
                follow_redirects=False,
            )  # fmt: skip
        assert r.status_code == 303, r.text
        return str(r.headers["location"]).rsplit("/", 1)[1]

    def figures(self, upload: str) -> dict[str, str]:
        page = self.client.get(f"/sheets/{upload}/run")
        assert page.status_code == 200, page.text
        return dict(FIGURES.findall(page.text))

    def start(self, upload: str, figures: dict[str, str] | None = None) -> Any:
        figures = figures if figures is not None else self.figures(upload)
        return self.client.post(
            f"/sheets/{upload}/run", data={"csrf": self.csrf, **figures}, follow_redirects=False
        )

    def wait(self, batch: str, timeout: float = 60) -> Any:
        """The console run of `batch`, once it ended."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.runs.get(batch)
            if run is not None and not run.running:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"the console run of {batch} did not end")
            time.sleep(0.02)


def console_app(settings: Any, **config: Any) -> Any:
    return create_console(ConsoleConfig(settings, shutdown_grace=5, **config))


class Cells(HTMLParser):
    """The Check page's grid: (sheet row, header) -> (class, text) of every cell."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[int, str], tuple[str, str]] = {}
        self._row: int | None = None
        self._cell: tuple[int, str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-row"):
            self._row = int(str(a["data-row"]))
        if tag == "td" and self._row is not None and a.get("data-col") is not None:
            self._cell = (self._row, str(a["data-col"]), str(a.get("class") or ""))
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            row, col, cls = self._cell
            self.cells[(row, col)] = (cls, " ".join(" ".join(self._text).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._text.append(data)


def cells_of(html: str) -> dict[tuple[int, str], tuple[str, str]]:
    parser = Cells()
    parser.feed(html)
    return parser.cells


@dataclass
class Served:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def serve(app: Any) -> Served:
    """`app` served by uvicorn on a thread, on a free port of 127.0.0.1."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="critical", timeout_graceful_shutdown=2
        )  # fmt: skip
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return Served(f"http://127.0.0.1:{port}", server, thread)
