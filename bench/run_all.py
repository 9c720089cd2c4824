"""Benchmarks: speed and memory of validate, of a run against the emulator, of the workbook.

Run with `make bench`. Each measured step runs as its own process, so its peak memory is its own.
Prints one line per figure with its target; sheets and journals go to bench/out/ (not committed).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

from sheets import rows, write_csv, write_xlsx  # noqa: E402

KEY = "emulator-sandbox-key"


#: CPU seconds (user + system) of the last command `measure` ran
LAST_CPU = [0.0]


def measure(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """(seconds, peak MB, exit code, output) of one command in its own process; its CPU
    seconds are left in LAST_CPU."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    return seconds, usage.ru_maxrss / 1024, proc.returncode, output


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bulk_topup", *args]


def line(what: str, value: str, target: str, ok: bool) -> None:
    print(f"{what:<52} {value:>16}   target {target:<14} {'ok' if ok else 'MISSED'}")


def bench_validate() -> None:
    data = rows(100_000)
    csv_path = write_csv(OUT / "orders-100k.csv", data)
    xlsx_path = write_xlsx(OUT / "orders-100k.xlsx", data)
    del data
    state = str(OUT / "state")
    for path, limit in ((csv_path, 5.0), (xlsx_path, 15.0)):
        # Warm the catalog cache once, so the figure is the sheet's, not the API's.
        seconds, mb, code, out = measure(
            cli("validate", str(path), "--emulator", "--state-dir", state)
        )
        assert code == 0, out
        kind = path.suffix[1:]
        line(
            f"validate 100,000 rows ({kind}): time",
            f"{seconds:.2f} s",
            f"< {limit:g} s",
            seconds < limit,
        )
        line(f"validate 100,000 rows ({kind}): peak memory", f"{mb:.0f} MB", "< 400 MB", mb < 400)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def served(speed: float, limit: float | None = None) -> Iterator[str]:
    """The emulator in a process of its own, over HTTP; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["emulator", "--port", str(port), "--speed", str(speed), "--balance", "1000000000"]
    if limit:
        args += ["--rate-limit", str(limit)]
    emulator = subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                get(f"{url}/v3/ping")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        emulator.terminate()
        emulator.wait(10)


def run_env(url: str, state: Path, speed: float | None) -> dict[str, str]:
    env = {**os.environ, "ONECLICK_API_KEY": KEY, "ONECLICK_API_URL": url,
           "BULK_TOPUP_STATE_DIR": str(state)}  # fmt: skip
    if speed:
        env["BULK_TOPUP_CLOCK_SPEED"] = str(speed)  # the runner's waits compressed like the clock
    return env


def run_batch(
    url: str, sheet: Path, state: Path, *args: str, speed: float | None = None, batch: str = "bench"
) -> tuple[float, float, int, str]:
    shutil.rmtree(state, ignore_errors=True)  # a fresh history: the repeat guard stays out of it
    return measure(
        cli("run", str(sheet), "--batch", batch, "--yes",
            "--out", str(OUT / "run-results.xlsx"), *args),
        run_env(url, state, speed),
    )  # fmt: skip


def bench_run(n: int, rate: float, limit: float, speed: float = 20.0) -> None:
    with served(speed, limit) as url:
        sheet = write_csv(OUT / f"mobile-{n}.csv", rows(n, seed=2, internet_share=0.0))
        state = OUT / f"state-run-{n}-{rate:g}"
        seconds, mb, code, out = run_batch(
            url, sheet, state, "--rate", str(rate), "--concurrency", "16", speed=speed
        )
        assert code == 0, out
        stats = get(f"{url}/__emulator/stats")
        calls = get(f"{url}/__emulator/calls")["calls"]
        posts = [t for t, name in calls if name.startswith("POST")]
        window = max(posts) - min(posts)
        post_rate = (len(posts) - 1) / window if window else float("inf")
        in_window = [t for t, _ in calls if min(posts) <= t <= max(posts)]
        call_rate = (len(in_window) - 1) / window if window else float("inf")
        per_order = stats["total_calls"] / n
        label = f"run {n:,} rows, --rate {rate:g}, limit {limit:g}/s"
        print(
            f"{label}: wall {seconds:.1f} s (clock x{speed:g}), peak {mb:.0f} MB, "
            f"{stats['total_calls']} API calls, {stats['rate_limited']} x 429"
        )
        line(
            "  calls per second while sending",
            f"{call_rate:.1f}/s",
            f">= {0.9 * limit:g}/s",
            call_rate >= 0.9 * limit,
        )
        line(
            "  share of the limit used",
            f"{call_rate / limit:.0%}",
            ">= 90%",
            call_rate >= 0.9 * limit,
        )
        line("  POSTs per second", f"{post_rate:.1f}/s", "-", True)
        line("  API calls per order", f"{per_order:.3f}", "<= 1.3", per_order <= 1.3)
        if rate <= limit:
            line("  429 answers", str(stats["rate_limited"]), "0", stats["rate_limited"] == 0)
        else:
            line(
                "  429 answers (rate above the limit: adapts)",
                str(stats["rate_limited"]),
                "-",
                True,
            )
        assert stats["max_orders_per_ref"] == 1 and stats["orders"] == n


def bench_real_clock(n: int = 2000, limit: float = 50.0) -> None:
    """The provider's real clock, nothing compressed: every POST at the limit, then the last
    order's 20 s settle and one look. The floor is n / limit + 20 s."""
    with served(1.0, limit) as url:
        sheet = write_csv(OUT / f"mobile-{n}.csv", rows(n, seed=2, internet_share=0.0))
        seconds, mb, code, out = run_batch(
            url, sheet, OUT / "state-real-clock", "--rate", str(limit), "--concurrency", "16"
        )
        assert code == 0, out
        stats = get(f"{url}/__emulator/stats")
    floor = n / limit + 20.0
    per_order = stats["total_calls"] / n
    pages = sum(v for k, v in stats["calls"].items() if k.endswith("/list"))
    singles = sum(v for k, v in stats["calls"].items() if "check-" in k)
    print(f"run {n:,} rows on the provider's real clock (limit {limit:g}/s, --rate {limit:g}):")
    line("  wall against the floor", f"{seconds:.1f} s / {floor:.0f} s", "<= 110 %",
         seconds <= 1.1 * floor)  # fmt: skip
    line("  API calls per order", f"{per_order:.3f}", "<= 1.05", per_order <= 1.05)
    line("  list pages per 100 orders", f"{100 * pages / n:.2f}", "about 1", True)
    line("  single checks", str(singles), "-", True)
    line("  429 answers", str(stats["rate_limited"]), "0", stats["rate_limited"] == 0)
    line("  peak memory", f"{mb:.0f} MB", "-", True)
    assert stats["max_orders_per_ref"] == 1 and stats["orders"] == n


def bench_scale(sizes: tuple[int, ...] = (1000, 100_000), speed: float = 50.0) -> None:
    """The runner's time and memory per row, from 1,000 to 100,000 rows, against a fast
    emulator (its clock and the runner's waits compressed alike; no rate limit)."""
    for n in sizes:
        with served(speed) as url:
            sheet = write_csv(OUT / f"mobile-{n}.csv", rows(n, seed=3, internet_share=0.0))
            seconds, mb, code, out = run_batch(
                url, sheet, OUT / f"state-scale-{n}", "--rate", "5000", "--concurrency", "16",
                speed=speed,
            )  # fmt: skip
            assert code == 0, out
            stats = get(f"{url}/__emulator/stats")
        cpu_ms = 1000 * LAST_CPU[0] / n
        per_order = stats["total_calls"] / n
        print(f"run {n:,} rows against a fast emulator: wall {seconds:.1f} s")
        line("  CPU per order", f"{cpu_ms:.2f} ms", "< 5 ms", cpu_ms < 5)
        line("  CPU seconds per 1,000 orders", f"{cpu_ms:.2f} s", "-", True)
        line("  peak memory", f"{mb:.0f} MB", "< 300 MB", mb < 300)
        line("  API calls per order", f"{per_order:.3f}", "<= 1.05", per_order <= 1.05)
        assert stats["max_orders_per_ref"] == 1 and stats["orders"] == n


def bench_resume(n: int = 10_000, speed: float = 50.0) -> None:
    """`resume` of a finished batch: it reads the journal, checks the key, sends nothing."""
    state = OUT / "state-resume"
    with served(speed) as url:
        sheet = write_csv(OUT / f"mobile-{n}.csv", rows(n, seed=4, internet_share=0.0))
        args = ("--rate", "5000", "--concurrency", "16")
        _, _, code, out = run_batch(url, sheet, state, *args, speed=speed, batch="finished")
        assert code == 0, out
        posts = get(f"{url}/__emulator/stats")["calls"].get("POST /v3/mobile/send", 0)
        seconds, _, code, out = measure(
            cli("resume", "--batch", "finished", "--yes"), run_env(url, state, speed)
        )
        assert code == 0, out
        after = get(f"{url}/__emulator/stats")["calls"].get("POST /v3/mobile/send", 0)
    line(f"resume of a finished {n:,}-row batch: time", f"{seconds:.2f} s", "< 2 s", seconds < 2)
    line(f"resume of a finished {n:,}-row batch: POSTs", str(after - posts), "0", after == posts)


def setup_report(state: Path, sheet: Path) -> None:
    """A journal of 100,000 settled rows (run in a process of its own, see bench_report)."""
    from bulk_topup.batchfile import open_batch
    from bulk_topup.sheet import read_sheet
    from bulk_topup.validation import build_orders

    orders = build_orders(read_sheet(sheet), "report-100k", None).orders
    with open_batch(state, "report-100k", now=lambda: "2026-11-27T08:00:00.000Z") as j:
        j.sync_orders(orders)
        with j.transaction() as db:  # set the scene: every row settled, as after a real run
            db.execute(
                "UPDATE rows SET state = 'FULFILLED', provider_status = 'FULFILLED', "
                "order_id = printf('%024x', idx), debited = cost, "
                "sent_at = '2026-11-27T08:00:01.000Z', settled_at = '2026-11-27T08:00:30.000Z'"
            )


def bench_report() -> None:
    state = OUT / "state-report"
    shutil.rmtree(state, ignore_errors=True)  # a fresh journal: exactly 100,000 rows
    # Built in another process: a child forked from a big parent reports the parent's memory.
    subprocess.run(
        [sys.executable, __file__, "--setup-report", str(state), str(OUT / "orders-100k.csv")],
        check=True,
    )
    seconds, mb, code, out = measure(
        cli(
            "report",
            "--batch",
            "report-100k",
            "--state-dir",
            str(state),
            "--out",
            str(OUT / "report-100k.xlsx"),
        )
    )
    assert code == 0, out
    line("results workbook for 100,000 rows: time", f"{seconds:.2f} s", "< 20 s", seconds < 20)
    line("results workbook for 100,000 rows: peak memory", f"{mb:.0f} MB", "< 500 MB", mb < 500)


BENCHES = {
    "validate": bench_validate,
    "run": lambda: (bench_run(2000, rate=50, limit=50), bench_run(600, rate=80, limit=50)),
    "real-clock": bench_real_clock,
    "scale": bench_scale,
    "resume": bench_resume,
    "report": lambda: bench_report(),
}


def main(names: list[str]) -> None:
    """Every benchmark, or those named (`python bench/run_all.py real-clock scale`)."""
    unknown = [name for name in names if name not in BENCHES]
    if unknown:
        sys.exit(f"unknown benchmark {', '.join(unknown)}; the names are: {', '.join(BENCHES)}")
    OUT.mkdir(exist_ok=True)
    print(f"bulk_topup benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if "report" in (names or BENCHES) and not (OUT / "orders-100k.csv").exists():
        write_csv(OUT / "orders-100k.csv", rows(100_000))
    for name in names or list(BENCHES):
        BENCHES[name]()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--setup-report"]:
        setup_report(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main(sys.argv[1:])
