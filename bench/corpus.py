"""`bulk-topup validate` over a folder of spreadsheets nobody here wrote, each file bounded.

    python bench/corpus.py PATH [PATH...] [--timeout 30] [--max-mb 1024] [--jobs 2] [--json OUT]

Each file is validated in its own process (with `--emulator`, so no API is needed), under an
address-space cap so that a runaway reader cannot take the machine down, with a wall-clock
timeout. Its peak memory is read from the kernel (`wait4`'s rusage). Every file ends in one of:

- read: the sheet was read and validated (exit 0 or 3);
- refused: exit 2 with one sentence starting `error: `, no traceback, no library class name;
- failure: anything else (a traceback, a signal, a timeout, over the memory limit, exit 1, a
  refusal that names a library class instead of a reason).

Prints the counts, then every failure, then the slowest and the hungriest files. Exits 1 when
any file failed. The corpora themselves are never part of the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

SPREADSHEET = {
    ".xls", ".xlsx", ".xlsm", ".xlsb", ".xltx", ".xltm", ".xlam", ".xla", ".ods", ".fods",
    ".ots", ".csv", ".tsv", ".txt", ".prn", ".slk", ".sylk", ".dif", ".xml", ".numbers",
    ".biff2", ".biff3", ".biff4", ".biff5", ".biff8", ".wks", ".wk1", ".wk2", ".wk3", ".wk4",
    ".wq1", ".wq2", ".wb1", ".wb2", ".wb3", ".qpw", ".123", ".xlr", ".eth", ".htm", ".html",
}  # fmt: skip
#: `book.xls.0.csv`, `book.xlsb.json`: outputs a corpus derived from another of its files
DERIVED = re.compile(r"\.(xls[xmb]?|ods|fods|xml|numbers|slk|biff\d|wk\d|wb\d|qpw)(\.\d+)?"
                     r"\.(csv|json|rawjson|txt|sheetnames)$", re.IGNORECASE)  # fmt: skip
NOT_ORDERS = re.compile(r"has no header row naming|is empty")
LIBRARY_NAME = re.compile(r"\((\w*(Error|Exception|Panic)\w*)\)|PanicException|pyo3|calamine")


@dataclass
class Outcome:
    path: str
    verdict: str  # read | refused | failure
    reason: str
    code: int | None
    seconds: float
    peak_mb: float
    said: str


def spreadsheets(roots: list[Path]) -> list[Path]:
    found = []
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            if p.suffix.lower() in SPREADSHEET and not DERIVED.search(p.name):
                found.append(p)
    return found


def _limit(address_space_mb: int) -> None:
    cap = address_space_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def validate_one(path: Path, timeout: float, max_mb: float, cap_mb: int, state: str) -> Outcome:
    args = [sys.executable, "-m", "bulk_topup", "validate", str(path), "--emulator",
            "--state-dir", state]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: _limit(cap_mb),
        start_new_session=True,
    )
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        assert proc.stdout is not None
        output = proc.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - start
    peak = usage.ru_maxrss / 1024
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    said = output.strip().splitlines()[0][:300] if output.strip() else ""
    verdict, reason = "failure", ""
    if timed_out.is_set():
        reason = f"timed out after {timeout:g} s"
    elif code < 0:
        reason = f"killed by signal {signal.Signals(-code).name}"
    elif peak > max_mb:
        reason = f"peak memory {peak:.0f} MB"
    elif "Traceback" in output:
        reason = "traceback: " + output.strip().splitlines()[-1][:200]
    elif code in (0, 3):
        verdict = "read"
    elif code == 2 and output.startswith("error: ") and not LIBRARY_NAME.search(output):
        verdict, reason = "refused", said
    else:
        reason = f"exit {code}: {said}"
    return Outcome(str(path), verdict, reason, code, round(seconds, 2), round(peak, 1), said)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per file")
    parser.add_argument("--max-mb", type=float, default=1024.0, help="peak memory per file")
    parser.add_argument(
        "--cap-mb", type=int, default=4096, help="address-space cap per process (a safety net)"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write every outcome there")
    args = parser.parse_args()
    files = spreadsheets(args.paths)
    print(f"{len(files)} spreadsheet files", flush=True)
    with tempfile.TemporaryDirectory() as state, ThreadPoolExecutor(args.jobs) as pool:
        outcomes = list(
            pool.map(
                lambda p: validate_one(p, args.timeout, args.max_mb, args.cap_mb, state), files
            )
        )
    counts = {v: sum(o.verdict == v for o in outcomes) for v in ("read", "refused", "failure")}
    print(f"files {len(outcomes)}: read {counts['read']}, refused with a sentence "
          f"{counts['refused']}, failures {counts['failure']}")  # fmt: skip
    opened = sum(o.verdict == "refused" and bool(NOT_ORDERS.search(o.said)) for o in outcomes)
    print(
        f"  of the refusals, {opened} were read whole and found not to be order sheets "
        f"(no order header, or empty); {counts['refused'] - opened} could not be read"
    )
    for o in outcomes:
        if o.verdict == "failure":
            print(f"FAILURE {o.path}: {o.reason}")
    print("slowest:")
    for o in sorted(outcomes, key=lambda o: -o.seconds)[:5]:
        print(f"  {o.seconds:6.2f} s  {o.path}")
    print("most memory:")
    for o in sorted(outcomes, key=lambda o: -o.peak_mb)[:5]:
        print(f"  {o.peak_mb:6.0f} MB  {o.path}")
    reasons: dict[str, int] = {}
    for o in outcomes:
        if o.verdict == "refused":
            key = o.said.replace(o.path, "FILE")[:110]
            reasons[key] = reasons.get(key, 0) + 1
    print("refusals, by sentence:")
    for key, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:40]:
        print(f"  {n:5}  {key}")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return 1 if counts["failure"] else 0


if __name__ == "__main__":
    sys.exit(main())
