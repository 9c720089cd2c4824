"""No traceback, no leak: failures nobody foresaw end in one sentence, a crash report without
secrets, a consistent journal, the results and the command that continues the batch."""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner

from bulk_topup.cli import main
from bulk_topup.clock import SystemClock
from bulk_topup.emulator import ApiKey, World, create_app

from .conftest import free_port

MARKER = "K3Y-MARKER-7f3a9c"  # an API key whose every byte must stay out of every output
SAMPLES = Path(__file__).parent.parent / "samples"


@pytest.fixture
def provider() -> Iterator[tuple[str, World]]:
    """The emulator over a socket, accepting only the marked key, its clock 50 times faster."""
    world = World(clock=SystemClock(50), keys={MARKER: ApiKey(MARKER)})
    world.faults.update({"ref_dedup": False})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(world), host="127.0.0.1", port=port, log_level="critical")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", world
    finally:
        server.should_exit = True
        thread.join(10)


def bulk(
    *args: str, env: dict[str, str], limit: int | None = None, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`bulk-topup ARGS` in a process of its own (optionally with a file size limit, or with
    `code` run first inside it, to break something on purpose)."""

    def limited() -> None:
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    prelude = (code or "") + "\nimport sys\nfrom bulk_topup.cli import entry\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + "sys.argv[0] = 'bulk-topup'\nentry()", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limited,
    )


def no_marker_anywhere(*texts: str, folders: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert MARKER not in text
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert MARKER.encode() not in path.read_bytes(), path


# --- the key -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (f"{MARKER}\nold: OTHER-{MARKER}\n", "holds more than one line"),
        (f"{MARKER}é", "holds characters that cannot be part of an API key"),
        (f"{MARKER} {MARKER}", "holds characters that cannot be part of an API key"),
        ("\n \n", "is empty"),
    ],
)
def test_a_malformed_key_is_a_sentence_that_does_not_echo_it(
    tmp_path: Path, content: str, says: str
) -> None:
    key = tmp_path / "key"
    key.write_text(content, encoding="utf-8")
    key.chmod(0o600)
    for command in (["validate", str(SAMPLES / "orders.csv")],
                    ["run", str(SAMPLES / "orders.csv"), "--batch", "b", "--yes"]):  # fmt: skip
        result = CliRunner().invoke(
            main, [*command, "--api-key-file", str(key), "--state-dir", str(tmp_path / "s")]
        )
        assert result.exit_code == 2, result.output
        assert says in result.output and "Traceback" not in result.output
        no_marker_anywhere(result.output)


def test_a_malformed_key_in_the_environment_too(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["validate", str(SAMPLES / "orders.csv"), "--state-dir", str(tmp_path)],
        env={"ONECLICK_API_KEY": f"{MARKER}\r\nX"},
    )  # fmt: skip
    assert result.exit_code == 2 and "ONECLICK_API_KEY holds more than one line" in result.output
    no_marker_anywhere(result.output)


def test_the_key_appears_in_no_byte_of_any_output_file_or_crash(
    tmp_path: Path, provider: tuple[str, World]
) -> None:
    url, _ = provider
    state = tmp_path / "state"
    env = {"ONECLICK_API_URL": url, "ONECLICK_API_KEY": MARKER, "BULK_TOPUP_STATE_DIR": str(state),
           "BULK_TOPUP_CLOCK_SPEED": "50"}  # fmt: skip
    sheet = tmp_path / "orders.csv"
    sheet.write_bytes((SAMPLES / "orders.csv").read_bytes())
    outputs = []
    for args in (
        ["validate", str(sheet)],
        ["catalog"],
        ["template", str(tmp_path / "t.xlsx")],
        ["run", str(sheet), "--batch", "m", "--yes"],
        ["status", "--batch", "m"],
        ["report", "--batch", "m", "--format", "json", "--out", str(tmp_path / "r.json")],
        ["reconcile", "--batch", "m"],
        ["resume", "--batch", "m", "--yes"],
        ["batches"],
    ):
        done = bulk(*args, env=env)
        assert "Traceback" not in done.stderr, done.stderr
        outputs += [done.stdout, done.stderr]
    # A wrong key: refused, and the refused key is not echoed either.
    done = bulk("run", str(sheet), "--batch", "w", "--yes",
                env={**env, "ONECLICK_API_KEY": MARKER + "-wrong"})  # fmt: skip
    assert done.returncode == 6 and "INVALID_ACCESS_TOKEN" in done.stderr
    outputs += [done.stdout, done.stderr]
    # A crash nobody foresaw, with the key in the exception's own text.
    crash = bulk(
        "run", str(sheet), "--batch", "c", "--yes", "--allow-repeat", env=env,
        code="import bulk_topup.service as s\n"
        "def boom(*a, **k):\n    raise RuntimeError('header value ' + __import__('os')"
        ".environ['ONECLICK_API_KEY'])\n"
        "s.write_batch_results = boom\n",
    )  # fmt: skip
    assert crash.returncode == 5, crash.stderr
    assert "an unexpected error stopped bulk-topup (RuntimeError)" in crash.stderr
    assert "Traceback" not in crash.stderr
    report = Path(crash.stderr.split("the details are in ")[1].split(" (no key in it)")[0])
    assert report.is_file() and report.parent == state / "crash"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert "RuntimeError: header value [secret]" in report.read_text()
    assert "continue with: bulk-topup resume --batch c" in crash.stderr
    outputs += [crash.stdout, crash.stderr]
    no_marker_anywhere(*outputs, folders=(state, tmp_path))


# --- the disk, the state dir, the output ---------------------------------------------------------


@pytest.mark.socket
def test_a_full_disk_mid_run_is_a_sentence_and_resume_finishes(
    tmp_path: Path, provider: tuple[str, World]
) -> None:
    url, world = provider
    state = tmp_path / "state"
    env = {"ONECLICK_API_URL": url, "ONECLICK_API_KEY": MARKER, "BULK_TOPUP_STATE_DIR": str(state),
           "BULK_TOPUP_CLOCK_SPEED": "50"}  # fmt: skip
    sheet = tmp_path / "staff.csv"
    lines = ["name,phone,plan_code,amount"]
    lines += [f"E{i},06612{i:05d},PREPAID_MOBILIS,{100 + i}" for i in range(400)]
    sheet.write_text("\n".join(lines) + "\n")
    args = ["run", str(sheet), "--batch", "full", "--yes", "--rate", "400", "--concurrency", "16"]
    # Files may not grow past 2 MB: the journal (its WAL) reaches it part way through the batch.
    first = bulk(*args, env=env, limit=2_000_000)
    assert first.returncode == 5, first.stderr
    assert "error: the disk is full (or failing)" in first.stderr
    assert "Traceback" not in first.stderr
    assert "continue with: bulk-topup resume --batch full" in first.stderr
    sent_before = len(world.orders)
    assert 0 < sent_before < 400
    second = bulk("resume", "--batch", "full", "--yes", "--rate", "400", env=env)
    assert second.returncode == 0, second.stderr
    world.settle()
    assert world.stats()["max_orders_per_ref"] == 1 and len(world.orders) == 400


def test_a_state_dir_that_cannot_be_created_is_a_sentence(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(
        main, ["run", str(SAMPLES / "orders.csv"), "--batch", "b", "--yes", "--emulator",
               "--state-dir", str(blocker / "state")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"the state dir {blocker / 'state'} cannot be created or read" in result.output


def test_a_world_writable_state_dir_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    result = CliRunner().invoke(
        main, ["run", str(SAMPLES / "orders.csv"), "--batch", "b", "--yes", "--emulator"],
        env={"BULK_TOPUP_STATE_DIR": str(shared)},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "can be written by every user of this machine" in result.output
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # never chmod-ed behind the user's back


def test_an_existing_state_dir_keeps_its_mode_and_a_new_one_is_private(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    mine.chmod(0o755)
    CliRunner().invoke(main, ["validate", str(SAMPLES / "orders.csv"), "--emulator",
                              "--state-dir", str(mine)])  # fmt: skip
    assert stat.S_IMODE(mine.stat().st_mode) == 0o755
    fresh = tmp_path / "fresh" / "state"
    CliRunner().invoke(main, ["validate", str(SAMPLES / "orders.csv"), "--emulator",
                              "--state-dir", str(fresh)])  # fmt: skip
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert stat.S_IMODE((fresh / "cache").stat().st_mode) == 0o700


def test_a_closed_output_keeps_the_exit_code_and_says_so(tmp_path: Path) -> None:
    sheet = tmp_path / "bad.csv"  # 3,000 errors: far more output than a pipe holds
    sheet.write_text("phone,plan_code,amount\n" + "123,PREPAID_MOBILIS,500\n" * 3000)
    command = (
        f"{shlex.quote(sys.executable)} -m bulk_topup validate {shlex.quote(str(sheet))} "
        f"--emulator --state-dir {tmp_path / 'state'} | head -1;"
        ' echo "code=${PIPESTATUS[0]}"'
    )
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "code=3"  # invalid rows: still 3
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert "the output was closed before it was all written" in done.stderr


def test_the_printed_resume_command_is_shell_quoted(tmp_path: Path) -> None:
    sheet = tmp_path / "s.csv"
    sheet.write_text("phone,plan_code,amount\n0600000003,PREPAID_DJEZZY,500\n")
    key = "pay; touch pwned #"
    result = CliRunner().invoke(
        main, ["run", str(sheet), "--batch", key, "--yes", "--emulator", "--emulator-speed",
               "200", "--state-dir", str(tmp_path / "st")],
    )  # fmt: skip
    assert result.exit_code == 5, result.output
    line = next(x for x in result.output.splitlines() if "bulk-topup resume" in x).strip()
    assert shlex.split(line)[:4] == ["bulk-topup", "resume", "--batch", key]


# --- after a hostile review --------------------------------------------------------------------


def test_a_crash_after_sending_tells_the_notification_address(
    tmp_path: Path, provider: tuple[str, World]
) -> None:
    """A run that breaks after it paid is the run that most needs a person: the notification
    goes out (without the address's password in the crash report)."""
    received: list[bytes] = []
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url, _ = provider
    state = tmp_path / "state"
    env = {"ONECLICK_API_URL": url, "ONECLICK_API_KEY": MARKER, "BULK_TOPUP_STATE_DIR": str(state),
           "BULK_TOPUP_CLOCK_SPEED": "50"}  # fmt: skip
    sheet = tmp_path / "s.csv"
    sheet.write_text("phone,plan_code,amount\n0661000601,PREPAID_MOBILIS,500\n")
    notify = f"json://user:hooksecret@127.0.0.1:{server.server_address[1]}/hook"
    try:
        crash = bulk(
            "run", str(sheet), "--batch", "c", "--yes", "--notify", notify, env=env,
            code="import bulk_topup.service as s\n"
            "def boom(*a, **k):\n    raise RuntimeError('the results could not be made')\n"
            "s.write_batch_results = boom\n",
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert crash.returncode == 5, crash.stderr
    assert len(received) == 1 and b"an unexpected error stopped bulk-topup" in received[0]
    report = Path(crash.stderr.split("the details are in ")[1].split(" (no key in it)")[0])
    assert "hooksecret" not in report.read_text() and "json://[secret]@127.0.0.1" in (
        report.read_text()
    )


def test_validate_without_the_catalog_is_not_a_clean_validate(tmp_path: Path) -> None:
    """The API unreachable and no cache: the plan codes were not checked, so validate does not
    say 0 (5: try again when the API answers)."""
    from .conftest import free_port

    sheet = tmp_path / "s.csv"
    sheet.write_text("phone,plan_code,amount\n0661000701,PREPAID_MOBILIS,500\n")
    result = CliRunner().invoke(
        main, ["validate", str(sheet), "--state-dir", str(tmp_path / "st")],
        env={"ONECLICK_API_URL": f"http://127.0.0.1:{free_port()}", "ONECLICK_API_KEY": "key-0"},
    )  # fmt: skip
    assert result.exit_code == 5, result.output
    assert "were NOT checked" in result.output


def test_sigterm_at_the_confirmation_is_a_refusal_not_a_kill(tmp_path: Path) -> None:
    """SIGTERM while the prompt waits: nothing was sent, so it ends as a refusal (exit 6) with a
    sentence, not as a killed process (143)."""
    import pty

    sheet = tmp_path / "s.csv"
    sheet.write_text("phone,plan_code,amount\n0661000801,PREPAID_MOBILIS,500\n")
    pid, fd = pty.fork()
    if pid == 0:  # the child: bulk-topup on a terminal, waiting at its prompt
        os.execv(sys.executable, [sys.executable, "-m", "bulk_topup", "run", str(sheet),
                 "--batch", "t", "--emulator", "--state-dir", str(tmp_path / "st")])  # fmt: skip
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while b"Send these" not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
        os.kill(pid, signal.SIGTERM)
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 6, seen.decode(errors="replace")
    assert b"not confirmed; nothing was sent" in seen


def test_an_output_on_a_full_device_keeps_the_exit_code_and_says_so(tmp_path: Path) -> None:
    """`validate x > /dev/full`: the output cannot be written, the command still says what it
    found by its exit code, with one line and no traceback."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "bulk_topup", "validate", str(SAMPLES / "messy.csv"),
             "--emulator", "--state-dir", str(tmp_path / "st")],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "the output could not all be written (no space left where it goes)" in done.stderr
