"""Maker-checker through the real CLI: plan, keys, approve, and the refusals of run --plan.

Every refusal is checked to have sent nothing: the run leaves no batch behind, or the served
emulator saw no POST.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk_topup.cli import main
from bulk_topup.emulator import SANDBOX_KEY, ApiKey
from bulk_topup.planfile import read_plan

SAMPLES = Path(__file__).parent.parent / "samples"

SHEET = (
    "Name,Phone,Plan,Amount\n"
    "Amina Benali,0661234567,PREPAID_MOBILIS,500\n"
    "Karim Haddad,0771234567,PREPAID_DJEZZY,1000\n"
    "Sofiane Meziane,0551234567,PREPAID_OOREDOO,700\n"
)


@pytest.fixture
def sheet(tmp_path: Path) -> Path:
    path = tmp_path / "staff.csv"
    path.write_text(SHEET, encoding="utf-8")
    return path


class Desk:
    """The finance desk: people with keys, a policy, and the CLI against the emulator."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = str(tmp / "state")
        self.runner = CliRunner()
        self.public: dict[str, str] = {}

    def cli(self, *args: str, emulator: bool = True, env: dict[str, str] | None = None):
        extra = ["--emulator", "--emulator-speed", "200"] if emulator else []
        return self.runner.invoke(main, [*args, *extra, "--state-dir", self.state], env=env)

    def plain(self, *args: str):
        return self.runner.invoke(main, list(args))

    def key(self, name: str) -> str:
        result = self.plain("keys", "new", name)
        assert result.exit_code == 0, result.output
        line = result.output.strip().splitlines()[-1]
        assert line.startswith(f'{name} = "ed25519:')
        self.public[name] = line
        return line

    def policy(self, *approvers: str, body: str = "[approval]\nrequired = 1\n") -> str:
        path = self.tmp / "policy.toml"
        lines = [self.public.get(a) or self.key(a) for a in approvers]
        path.write_text("[approvers]\n" + "\n".join(lines) + "\n" + body, encoding="utf-8")
        return str(path)

    def plan(self, sheet: Path, *extra: str, batch: str = "pay-11", preparer: str = "alice"):
        out = self.tmp / "staff.plan.json"
        result = self.cli("plan", str(sheet), "--batch", batch, "--out", str(out),
                          "--preparer", preparer, *extra)  # fmt: skip
        assert result.exit_code == 0, result.output
        return out, result

    def approve(self, plan: Path, who: str, policy: str | None = None):
        args = ["approve", str(plan), "--key", who, "--yes"]
        return self.plain(*args, *(["--policy", policy] if policy else []))

    def run(self, sheet: Path, plan: Path | None, policy: str, *extra: str, batch: str = "pay-11"):
        with_plan = ["--plan", str(plan)] if plan else []
        return self.cli("run", str(sheet), "--batch", batch, "--yes", "--policy", policy,
                        "--out", str(self.tmp / "results.xlsx"), *with_plan, *extra)  # fmt: skip

    def batches(self) -> str:
        return self.plain("batches", "--state-dir", self.state).output


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


def refused(result, *sentences: str) -> None:
    assert result.exit_code == 6, result.output
    assert "this run is refused; nothing was sent" in result.output
    for sentence in sentences:
        assert sentence in result.output, result.output


# --- keys ----------------------------------------------------------------------------------------


def test_keys_new_is_private_and_never_overwritten(desk: Desk, own_config: Path) -> None:
    first = desk.plain("keys", "new", "bob")
    assert first.exit_code == 0, first.output
    key = own_config / "keys" / "bob.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    before = key.read_bytes()
    again = desk.plain("keys", "new", "bob")
    assert again.exit_code == 2
    assert "a key named bob already exists" in again.output
    assert key.read_bytes() == before
    assert "PRIVATE KEY" not in first.output  # only the public line is shown
    assert desk.plain("keys", "new", "../evil").exit_code == 2
    assert desk.plain("keys", "list").output.strip() == first.output.strip().splitlines()[-1]


def test_a_key_others_can_read_cannot_sign(desk: Desk, sheet: Path, own_config: Path) -> None:
    desk.key("bob")
    plan, _ = desk.plan(sheet)
    (own_config / "keys" / "bob.key").chmod(0o644)
    result = desk.approve(plan, "bob")
    assert result.exit_code == 2 and "can be read by other users" in result.output
    assert not Path(str(plan) + ".sig").exists()


# --- plan ----------------------------------------------------------------------------------------


def test_plan_records_what_will_be_sent_and_sends_nothing(desk: Desk, sheet: Path, served) -> None:
    url, world = served
    out = desk.tmp / "p.json"
    result = desk.cli(
        "plan", str(sheet), "--batch", "pay-11", "--out", str(out), "--api-url", url,
        emulator=False, env={"ONECLICK_API_KEY": SANDBOX_KEY},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert world.stats()["orders"] == 0
    assert not any(call.startswith("POST") for _, call in world.call_log)
    plan = read_plan(out)
    assert out.read_bytes() == plan.raw  # canonical bytes: what approvers sign
    d = plan.data
    assert d["format"] == "bulk_topup.plan.v1"
    assert d["sheet"] == {
        "file": "staff.csv",
        "sha256": hashlib.sha256(sheet.read_bytes()).hexdigest(),
        "size": len(sheet.read_bytes()),
        "worksheet": None,
    }
    assert d["api_url"] == url and d["environment"] == "SANDBOX"
    assert d["prepared_by"]  # the OS user when --preparer is not given
    assert [(r["row"], r["recipient"], r["product"], r["amount"]) for r in d["rows"]] == [
        (2, "mobile:0661234567", "PREPAID_MOBILIS", 500),
        (3, "mobile:0771234567", "PREPAID_DJEZZY", 1000),
        (4, "mobile:0551234567", "PREPAID_OOREDOO", 700),
    ]
    assert all(r["ref"].startswith("pay-11-") for r in d["rows"])
    assert d["rows"][0]["person"] == {"Name": "Amina Benali"}
    assert d["prices"] == {
        "mobile": {"PREPAID_MOBILIS": 0.96, "PREPAID_DJEZZY": 0.9925, "PREPAID_OOREDOO": 0.97}
    }
    assert d["totals"]["face_value"] == 2200.0
    assert d["totals"]["cost"] == 2200.0 - 20 - 7.5 - 21  # 480 + 992.5 + 679
    assert d["totals"]["per_kind"] == {"mobile": {"rows": 3, "face_value": 2200.0,
                                                  "cost": 2151.5}}  # fmt: skip
    assert f"digest: {plan.digest}" in result.output
    assert "total: 2,200.00 DA face value, 2,151.50 DA cost" in result.output
    assert "nothing was sent" in result.output


def test_plan_refuses_invalid_rows_unless_skipped(desk: Desk, tmp_path: Path) -> None:
    messy = tmp_path / "messy.csv"
    messy.write_text(SHEET + "Nadia Cherif,77803734,PREPAID_DJEZZY,500\n", encoding="utf-8")
    out = tmp_path / "m.plan.json"
    bad = desk.cli("plan", str(messy), "--batch", "m", "--out", str(out))
    assert bad.exit_code == 3
    assert 'row 5, Phone: "77803734" has 8 digits' in bad.output
    assert "1 invalid rows; no plan was written" in bad.output
    assert not out.exists()
    ok = desk.cli("plan", str(messy), "--batch", "m", "--out", str(out), "--skip-invalid")
    assert ok.exit_code == 0, ok.output
    plan = read_plan(out)
    assert plan.totals["rows"] == 3 and plan.totals["skipped"] == 1
    assert plan.data["skipped"][0]["row"] == 5
    assert "has 8 digits" in plan.data["skipped"][0]["problems"][0]
    desk.key("bob")
    shown = desk.approve(out, "bob")  # shown before signing, with the skipped row and why
    assert re.search(r"row +5 +SKIPPED: .*has 8 digits", shown.output), shown.output


def test_a_sheet_with_nothing_to_plan_is_the_sheets_fault(desk: Desk, tmp_path: Path) -> None:
    """A header with no order row below it, or rows all invalid and skipped, is an empty plan:
    exit 3 (the sheet's fault, as `run` says of it), not 2 (a usage error), and no plan file."""
    empty = tmp_path / "empty.csv"
    empty.write_text(SHEET.splitlines()[0] + "\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(SHEET.splitlines()[0] + "\nNadia Cherif,77803734,PREPAID_DJEZZY,500\n",
                   encoding="utf-8")  # fmt: skip
    out = tmp_path / "e.plan.json"
    for made in (
        desk.cli("plan", str(empty), "--batch", "e", "--out", str(out)),
        desk.cli("plan", str(bad), "--batch", "e", "--out", str(out), "--skip-invalid"),
    ):
        assert made.exit_code == 3, made.output
        assert "there is nothing to plan" in made.output
    assert not out.exists()


def test_a_hand_edited_plan_is_refused(desk: Desk, sheet: Path) -> None:
    plan, _ = desk.plan(sheet)
    data = json.loads(plan.read_text())
    data["rows"][0]["amount"] = 5000
    plan.write_text(json.dumps(data))
    desk.key("bob")
    result = desk.approve(plan, "bob")
    assert result.exit_code == 2
    assert "was edited after bulk-topup plan wrote it" in result.output


# --- approve -------------------------------------------------------------------------------------


def test_approve_shows_the_plan_and_needs_a_confirmation(desk: Desk, sheet: Path) -> None:
    desk.key("bob")
    plan, made = desk.plan(sheet)
    digest = read_plan(plan).digest
    no_tty = desk.plain("approve", str(plan), "--key", "bob")
    assert no_tty.exit_code == 6 and "pass --yes" in no_tty.output
    assert not Path(str(plan) + ".sig").exists()
    result = desk.approve(plan, "bob")
    assert result.exit_code == 0, result.output
    assert f"plan {digest}" in result.output and f"digest: {digest}" in made.output
    assert "total: 2,200.00 DA face value" in result.output
    assert (
        "PREPAID_DJEZZY 1000 DA to 0771234567" in result.output and "Karim Haddad" in result.output
    )
    assert "prepared by alice" in result.output
    lines = Path(str(plan) + ".sig").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["plan_sha256"] == read_plan(plan).sha256
    again = desk.approve(plan, "bob")
    assert "already approved" in again.output
    assert len(Path(str(plan) + ".sig").read_text().splitlines()) == 1


# --- run --plan: what goes through ---------------------------------------------------------------


def test_an_approved_plan_runs_unattended(desk: Desk, sheet: Path) -> None:
    policy = desk.policy("bob")
    plan, _ = desk.plan(sheet)
    assert desk.approve(plan, "bob").exit_code == 0
    # CliRunner gives no terminal: this is how cron runs it.
    result = desk.run(sheet, plan, policy)
    assert result.exit_code == 0, result.output
    assert "finished: every row fulfilled" in result.output
    from bulk_topup.batchfile import open_batch

    with open_batch(Path(desk.state), "pay-11", now=lambda: "", lock=False) as j:
        batch_events = [e for e in j.events() if e["idx"] is None]
        assert j.get_meta("plan_sha256") == read_plan(plan).sha256
    said = [(e["detail"], e["actor"]) for e in batch_events]
    digest = read_plan(plan).digest
    assert said[0] == (f"plan {digest} prepared by alice", "alice")
    assert said[1] == (f"plan {digest} approved by bob", "bob")
    assert said[2][0].startswith("run started by ") and said[2][0].endswith(f"with plan {digest}")


def test_without_a_plan_the_policy_refuses_a_run_that_needs_approval(
    desk: Desk, sheet: Path
) -> None:
    policy = desk.policy("bob")
    result = desk.run(sheet, None, policy)
    refused(result, "needs 1 approval for a run of 2,200.00 DA: prepare a plan")
    assert "no batches" in desk.batches()
    # Below the tiers, with no base requirement, no approval is needed.
    small = desk.policy("bob", body="[approval]\nrequired = 0\n[[approval.tiers]]\n"
                                    "above = 5000\nrequired = 1\n")  # fmt: skip
    assert desk.run(sheet, None, small).exit_code == 0


# --- run --plan: what is refused -----------------------------------------------------------------


def test_a_sheet_edited_by_one_byte_is_refused(desk: Desk, sheet: Path) -> None:
    policy = desk.policy("bob")
    plan, _ = desk.plan(sheet)
    desk.approve(plan, "bob")
    data = sheet.read_bytes()
    sheet.write_bytes(data.replace(b"Amina", b"Amino"))  # one byte, in a column never sent
    refused(desk.run(sheet, plan, policy), "the sheet staff.csv is not the one approved")
    assert "no batches" in desk.batches()
    sheet.write_bytes(data.replace(b"PREPAID_MOBILIS,500", b"PREPAID_MOBILIS,600"))
    result = desk.run(sheet, plan, policy)
    refused(result, "the sheet staff.csv is not the one approved")
    assert "(PREPAID_MOBILIS 600 DA to 0661234567, ref" in result.output
    assert "is not in the plan" in result.output
    sheet.write_bytes(data)
    assert desk.run(sheet, plan, policy).exit_code == 0


def test_a_forged_or_wrongly_keyed_signature_is_refused(desk: Desk, sheet: Path) -> None:
    policy = desk.policy("bob")
    desk.key("mallory")  # a key, but not an approver's
    plan, _ = desk.plan(sheet)
    sig = Path(str(plan) + ".sig")
    assert desk.approve(plan, "mallory").exit_code == 0
    refused(desk.run(sheet, plan, policy),
            "signature 1 (mallory) was made with a key the policy does not list")  # fmt: skip
    # Mallory's signature presented as bob's: bob's public key, mallory's signature.
    line = json.loads(sig.read_text())
    line.update(approver="bob", public_key=desk.public["bob"].split('"')[1])
    sig.write_text(json.dumps(line) + "\n")
    refused(desk.run(sheet, plan, policy), "signature 1 (bob) does not verify with bob's key")
    # A real signature of bob with one bit flipped.
    sig.unlink()
    desk.approve(plan, "bob")
    line = json.loads(sig.read_text())
    raw = bytearray(__import__("base64").b64decode(line["signature"]))
    raw[0] ^= 1
    line["signature"] = __import__("base64").b64encode(bytes(raw)).decode()
    sig.write_text(json.dumps(line) + "\n")
    refused(desk.run(sheet, plan, policy), "does not verify with bob's key")
    # No signature at all.
    sig.unlink()
    refused(
        desk.run(sheet, plan, policy),
        "the plan has 0 valid approvals (nobody) and the policy needs 1",
    )
    assert "no batches" in desk.batches()


def test_a_signature_for_another_plan_does_not_count(desk: Desk, sheet: Path) -> None:
    policy = desk.policy("bob")
    plan, _ = desk.plan(sheet)
    desk.approve(plan, "bob")
    other = desk.tmp / "other.plan.json"
    desk.cli("plan", str(sheet), "--batch", "pay-11", "--out", str(other), "--preparer", "eve")
    Path(str(other) + ".sig").write_bytes(Path(str(plan) + ".sig").read_bytes())
    refused(desk.run(sheet, other, policy), "signature 1 (bob) approves another plan")


def test_a_preparer_approving_their_own_plan_is_refused(desk: Desk, sheet: Path) -> None:
    policy = desk.policy("alice", "bob")
    plan, _ = desk.plan(sheet, preparer="alice")
    warned = desk.approve(plan, "alice", policy)
    assert "the policy does not let a preparer approve their own plan" in warned.output
    refused(desk.run(sheet, plan, policy), "alice prepared this plan and also approved it")
    lenient = desk.policy("alice", "bob", body="[approval]\nself_approval = true\n")
    assert desk.run(sheet, plan, lenient, "--dry-run").exit_code == 0


def test_two_approvals_required_and_one_given_is_refused(desk: Desk, sheet: Path) -> None:
    policy = desk.policy("bob", "carol", body="[approval]\nrequired = 1\n[[approval.tiers]]\n"
                                              "above = 2000\nrequired = 2\n")  # fmt: skip
    plan, _ = desk.plan(sheet)
    desk.approve(plan, "bob")
    sig = Path(str(plan) + ".sig")
    sig.write_text(sig.read_text() * 2)  # the same approval twice is still one approval
    refused(
        desk.run(sheet, plan, policy),
        "the plan has 1 valid approval (bob) and the policy needs 2 for 2,200.00 DA",
    )
    desk.approve(plan, "carol")
    assert desk.run(sheet, plan, policy).exit_code == 0


def test_a_price_drift_beyond_the_tolerance_is_refused(desk: Desk, sheet: Path, served) -> None:
    url, world = served
    env = {"ONECLICK_API_KEY": SANDBOX_KEY}
    policy = desk.policy("bob", body="[approval]\nprice_tolerance_percent = 2\n")
    out = desk.tmp / "p.json"
    made = desk.cli("plan", str(sheet), "--batch", "pay-11", "--out", str(out), "--api-url", url,
                    "--preparer", "alice", emulator=False, env=env)  # fmt: skip
    assert made.exit_code == 0, made.output
    desk.approve(out, "bob")
    args = ("run", str(sheet), "--batch", "pay-11", "--plan", str(out), "--policy", policy,
            "--api-url", url, "--dry-run")  # fmt: skip
    world.plans["PREPAID_MOBILIS"]["cost"] = 0.965  # +0.52 %: within the tolerance
    assert desk.cli(*args, emulator=False, env=env).exit_code == 0
    world.plans["PREPAID_MOBILIS"]["cost"] = 0.99  # +3.13 %
    result = desk.cli(*args[:-1], "--yes", emulator=False, env=env)
    refused(result, "the price of the plan PREPAID_MOBILIS went up from 0.96 to 0.99 (3.13 %) "
                    "since the plan was prepared; the policy allows 2 %")  # fmt: skip
    del world.plans["PREPAID_OOREDOO"]
    refused(
        desk.cli(*args[:-1], "--yes", emulator=False, env=env),
        "the plan PREPAID_OOREDOO of the plan is no longer in the provider's catalog",
    )
    assert world.stats()["orders"] == 0
    assert not any(call.startswith("POST") for _, call in world.call_log)


def test_the_environment_and_the_api_must_be_the_approved_ones(
    desk: Desk, sheet: Path, served
) -> None:
    url, world = served
    world.keys["prod-key"] = ApiKey("prod-key", type="PRODUCTION")
    policy = desk.policy("bob")
    out = desk.tmp / "p.json"
    desk.cli("plan", str(sheet), "--batch", "pay-11", "--out", str(out), "--api-url", url,
             emulator=False, env={"ONECLICK_API_KEY": SANDBOX_KEY})  # fmt: skip
    desk.approve(out, "bob")
    result = desk.cli("run", str(sheet), "--batch", "pay-11", "--plan", str(out), "--yes",
                      "--policy", policy, "--api-url", url, emulator=False,
                      env={"ONECLICK_API_KEY": "prod-key"})  # fmt: skip
    refused(result, "the plan was approved for the SANDBOX environment and this key is PRODUCTION")
    elsewhere = desk.run(sheet, out, policy)  # the built-in emulator: another API
    refused(elsewhere, f"the plan was approved for the API at {url}, not http://emulator.local")
    other_batch = desk.cli("run", str(sheet), "--batch", "pay-12", "--plan", str(out), "--yes",
                           "--policy", policy, "--api-url", url, emulator=False,
                           env={"ONECLICK_API_KEY": SANDBOX_KEY})  # fmt: skip
    refused(other_batch, "the plan is for batch 'pay-11', not 'pay-12'")
    assert world.stats()["orders"] == 0


def test_caps_per_run_per_recipient_and_per_period(desk: Desk, sheet: Path, tmp_path: Path) -> None:
    caps = "[approval]\nrequired = 0\n[caps]\n"
    per_run = desk.policy("bob", body=caps + "per_run = 2000\n")
    refused(
        desk.run(sheet, None, per_run),
        "this run sends 2,200.00 DA, more than the policy's cap of 2,000.00 DA per run",
    )
    twice = tmp_path / "twice.csv"
    twice.write_text(SHEET + "Amina again,0661234567,PREPAID_MOBILIS,3000\n", encoding="utf-8")
    per_person = desk.policy("bob", body=caps + "per_recipient = 3000\n")
    refused(desk.run(twice, None, per_person),
            "0661234567 would receive 3,500.00 DA in this run, more than the policy's cap of "
            "3,000.00 DA per recipient")  # fmt: skip
    # Across batches: the sample sends 11,280 DA that stay spent (two rows are refunded).
    first = desk.cli("run", str(SAMPLES / "orders.csv"), "--batch", "earlier", "--yes",
                     "--out", str(tmp_path / "e.xlsx"))  # fmt: skip
    assert first.exit_code == 5, first.output
    period = desk.policy("bob", body=caps + "per_period = 13000\nperiod_days = 30\n")
    refused(desk.run(sheet, None, period),
            "11,280.00 DA were sent in the last 30 days and this run adds 2,200.00 DA, more than "
            "the policy's cap of 13,000.00 DA per 30 days")  # fmt: skip
    roomy = desk.policy("bob", body=caps + "per_period = 13480\nperiod_days = 30\n")
    # (Amina's 500 DA was paid by the earlier batch: a repeat, allowed here on purpose.)
    assert desk.run(sheet, None, roomy, "--allow-repeat").exit_code == 0
    # Run again, the batch's own rows already sent are not counted twice.
    assert desk.run(sheet, None, roomy).exit_code == 0


# --- the policy file -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("[approval]\nrequierd = 2\n", "unknown key 'requierd'"),
        ("[approval]\nrequired = 3\n", "asks for 3 approvals but lists 1 approvers"),
        ("[caps]\nper_run = -5\n", "per_run cannot be negative"),
        ("[caps]\nper_run = 'lots'\n", "per_run must be a number"),
        ("[approval]\nself_approval = 'no'\n", "self_approval must be true or false"),
        ("[[approval.tiers]]\nabove = 10\n", "tier 1 needs both above (DA) and required"),
        ("[approvers\n", "is not valid TOML"),
    ],
)
def test_a_wrong_policy_is_a_usage_error(desk: Desk, sheet: Path, body: str, says: str) -> None:
    policy = desk.policy("bob", body=body)
    result = desk.run(sheet, None, policy)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "no batches" in desk.batches()


def test_a_bad_public_key_and_a_missing_policy(desk: Desk, sheet: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[approvers]\nbob = "ed25519:AAAA"\n')
    result = desk.run(sheet, None, str(path))
    assert (
        result.exit_code == 2 and "approver bob is not a valid Ed25519 public key" in result.output
    )
    gone = desk.run(sheet, None, str(tmp_path / "nope.toml"))
    assert gone.exit_code == 2 and "does not exist" in gone.output
    desk.key("bob")
    plan, _ = desk.plan(sheet)
    desk.approve(plan, "bob")
    env = {"BULK_TOPUP_CONFIG_DIR": str(tmp_path / "empty-config")}
    no_policy = desk.cli("run", str(sheet), "--batch", "pay-11", "--plan", str(plan), "--yes",
                         env=env)  # fmt: skip
    refused(no_policy, "there is no approval policy to check the plan's signatures against")


def test_the_policy_is_found_by_env_and_in_the_config_dir(
    desk: Desk, sheet: Path, own_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = Path(desk.policy("bob"))
    (own_config / "policy.toml").write_text(policy.read_text())
    result = desk.cli("run", str(sheet), "--batch", "pay-11", "--yes")
    refused(result, "needs 1 approval")
    assert str(own_config / "policy.toml") in result.output
    monkeypatch.setenv("BULK_TOPUP_POLICY", str(desk.tmp / "elsewhere.toml"))
    assert desk.cli("run", str(sheet), "--batch", "pay-11", "--yes").exit_code == 2


def test_the_machines_policy_cannot_be_replaced_by_the_person_running(
    desk: Desk, sheet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever runs a batch controls their options and environment: with a policy kept by the
    administrator, neither --policy nor BULK_TOPUP_POLICY can swap in a lenient file."""
    import bulk_topup.policy

    system = desk.tmp / "etc" / "policy.toml"
    system.parent.mkdir()
    system.write_text(Path(desk.policy("bob")).read_text(), encoding="utf-8")
    monkeypatch.setattr(bulk_topup.policy, "SYSTEM_POLICY", system)
    lenient = desk.tmp / "lenient.toml"
    lenient.write_text("[approval]\nrequired = 0\n", encoding="utf-8")
    swapped = desk.run(sheet, None, str(lenient))
    assert swapped.exit_code == 2, swapped.output
    assert f"the policy in force on this machine is {system}" in swapped.output
    monkeypatch.setenv("BULK_TOPUP_POLICY", str(lenient))
    assert desk.cli("run", str(sheet), "--batch", "pay-11", "--yes").exit_code == 2
    monkeypatch.delenv("BULK_TOPUP_POLICY")
    refused(desk.cli("run", str(sheet), "--batch", "pay-11", "--yes"), "needs 1 approval")
    refused(desk.run(sheet, None, str(system)), "needs 1 approval")  # naming it is allowed
    assert "no batches" in desk.batches()


def test_resume_refuses_a_batch_the_policy_wants_approved(desk: Desk, sheet: Path) -> None:
    from bulk_topup.approval import check_resume
    from bulk_topup.batchfile import open_batch
    from bulk_topup.errors import RefusedError
    from bulk_topup.policy import load_policy

    # A batch left with rows to send before the policy existed (refused for balance, say).
    result = desk.cli("run", str(sheet), "--batch", "old", "--yes", "--max-total", "1")
    assert result.exit_code == 6
    policy = load_policy(desk.policy("bob"))
    with open_batch(Path(desk.state), "old", now=lambda: "", lock=False, create=False) as j:
        with pytest.raises(RefusedError, match="started without an approved plan"):
            check_resume(j, policy)
        j.set_meta(plan_sha256="0" * 64)
        check_resume(j, policy)


def test_approval_commands_have_help() -> None:
    for command in (["plan"], ["approve"], ["keys", "new"], ["keys", "list"], ["audit"]):
        result = CliRunner().invoke(main, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_the_plan_file_is_readable_by_approvers(desk: Desk, sheet: Path) -> None:
    plan, _ = desk.plan(sheet)
    mode = stat.S_IMODE(plan.stat().st_mode)
    assert mode & 0o044 == 0o044 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_readme_policy_is_a_valid_policy(tmp_path: Path) -> None:
    from bulk_topup.policy import parse_policy

    text = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    policy = parse_policy(example, tmp_path / "policy.toml")
    assert sorted(policy.approvers) == ["karim", "nadia", "yacine"]
    assert (policy.required, policy.self_approval, policy.price_tolerance) == (1, False, 2.0)
    assert policy.approvals_needed(500_000) == 1 and policy.approvals_needed(500_001) == 2
    assert (policy.per_run, policy.per_recipient) == (2_000_000, 20_000)
    assert (policy.per_period, policy.period_days) == (10_000_000, 30)


def test_a_period_cap_counts_every_journal_or_refuses(desk: Desk, sheet: Path) -> None:
    desk.state = str(desk.tmp / "state #1")  # a '#' must not hide the journals from the count
    caps = "[approval]\nrequired = 0\n[caps]\nper_period = 3000\n"
    policy = desk.policy("bob", body=caps)
    assert desk.run(sheet, None, policy, batch="first").exit_code == 0
    refused(desk.run(sheet, None, policy, batch="second"),
            "2,200.00 DA were sent in the last 30 days and this run adds 2,200.00 DA")  # fmt: skip
    junk = Path(desk.state) / "batches" / "junk.sqlite"
    junk.write_bytes(b"not a journal" * 100)
    roomy = desk.policy("bob", body="[approval]\nrequired = 0\n[caps]\nper_period = 9000\n")
    refused(desk.run(sheet, None, roomy, batch="third"),
            f"the journal {junk} cannot be read, so what was sent in the last 30 days")  # fmt: skip


def test_the_plan_form_and_the_signed_message_are_pinned() -> None:
    """Golden: a change here would make every plan already written or signed unreadable."""
    from bulk_topup.planfile import digest_of, encode
    from bulk_topup.signing import signed_message

    data = {
        "format": "bulk_topup.plan.v1",
        "batch": "b",
        "rows": [
            {"ref": "b-1", "amount": 500, "label": "📱 PREPAID"},
            {"ref": "b-2", "amount": None},
        ],
        "skipped": [],
        "totals": {"face_value": 500.0},
    }
    raw = encode(data)
    assert raw == (
        b'{\n"batch":"b",\n"format":"bulk_topup.plan.v1",\n"rows":[\n'
        b'{"amount":500,"label":"\xf0\x9f\x93\xb1 PREPAID","ref":"b-1"},\n'
        b'{"amount":null,"ref":"b-2"}\n],\n"skipped":[],\n"totals":{"face_value":500.0}\n}\n'
    )
    assert json.loads(raw) == data
    sha = hashlib.sha256(raw).hexdigest()
    assert sha == "4740144e6643f86fd3a0008aae94f4fa9a5ff9d1aa795af282e513ed457ffe5e"
    assert digest_of(sha) == "4740 144E 6643 F86F"
    assert signed_message("ab" * 32, "ed25519:AAAA", "2026-11-01T08:00:00.000Z") == (
        b'["bulk_topup.approval.v1","'
        + b"ab" * 32
        + b'","ed25519:AAAA","2026-11-01T08:00:00.000Z"]'
    )


def test_a_config_dir_that_is_a_file_is_said(desk: Desk, tmp_path: Path, monkeypatch) -> None:
    """Keys and the policy live in the config dir: a file there is a mistake to name, not an
    empty list of keys."""
    wrong = tmp_path / "not-a-folder"
    wrong.write_text("x")
    monkeypatch.setenv("BULK_TOPUP_CONFIG_DIR", str(wrong))
    for args in (("keys", "list"), ("keys", "new", "bob")):
        result = desk.plain(*args)
        assert result.exit_code == 2, result.output
        assert f"the config dir {wrong} is a file, not a folder" in result.output
