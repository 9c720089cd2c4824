"""The run family of commands through click: exit codes, refusals, the README's commands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bulk_topup.cli import main
from bulk_topup.clock import SystemClock
from bulk_topup.emulator import SANDBOX_KEY

SAMPLES = Path(__file__).parent.parent / "samples"
README = Path(__file__).parent.parent / "README.md"


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()
    state = str(tmp_path / "state")

    def invoke(*args: str, emulator: bool = True, env: dict[str, str] | None = None):
        extra = ["--emulator", "--emulator-speed", "200"] if emulator else []
        return runner.invoke(main, [*args, *extra, "--state-dir", state], env=env)

    invoke.state = state
    return invoke


def test_run_the_sample_end_to_end(cli, tmp_path: Path) -> None:
    out = tmp_path / "results.xlsx"
    result = cli("run", str(SAMPLES / "orders.csv"), "--batch", "t1", "--yes", "--out", str(out))
    assert result.exit_code == 5, result.output  # the sample holds the UNKNOWN_ERROR number
    assert "environment: SANDBOX key (READ-WRITE)" in result.output
    # What looks odd is shown before anything is sent.
    assert "warning row 7, Phone: 0600000001 looks like a Mobilis number" in result.output
    assert result.output.index("warning row 7") < result.output.index("to send: 13 rows")
    assert "to send: 13 rows, 12,280.00 DA face value" in result.output
    assert "bulk-topup resume --batch t1" in result.output
    assert "SANDBOX-CARD-" not in result.output and "gift cards delivered: 5" in result.output
    assert out.exists()
    status = CliRunner().invoke(
        main, ["status", "--batch", "t1", "--format", "json", "--state-dir", cli.state]
    )
    data = json.loads(status.output)
    assert data["counts"] == {
        "FULFILLED": 9,
        "REFUNDED": 2,
        "UNKNOWN_ERROR": 1,
        "PARTIALLY_FILLED": 1,
    }
    assert data["exit_code"] == 5
    listing = CliRunner().invoke(main, ["batches", "--state-dir", cli.state])
    assert listing.output.startswith("t1")
    # The key is in no output, journal or workbook.
    for path in [out, *Path(cli.state).rglob("*")]:
        if path.is_file():
            assert SANDBOX_KEY.encode() not in path.read_bytes(), path
    assert SANDBOX_KEY not in result.output


def test_invalid_rows_cost_nothing_and_leave_no_batch(cli) -> None:
    result = cli("run", str(SAMPLES / "messy.csv"), "--batch", "m", "--yes")
    assert result.exit_code == 3
    assert 'row 11, Numéro: "77803734" has 8 digits' in result.output
    assert "3 invalid rows; nothing was sent (fix them, or pass --skip-invalid" in result.output
    assert "no batches" in CliRunner().invoke(main, ["batches", "--state-dir", cli.state]).output


def test_skip_invalid_sends_the_rest(cli, tmp_path: Path) -> None:
    result = cli(
        "run",
        str(SAMPLES / "messy.csv"),
        "--batch",
        "m",
        "--yes",
        "--skip-invalid",
        "--out",
        str(tmp_path / "r.xlsx"),
    )
    assert result.exit_code == 4, result.output  # invalid rows are rows not topped up
    assert "INVALID 3" in result.output and "FULFILLED 6" in result.output
    # The sheet's verdict does not say "nothing sent" of a run about to send the valid rows.
    assert "nothing sent" not in result.output
    assert "3 invalid rows, left out (--skip-invalid)" in result.output


@pytest.mark.parametrize("command", [["run", "--dry-run"], ["plan"]])
def test_skip_invalid_is_not_announced_as_sending_nothing(
    cli, tmp_path: Path, command: list[str]
) -> None:
    """A dry run and a plan with --skip-invalid go on with the valid rows: the verdict on the
    sheet says the invalid ones are left out, not that nothing is sent."""
    extra = ["--out", str(tmp_path / "m.plan.json")] if command == ["plan"] else []
    result = cli(command[0], str(SAMPLES / "messy.csv"), "--batch", "m", "--skip-invalid",
                 *command[1:], *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 invalid rows, left out (--skip-invalid)" in result.output
    assert "invalid rows, nothing sent" not in result.output


def test_without_a_terminal_and_without_yes_it_refuses(cli) -> None:
    result = cli("run", str(SAMPLES / "orders.csv"), "--batch", "n")
    assert result.exit_code == 6
    assert "no terminal to ask on; pass --yes" in result.output


def test_dry_run_sends_nothing(cli) -> None:
    result = cli("run", str(SAMPLES / "orders.xlsx"), "--batch", "d", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "nothing was sent" in result.output
    assert "would send 13 rows" in result.output


def test_max_total_refuses(cli) -> None:
    result = cli("run", str(SAMPLES / "orders.xlsx"), "--batch", "x", "--yes", "--max-total", "100")
    assert result.exit_code == 6
    assert "more than --max-total 100.00 DA; nothing was sent" in result.output


def test_no_key_is_a_usage_error(cli, monkeypatch) -> None:
    monkeypatch.delenv("ONECLICK_API_KEY", raising=False)
    result = cli("catalog", emulator=False)
    assert result.exit_code == 2
    assert "no API key: set ONECLICK_API_KEY, pass --api-key-file PATH" in result.output


def test_key_file_is_read_and_never_shown(cli, served, tmp_path: Path) -> None:
    url, world = served
    key_file = tmp_path / "key"
    key_file.write_text(SANDBOX_KEY + "\n")
    result = cli(
        "run",
        str(SAMPLES / "orders.csv"),
        "--batch",
        "k",
        "--yes",
        "--dry-run",
        "--api-url",
        url,
        "--api-key-file",
        str(key_file),
        emulator=False,
    )
    assert result.exit_code == 0, result.output
    assert SANDBOX_KEY not in result.output
    assert "can be read by other users" in result.output  # the file was written 0644
    key_file.chmod(0o600)
    again = cli("catalog", "--api-url", url, "--api-key-file", str(key_file), emulator=False)
    assert again.exit_code == 0 and "can be read by other users" not in again.output


def test_resume_of_unknown_batch(cli) -> None:
    result = cli("resume", "--batch", "nope", "--yes")
    assert result.exit_code == 2
    assert "there is no batch 'nope'" in result.output


def test_reconcile_needs_a_target(cli) -> None:
    assert cli("reconcile").exit_code == 2


@pytest.mark.parametrize(
    "command",
    [
        "run",
        "resume",
        "status",
        "reconcile",
        "report",
        "batches",
        "validate",
        "catalog",
        "template",
        "emulator",
    ],
)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_readme_commands_exist() -> None:
    """Every `bulk-topup <command>` the README shows is a real command."""
    text = README.read_text()
    shown = set(re.findall(r"bulk-topup ([a-z]+)", text))
    assert {"run", "resume", "validate", "reconcile"} <= shown
    assert shown <= set(main.commands)
    assert "make demo" in text and "make test" in text


def test_a_batch_stays_with_its_api(cli, served) -> None:
    url, world = served
    first = cli("run", str(SAMPLES / "orders.csv"), "--batch", "api", "--yes")
    assert first.exit_code == 5, first.output
    other = cli(
        "resume", "--batch", "api", "--yes", "--api-url", url, emulator=False,
        env={"ONECLICK_API_KEY": SANDBOX_KEY},
    )  # fmt: skip
    assert other.exit_code == 6
    assert "this batch was started against http://emulator.local" in other.output
    again = cli(
        "reconcile", "--all", "--api-url", url, emulator=False,
        env={"ONECLICK_API_KEY": SANDBOX_KEY},
    )  # fmt: skip
    assert again.exit_code == 6 and "api: skipped: this batch was started against" in again.output
    assert world.stats()["total_calls"] == 0


def _commands() -> list[tuple[str, Any]]:
    import click

    found = []

    def walk(group: Any, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, [*prefix, name])
            else:
                found.append((" ".join([*prefix, name]), command))

    walk(main, [])
    return found


def test_every_option_has_help_text() -> None:
    import click

    bare = [
        (name, p.opts)
        for name, command in _commands()
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden and not p.help
    ]
    assert bare == []


def test_no_help_shows_a_bound_of_none() -> None:
    """A range option without one of its bounds is shown as `x>=0`, never `x<=None`."""
    shown = {
        name: CliRunner().invoke(main, [*name.split(), "--help"], terminal_width=200).output
        for name, _command in _commands()
    }
    assert [name for name, text in shown.items() if "None" in text] == []


def test_the_readme_shows_only_options_the_commands_have() -> None:
    """Every `bulk-topup COMMAND ... --option` line of the README uses an option that COMMAND
    (or the `bulk-topup` group itself) really takes."""
    import click

    commands = dict(_commands())
    group_options = {o for p in main.params for o in p.opts}
    checked = 0
    for line in README.read_text().splitlines():
        for match in re.finditer(r"bulk-topup ((?:keys )?[a-z]+)\b([^#|`]*)", line):
            name, rest = match.group(1), match.group(2)
            if name not in commands:
                continue
            known = {o for p in commands[name].params if isinstance(p, click.Option)
                     for o in p.opts} | group_options  # fmt: skip
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", rest):
                assert option in known, f"README: {name} has no {option} ({line.strip()})"
                checked += 1
    assert checked > 40


def test_a_refused_key_is_worded_alike_everywhere(served, tmp_path: Path) -> None:
    """validate, catalog and run say the same sentence, with what the provider says of the
    attempts left; then the block and how long it lasts."""
    url, _ = served
    env = {"ONECLICK_API_URL": url, "ONECLICK_API_KEY": "wrong-key"}
    state = ["--state-dir", str(tmp_path / "s")]
    said = []
    for args in (["validate", str(SAMPLES / "orders.csv")], ["catalog", "mobile"],
                 ["run", str(SAMPLES / "orders.csv"), "--batch", "k", "--yes"]):  # fmt: skip
        result = CliRunner().invoke(main, [*args, *state], env=env)
        assert result.exit_code == 6, result.output
        said.append(result.output.strip().splitlines()[-1])
    assert said[0] == (
        "error: the API refused the key (INVALID_ACCESS_TOKEN: The provided access token is "
        "invalid); 4 attempts left before this address is blocked for 15 minutes; nothing was sent"
    )
    assert [s.split("; ")[0] for s in said] == [said[0].split("; ")[0]] * 3
    for _ in range(3):
        blocked = CliRunner().invoke(main, ["catalog", "mobile", *state], env=env)
    assert "IP_BLOCKED" in blocked.output
    assert "wait 15 minutes before trying again" in blocked.output


def test_resume_checks_repeats_and_takes_allow_repeat(cli, tmp_path: Path) -> None:
    """A batch held at the prompt, then the same people paid by another batch: resuming the held
    batch refuses with the option to name, and resume has that option."""
    sheet = tmp_path / "pay.csv"
    sheet.write_text(
        "Name,Phone,Plan,Amount\nAmina,0778037340,PREPAID_DJEZZY,1000\n"
        "Karim,0661234567,PREPAID_MOBILIS,500\n"
    )
    assert cli("run", str(sheet), "--batch", "held").exit_code == 6  # nobody said yes
    # Held back, its rows are nobody's intended payment: the other batch is not refused for them.
    assert cli("run", str(sheet), "--batch", "paid", "--yes").exit_code == 0
    refused = cli("resume", "--batch", "held", "--yes")
    assert refused.exit_code == 3, refused.output
    assert "would pay again what another batch paid" in refused.output
    assert "nothing was sent" in refused.output and "pass --allow-repeat" in refused.output
    status = CliRunner().invoke(
        main, ["status", "--batch", "held", "--format", "json", "--state-dir", cli.state]
    )
    assert json.loads(status.output)["counts"] == {"PLANNED": 2}
    again = cli("resume", "--batch", "held", "--yes", "--allow-repeat")
    assert again.exit_code == 0, again.output
    status = CliRunner().invoke(
        main, ["status", "--batch", "held", "--format", "json", "--state-dir", cli.state]
    )
    assert json.loads(status.output)["counts"] == {"FULFILLED": 2}


def test_an_uncertain_gift_row_is_named_with_the_command_that_resends_it(
    cli, served, tmp_path: Path
) -> None:
    """A gift POST that failed with no order found is left to a person: the ending says so and
    gives the command that sends it again (plain `resume` would leave it where it is)."""
    url, world = served
    sheet = tmp_path / "gift.csv"
    sheet.write_text(
        "Kind,Product ID,Type ID,Quantity\ngiftcard,507f1f77bcf86cd799439011,type_001,1\n"
    )
    world.clock = SystemClock(20)  # the provider and the runner both twenty times faster
    env = {"ONECLICK_API_KEY": SANDBOX_KEY, "BULK_TOPUP_CLOCK_SPEED": "20"}
    world.faults.update({"fail_next": 1, "fail_on": "POST /v3/gift-cards/placeOrder"})  # no order
    first = cli(
        "run", str(sheet), "--batch", "g", "--yes", "--api-url", url, emulator=False, env=env
    )
    assert first.exit_code == 5, first.output
    command = f"bulk-topup resume --batch g --state-dir {cli.state} --resend-uncertain-gifts"
    assert "1 gift card row is UNCERTAIN" in first.output and command in first.output
    plain = cli("resume", "--batch", "g", "--yes", "--api-url", url, emulator=False, env=env)
    assert plain.exit_code == 5 and world.stats()["orders"] == 0
    assert "1 gift card row is UNCERTAIN" in plain.output
    resent = cli(*command.split()[1:], "--yes", "--api-url", url, emulator=False, env=env)
    assert resent.exit_code == 0, resent.output
    assert world.stats()["orders"] == 1 and "UNCERTAIN" not in resent.output


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("", "the batch key is empty"),
        ("   ", "the batch key is empty"),
        ("pay\x01roll", "holds a character that cannot be seen (U+0001)"),
        ("payroll\u200b", "holds a character that cannot be seen (U+200B)"),
        ("pay\u202eroll", "holds a character that cannot be seen (U+202E)"),
        ("p" * 101, "a batch key has at most 100 characters"),
    ],
)
def test_a_new_batch_key_is_one_a_person_can_read_and_type(cli, key: str, says: str) -> None:
    """A key with an invisible character would hide in every command printed and look like
    another batch's key: run and plan refuse it before reading the sheet."""
    for command in (("run", "--yes"), ("plan",)):
        result = cli(command[0], str(SAMPLES / "orders.csv"), "--batch", key, *command[1:])
        assert result.exit_code == 2, result.output
        assert says in result.output
    assert not list(Path(cli.state).glob("batches/*.sqlite"))


def test_status_of_a_batch_with_no_rows_tells_a_starting_run_from_a_dead_one(cli) -> None:
    """No rows yet while a run holds the batch is a run at work, not one that died."""
    from bulk_topup.batchfile import open_batch

    state = Path(cli.state)
    with open_batch(state, "starting", now=lambda: "2026-11-28T08:00:00Z"):
        busy = cli("status", "--batch", "starting", emulator=False)
        assert busy.exit_code == 0, busy.output
        assert "a run is writing the sheet's rows right now" in busy.output
    dead = cli("status", "--batch", "starting", emulator=False)
    assert "the run that created it stopped before the sheet's rows were written" in dead.output
