"""The terminal in French: `--lang fr` (before or after the command) and BULK_TOPUP_LANG make every
command speak French, English stays as it was, and what the journal keeps stays in English."""

from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bulk_topup.batchfile import batch_path
from bulk_topup.cli import main
from bulk_topup.client import OneClickClient, RetryPolicy
from bulk_topup.errors import ApiError
from bulk_topup.i18n import N_, Text, money, number, shown, use_language
from bulk_topup.runner import RunOptions
from bulk_topup.texts import (
    BALANCE_RAN_OUT,
    BREAKER,
    INTERRUPTED_BY,
    KEY_REFUSED,
    NO_FREE_GIFT_MATCH,
    STORED,
    display,
)

from .runkit import Kit, mobile
from .test_report import invoke

PACKAGE = Path(__file__).parent.parent / "bulk_topup"
SAMPLES = Path(__file__).parent.parent / "samples"
NBSP = "\u00a0"  # French groups thousands with a no-break space


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None, emulator: bool = True):
    extra = ["--emulator", "--emulator-speed", "200"] if emulator else []
    return CliRunner().invoke(
        main, [*args, *extra, "--state-dir", str(tmp_path / "state")], env=env
    )


# --- validate: every problem in French, in the user's own headers --------------------------------

MESSY_FR = [
    "/messy.csv : 9 lignes (en-tête à la ligne 3)",
    "remarque : colonnes recopiées telles quelles dans les résultats (ce ne sont pas des colonnes "
    "de commande) : Nom, Remarque",
    'erreur        ligne 10, Montant : "999,50" n\'est pas un nombre entier de dinars ; les '
    "montants sont en DZD entiers (sans centimes)",
    'erreur        ligne 11, Numéro : "77803734" a 8 chiffres ; un numéro mobile algérien en a '
    "10 (0XXXXXXXXX)",
    "erreur        ligne 13, Offre : l'offre FACTURE_OOREDOO est désactivée par le fournisseur "
    "pour le moment ; choisissez une autre offre ou réessayez plus tard",
    "avertissement ligne 4, Numéro : 0 initial rétabli (perdu par Excel) : lu comme 0778037340",
    'avertissement ligne 4, Montant : "1 000" lu comme 1000 DA',
    "avertissement ligne 5, Numéro : +213 remplacé par 0 : lu comme 0661234567",
    "avertissement ligne 7, Numéro : écrit en notation scientifique (7.78037341E+08) : lu comme "
    "0778037341",
    'avertissement ligne 9, Offre : "prepaid_mobilis" lu comme PREPAID_MOBILIS',
    "avertissement ligne 12, Numéro : 0771234567 ressemble à un numéro Djezzy mais l'offre "
    "PREPAID_MOBILIS est Mobilis ; les numéros peuvent être portés, donc vérifiez-le",
    "lignes : 9 (mobile 6 valide(s) / 3 invalide(s))",
    f"total des lignes valides : 5{NBSP}750,00 DA de valeur faciale, 5{NBSP}622,50 DA de coût",
    "lignes invalides : 3, rien n'a été envoyé",
]


@pytest.mark.parametrize(
    ("where", "env"),
    [("before", None), ("after", None), ("env", {"BULK_TOPUP_LANG": "fr_DZ.UTF-8"})],
)
def test_validate_in_french(tmp_path: Path, where: str, env: dict[str, str] | None) -> None:
    args = ["validate", str(SAMPLES / "messy.csv")]
    if where == "before":
        args = ["--lang", "fr", *args]
    elif where == "after":
        args = [*args, "--lang", "fr"]
    result = cli(tmp_path, *args, env=env)
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    for expected in MESSY_FR:
        assert any(expected in line for line in lines), (expected, result.output)
    for english in ("row ", "error ", "warning ", "invalid rows", "read as"):
        assert english not in result.output


def test_english_is_what_it_was(tmp_path: Path) -> None:
    """No option, `--lang en`, and `--lang en` over a French environment: the same English."""
    plain = cli(tmp_path, "validate", str(SAMPLES / "messy.csv"))
    chosen = cli(tmp_path, "--lang", "en", "validate", str(SAMPLES / "messy.csv"))
    over = cli(
        tmp_path, "--lang", "en", "validate", str(SAMPLES / "messy.csv"),
        env={"BULK_TOPUP_LANG": "fr"},
    )  # fmt: skip
    assert plain.output == chosen.output == over.output
    assert 'error   row 11, Numéro: "77803734" has 8 digits; an Algerian mobile number has 10 ' \
           "(0XXXXXXXXX)" in plain.output  # fmt: skip
    assert "total of valid rows: 5,750.00 DA face value, 5,622.50 DA cost" in plain.output
    assert "3 invalid rows, nothing sent" in plain.output


def test_validate_json_speaks_french_too(tmp_path: Path) -> None:
    result = cli(
        tmp_path, "--lang", "fr", "validate", str(SAMPLES / "messy.csv"), "--format", "json"
    )
    data = json.loads(result.output)
    row11 = next(r for r in data["rows"] if r["row"] == 11)
    assert row11["errors"] == [
        {"column": "Numéro", "field": "phone",
         "message": '"77803734" a 8 chiffres ; un numéro mobile algérien en a 10 (0XXXXXXXXX)'}
    ]  # fmt: skip


# --- refusals, the run's facts and closing lines, status -----------------------------------------


def test_a_refusal_in_french(tmp_path: Path) -> None:
    result = cli(
        tmp_path, "run", str(SAMPLES / "orders.csv"), "--batch", "r1", "--yes",
        "--max-total", "100", "--lang", "fr",
    )  # fmt: skip
    assert result.exit_code == 6, result.output
    assert (
        f"erreur : cette exécution enverrait 12{NBSP}280,00 DA de recharges, plus que --max-total "
        "100,00 DA ; rien n'a été envoyé"
    ) in result.stderr


def test_a_run_without_a_terminal_refuses_in_french(tmp_path: Path) -> None:
    result = cli(tmp_path, "--lang", "fr", "run", str(SAMPLES / "orders.csv"), "--batch", "r2")
    assert result.exit_code == 6
    assert (
        "erreur : run demande une confirmation et aucun terminal ne permet de la demander ; "
        "passez --yes pour une exécution sans surveillance (cron) ; rien n'a été envoyé"
    ) in result.stderr


def test_a_run_and_its_status_in_french(tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    result = cli(
        tmp_path, "--lang", "fr", "run", str(SAMPLES / "orders.csv"), "--batch", "r3", "--yes",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 5, result.output
    output = result.output
    assert "environnement : clé SANDBOX (READ-WRITE)" in output
    assert (
        f"à envoyer : 13 lignes, 12{NBSP}280,00 DA de valeur faciale, 12{NBSP}106,50 DA de coût "
        f"estimé ; solde 500{NBSP}000,00 DA"
    ) in output
    assert "lignes : FULFILLED 9, PARTIALLY_FILLED 1, REFUNDED 2, UNKNOWN_ERROR 1" in output
    assert "cartes cadeaux livrées : 5 (ligne 12 : " in output
    assert f"résultats : {out}" in output
    assert "des lignes ne sont pas encore finales ; continuez avec :" in output
    assert "bulk-topup resume --batch r3" in output
    status = cli(tmp_path, "status", "--batch", "r3", "--lang", "fr", emulator=False)
    assert status.exit_code == 0
    assert status.output.splitlines()[0] == "lot r3 : 13 lignes (SANDBOX)"
    listing = cli(tmp_path, "--lang", "fr", "batches", emulator=False)
    assert listing.output.startswith("r3")
    missing = cli(tmp_path, "--lang", "fr", "status", "--batch", "nope", emulator=False)
    assert missing.exit_code == 2
    assert "erreur : il n'y a pas de lot 'nope' dans" in missing.stderr


def test_a_state_dir_that_is_a_file_in_french(tmp_path: Path) -> None:
    afile = tmp_path / "state"
    afile.write_text("not a folder")
    result = CliRunner().invoke(
        main,
        ["--lang", "fr", "run", str(SAMPLES / "orders.csv"), "--batch", "s1", "--yes",
         "--emulator", "--state-dir", str(afile)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert (
        f"erreur : le dossier d'état {afile} est un fichier, pas un dossier ; indiquez un autre "
        "--state-dir"
    ) in result.stderr


def test_a_malformed_key_file_in_french(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("first-line\nsecond-line\n")
    key.chmod(0o600)
    result = cli(tmp_path, "--lang", "fr", "catalog", "--api-key-file", str(key), emulator=False)
    assert result.exit_code == 2
    assert (
        f"erreur : le fichier de la clé API {key} contient plus d'une ligne ; il ne doit contenir "
        "que la clé API"
    ) in result.stderr
    assert "first-line" not in result.output  # a key, even a malformed one, is never shown


def test_every_command_takes_lang_and_refuses_a_language_it_does_not_speak(tmp_path: Path) -> None:
    for name, command in main.commands.items():
        commands = getattr(command, "commands", {name: command})
        for sub in commands.values():
            assert any(p.name == "lang" for p in sub.params), sub.name
    assert "--lang [en|fr]" in CliRunner().invoke(main, ["--help"]).output
    assert "--lang [en|fr]" in CliRunner().invoke(main, ["keys", "new", "--help"]).output
    wrong = CliRunner().invoke(main, ["--lang", "de", "batches"])
    assert wrong.exit_code == 2 and "'de' is not a language bulk-topup speaks" in wrong.output
    # An environment value it does not speak means English, never a failed cron job.
    listing = cli(tmp_path, "batches", env={"BULK_TOPUP_LANG": "de"}, emulator=False)
    assert listing.exit_code == 0 and "no batches in" in listing.output


# --- what is kept stays English; what is shown follows the reader --------------------------------


def test_a_french_run_keeps_english_in_the_journal(tmp_path: Path) -> None:
    sheet = tmp_path / "paie.csv"
    sheet.write_text(
        "Numéro,Offre,Montant,Nom\n"
        "0661234567,PREPAID_MOBILIS,1 000,Amina\n"  # repaired: a warning on its row
        "778037340,PREPAID_DJEZZY,500,Karim\n"  # its leading 0 restored: a warning too
        "12345,PREPAID_MOBILIS,500,Nadia\n"  # invalid
    )
    state = tmp_path / "state"
    run = CliRunner().invoke(
        main,
        ["--lang", "fr", "run", str(sheet), "--batch", "paie", "--yes", "--skip-invalid",
         "--emulator", "--emulator-speed", "200", "--state-dir", str(state)],
    )  # fmt: skip
    assert run.exit_code == 4, run.output  # one invalid row
    db = sqlite3.connect(batch_path(state, "paie"))
    problems = [json.loads(p) for (p,) in db.execute("SELECT problems FROM rows ORDER BY idx")]
    details = {d for (d,) in db.execute("SELECT detail FROM events")}
    db.close()
    assert problems[0][0]["message"] == '"1 000" read as 1000 DA'
    assert problems[1][0]["message"] == "leading 0 restored (lost by Excel): read as 0778037340"
    assert problems[2][0]["message"].startswith('"12345" has 5 digits')
    assert {"from the sheet", "intent committed before the POST"} <= details
    for language, note, error in [
        ("en", 'Montant: "1 000" read as 1000 DA', 'Numéro: "12345" has 5 digits'),
        ("fr", 'Montant : "1 000" lu comme 1000 DA', 'Numéro : "12345" a 5 chiffres'),
    ]:
        out = tmp_path / f"r-{language}.json"
        result = CliRunner().invoke(
            main,
            ["report", "--batch", "paie", "--state-dir", str(state), "--out", str(out),
             "--lang", language],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        rows = json.loads(out.read_text())["rows"]
        assert note in rows[0]["notes"]
        assert rows[2]["error_message"].startswith(error)


@pytest.mark.anyio
async def test_a_stop_reason_is_kept_in_english_and_shown_in_french(kit: Kit) -> None:
    await kit.load(*[mobile(f"06612345{i:02d}") for i in range(4)])
    kit.app.world.balance = 600  # enough for one row: the balance runs out mid-run
    with use_language("fr"):
        outcome = await kit.run(RunOptions(concurrency=1), preflight=False)
    assert outcome.stop_reason == BALANCE_RAN_OUT
    with kit.journal() as j:
        assert j.get_meta("stop_reason") == BALANCE_RAN_OUT
    out = kit.state / "r.json"
    result = await invoke(
        ["report", "--batch", "b", "--state-dir", str(kit.state), "--out", str(out), "--lang", "fr"]
    )
    assert result.exit_code == 0, result.output
    said = json.loads(out.read_text())["summary"]["stop_reason"]
    assert said.startswith(
        "le solde est épuisé : les lignes restantes n'ont pas été envoyées ; approvisionnez le "
        "compte, puis lancez resume"
    )


def test_stored_sentences_are_shown_in_the_readers_language() -> None:
    nested = BREAKER.format(n=5, what=KEY_REFUSED.format(code="AUTH", message="Invalid key"))
    with use_language("fr"):
        for template in STORED:
            assert display(template) != template, template
        assert display(nested) == (
            "l'API a échoué 5 fois de suite (dernière fois : l'API a refusé la clé (AUTH : "
            "Invalid key)) ; arrêté pour ne pas la surcharger"
        )
        assert display(INTERRUPTED_BY.format(signal="SIGINT")) == "interrompu (SIGINT)"
        assert display(NO_FREE_GIFT_MATCH.format(n=2)).endswith(
            "(correspondances déjà prises par d'autres lignes : 2)"
        )
        # The provider's own words, or anything else, are shown as they were written.
        assert display("Insufficient balance") == "Insufficient balance"
        assert display(None) == ""
    assert display(nested) == nested  # English is what is stored


async def no_wait(seconds: float) -> None:
    """Retries take no time."""


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "french"),
    [
        ("refused", "impossible de joindre l'API OneClickDz sur api.test (GET /v3/account/balance)"
                    " : ConnectError"),
        ("cut", "la connexion a échoué avant l'arrivée de la réponse de l'API à POST "
                "/v3/mobile/send (ReadError)"),
        ("500", "l'API a échoué en traitant POST /v3/mobile/send (HTTP 500) ; la commande existe "
                "peut-être"),
        ("html", "l'API OneClickDz a répondu à GET /v3/account/balance par quelque chose que "
                 "bulk-topup ne sait pas lire : "),
    ],
)  # fmt: skip
async def test_the_api_clients_failures_are_shown_in_french(answer: str, french: str) -> None:
    """The client raises in English (a row's error and a breaker's last failure are stored so);
    the faces show them through `display()`. A change of the client's wording fails here."""

    def reply(request: httpx.Request) -> httpx.Response:
        if answer == "refused":
            raise httpx.ConnectError("refused", request=request)
        if answer == "cut":
            raise httpx.ReadError("reset", request=request)
        if answer == "500":
            return httpx.Response(500, text="oops")
        return httpx.Response(200, text="<html>maintenance</html>")

    client = OneClickClient(
        "http://api.test", "k", transport=httpx.MockTransport(reply),
        retry=RetryPolicy(attempts=1, sleep=no_wait),
    )  # fmt: skip
    async with client:
        with pytest.raises(ApiError) as raised:
            if answer in ("cut", "500"):
                await client.send_mobile(
                    plan_code="PREPAID_MOBILIS", msisdn="0661234567", amount=500, ref="r-1"
                )
            else:
                await client.balance()
    english = raised.value.message
    with use_language("fr"):
        assert display(english).startswith(french), english
    assert display(english) == english


# --- the building blocks -------------------------------------------------------------------------


def test_text_is_english_as_a_value_and_french_when_shown() -> None:
    repair = Text(N_("leading 0 restored (lost by Excel)"))
    text = Text(N_("{repair}: read as {number}"), repair=repair, number="0661234567")
    assert text == "leading 0 restored (lost by Excel): read as 0661234567"
    assert json.dumps(text) == json.dumps(str(text))  # stored as its English
    with use_language("fr"):
        assert shown(text) == "0 initial rétabli (perdu par Excel) : lu comme 0661234567"
        assert shown(Text.from_json(json.loads(json.dumps(text.to_json())))) == shown(text)
        # A user's value is never translated, even when it reads like a message.
        assert shown(Text(N_('"{text}" is not an amount in dinars'), text="none")) == (
            '"none" n\'est pas un montant en dinars'
        )
    with pytest.raises(ValueError):
        Text.from_json({"no": "template"})


def test_amounts_are_written_the_readers_way() -> None:
    assert money(1234567.5) == "1,234,567.50" and number(100000) == "100,000"
    with use_language("fr"):
        assert money(1234567.5) == f"1{NBSP}234{NBSP}567,50"
        assert number(100000) == f"100{NBSP}000"
        assert money(0) == "0,00"


# --- a guard: no message raised to a person in plain English -------------------------------------

#: Modules whose errors reach a person; every sentence they raise goes through the catalogue.
SPEAKING = ["service", "changes", "runner", "config", "statedir", "journal", "crash", "approval",
            "policy", "planfile", "signing", "audit", "sheet", "readers/opening",
            "readers/extent", "readers/xlsx", "cli/__init__", "cli/sheets", "cli/batch",
            "cli/approvals", "cli/serve", "cli/journals", "cli/terminal"]  # fmt: skip


def test_no_error_is_raised_in_untranslated_words() -> None:
    """A `raise SomeError(f"...")` or `raise SomeError("...")` is a sentence the extractor never
    sees: French would silently fall back to English."""
    found = []
    for name in SPEAKING:
        path = PACKAGE / f"{name}.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            args = node.exc.args
            if args and isinstance(args[0], ast.JoinedStr | ast.Constant | ast.BinOp):
                found.append(f"{name}.py:{node.lineno}")
    assert not found, found
