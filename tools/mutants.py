"""Re-run the regressions the tests must catch: each mutant is applied to a copy of the code and
the tests named for it must fail. Run with `make mutants` (about a minute).

A mutant that survives (its tests still pass) is printed as SURVIVED and the command exits 1.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (what the regression is, file, text replaced, replacement, tests that must then fail)
MUTANTS = [
    ("the throttle allows bursts (AsyncLimiter(rate, 1))", "bulk_topup/throttle.py",
     "AsyncLimiter(1, 1 / rate)", "AsyncLimiter(rate, 1)", "tests/test_throttle.py"),
    ("--max-total compared with the cost", "bulk_topup/runner.py",
     "and face > max_total", "and cost > max_total",
     "tests/test_runner.py::test_max_total_counts_face_value_not_cost"),
    ("a retry budget that never runs out", "bulk_topup/guard.py",
     "if self.retries > self.budget:", "if False:",
     "tests/test_runner.py::test_the_retry_budget_runs_out"),
    ("the CSV guard only for '='", "bulk_topup/report/flat.py",
     "text.startswith(FORMULA_STARTS)", 'text.startswith("=")', "tests/test_report_options.py"),
    ("a new state dir not 0700", "bulk_topup/statedir.py",
     "path.mkdir(mode=0o700, parents=True)", "path.mkdir(mode=0o755, parents=True)",
     "tests/test_failures.py::test_an_existing_state_dir_keeps_its_mode_and_a_new_one_is_private"),
    ("7.780373405E+08 silently truncated", "bulk_topup/normalise.py",
     "if d != d.to_integral_value() or d < 0:", "if d < 0:",
     "tests/test_orders.py::test_scientific_notation_is_never_truncated"),
    ("an ADSL number of 8 digits or fewer padded", "bulk_topup/normalise.py",
     "if len(digits) == 8:", "if len(digits) <= 8:\n            digits = digits.zfill(8)",
     "tests/test_orders.py::test_adsl_numbers_shorter_than_8_digits_are_not_padded"),
    ("internet rows recording no debit", "bulk_topup/settle.py",
     "debited = row.cost  #", "debited = None  #",
     "tests/test_runner.py::test_an_internet_card_records_what_it_cost"),
    ("refs ignoring the amount of mobile rows", "bulk_topup/identity.py",
     'amount = order.amount if order.kind != "giftcard" else order.quantity',
     'amount = None if order.kind == "mobile" else order.amount if order.kind != "giftcard" '
     "else order.quantity",
     "tests/test_orders.py::test_the_amount_is_part_of_every_ref"),
    ("gift orders adopted however late they were born (window to now)", "bulk_topup/reconcile.py",
     "return sent - slack, done + slack", "return sent - slack, client.provider_now() + slack",
     "tests/test_gift_never_twice.py::test_an_unclaimed_order_born_after_the_post_is_never_adopted"),
    ("no lock between identical gift POSTs", "bulk_topup/submit.py",
     'async with self.ctx.gift_locks.hold(p["productId"], p["typeId"], p["quantity"]):',
     "if True:",
     "tests/test_gift_never_twice.py"),
    ("no lock between identical gift POSTs of two processes", "bulk_topup/context.py",
     "                    lock.acquire(timeout=0)\n", "                    pass\n",
     "tests/test_gift_never_twice.py"),
    ("an edited row sent as a new order", "bulk_topup/service.py",
     'raise InvalidRowsError(refuse_edits(conflicts, request.allow_hints.get("edits")), '
     "conflicts)", "pass",
     "tests/test_never_twice_edits.py"),
    ("the console's sign-on header believed from anyone", "bulk_topup/console/app.py",
     "if header and not scope.get(VIA_PROXY) and not free:", "if False:",
     "tests/test_console_security.py::test_the_user_header_is_believed_only_from_the_proxy"),
    ("one session cookie name for every console of a host", "bulk_topup/console/auth.py",
     'return f"{COOKIE}_{port}_{where}" if port else f"{COOKIE}_{where}"', "return COOKIE",
     "tests/test_console_security.py::test_two_consoles_on_one_host_keep_their_own_sessions"),
    ("a forged upload's body read before its token is checked", "bulk_topup/console/web.py",
     "if early is not None and not csrf_ok(session_of(request), early):", "if False:",
     "tests/test_console_security.py::test_a_forged_upload_is_refused_before_its_body_is_read"),
    ("the machine's policy replaced by --policy", "bulk_topup/policy.py",
     "if SYSTEM_POLICY.exists():", "if False:",
     "tests/test_approvals.py::test_the_machines_policy_cannot_be_replaced_by_the_person_running"),
    ("a cell of thousands of digits read as an amount", "bulk_topup/normalise.py",
     'if len(re.sub(r"\\D", "", t).lstrip("0")) > _MAX_NUMBER_DIGITS:', "if False:",
     "tests/test_cli_validate.py::test_numbers_beyond_any_amount_are_refused_on_their_row"),
    ("a batch key with an invisible character accepted", "bulk_topup/batchfile.py",
     "    if hidden:\n", "    if False:\n",
     "tests/test_cli_run.py::test_a_new_batch_key_is_one_a_person_can_read_and_type"),
]  # fmt: skip


def run(mutant: tuple[str, str, str, str, str]) -> bool:
    """True when the mutant is killed (its tests fail)."""
    what, name, old, new, tests = mutant
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT / "bulk_topup", copy / "bulk_topup")
        shutil.copytree(ROOT / "tests", copy / "tests")
        shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
        shutil.copytree(ROOT / "samples", copy / "samples")
        target = copy / name
        text = target.read_text()
        if old not in text:
            print(f"STALE     {what}: {old!r} is not in {name}")
            return False
        target.write_text(text.replace(old, new, 1))
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests.split()],
            cwd=copy, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        killed = done.returncode != 0
        print(f"{'killed' if killed else 'SURVIVED':<9} {what}  ({tests})")
        return killed


def main() -> None:
    results = [run(m) for m in MUTANTS]
    print(f"{sum(results)} of {len(results)} mutants killed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
