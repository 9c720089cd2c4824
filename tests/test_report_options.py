"""What the user chooses about the results: the format (from the file's name), the CSV dialect,
the time zone, the language of the terminal, and card codes kept in custody."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import zipfile
import zoneinfo
from datetime import datetime
from pathlib import Path
from typing import Any

import msoffcrypto
import pytest
from click.testing import CliRunner
from msoffcrypto.exceptions import InvalidKeyError
from openpyxl import load_workbook

from bulk_topup.cli import main
from bulk_topup.report.settings import time_zone

from .runkit import Kit
from .test_report import build_every_state, invoke, read, table

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse 3 batterie é"


@pytest.fixture
async def every_state(app, clock, tmp_path: Path) -> Kit:
    return await build_every_state(app, clock, tmp_path)


def report(kit: Kit, *args: str) -> list[str]:
    return ["report", "--batch", "b", "--state-dir", str(kit.state), *args]


# --- the format follows the name -----------------------------------------------------------------


async def test_the_format_follows_the_files_name(every_state: Kit, tmp_path: Path) -> None:
    for name in ("r.json", "r.csv", "r.xlsx", "R.JSON"):
        result = await invoke(report(every_state, "--out", str(tmp_path / name)))
        assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["batch"] == "b"
    assert json.loads((tmp_path / "R.JSON").read_text())["summary"]["batch"] == "b"
    assert (tmp_path / "r.csv").read_bytes().startswith(b"\xef\xbb\xbfsheet row,")
    assert zipfile.is_zipfile(tmp_path / "r.xlsx")
    # --format says what a name without a known extension cannot.
    result = await invoke(report(every_state, "--out", str(tmp_path / "r.txt"), "--format", "csv"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.txt").read_text(encoding="utf-8-sig").startswith("sheet row,")


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--out", "r.json", "--format", "xlsx"],
            "error: --format xlsx does not match r.json, whose name says json; change one of them",
        ),
        (
            ["--out", "r.txt"],
            "error: the format cannot be told from the name r.txt: end it in .xlsx, .csv or "
            ".json, or give --format",
        ),
        (
            ["--tz", "Mars/Olympus"],
            "error: 'Mars/Olympus' is not a time zone; write one such as Africa/Algiers, "
            "Europe/Paris or UTC",
        ),
        (
            ["--codes-file", "codes.xlsx"],
            "error: --codes-file needs a password: put it in a file named by "
            "--codes-password-file, or in the environment variable BULK_TOPUP_CODES_PASSWORD "
            "(never on the command line)",
        ),
        (
            ["--codes-file", "codes.csv", "--codes-password-file", "pw"],
            "error: the codes file codes.csv must end in .xlsx: it is an encrypted Excel workbook",
        ),
        (
            ["--codes-password-file", "pw"],
            "error: --codes-password-file is only used with --codes-file",
        ),
    ],
)
async def test_options_that_cannot_work_are_refused_in_a_sentence(
    every_state: Kit, tmp_path: Path, args: list[str], message: str, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pw").write_text(PASSWORD)
    result = await invoke(report(every_state, *args), env={"BULK_TOPUP_CODES_PASSWORD": ""})
    assert result.exit_code == 2, result.output
    assert result.output.strip() == message
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "codes.xlsx").exists()


async def test_refusals_speak_the_users_language(every_state: Kit, tmp_path: Path) -> None:
    result = await invoke(
        report(every_state, "--out", "r.json", "--format", "csv"), env={"BULK_TOPUP_LANG": "fr"}
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "erreur : --format csv ne correspond pas à r.json, dont le nom dit json ; changez l'un "
        "des deux"
    )


# --- CSV -----------------------------------------------------------------------------------------


async def test_csv_for_a_french_locale(every_state: Kit, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    result = await invoke(
        report(every_state, "--out", str(out), "--csv-dialect", "excel-fr", "--lang", "fr")
    )
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    header = rows[0]
    assert header[:2] == ["ligne", '\'=HYPERLINK("http://evil.example","click")'] or (
        "ligne" in header and "débité" in header
    )
    col = {name: i for i, name in enumerate(header)}
    first = rows[1]
    assert first[col["débité"]] == "480,00" and first[col["valeur faciale"]] == "500,00"
    assert first[col["état"]] == "livré"
    assert datetime.strptime(first[col["envoyé le"]], "%Y-%m-%d %H:%M:%S")


async def test_csv_cells_and_headers_never_run_as_formulas(app, clock, tmp_path: Path) -> None:
    kit = Kit(app, clock, tmp_path / "state")
    from .runkit import mobile

    await kit.load(
        {**mobile("0661234567"), "=HYPERLINK(\"http://x\")": "+213 661 23 45 67",
         "note": "-1+1", "who": "@SUM(A1)", "tab": "\t=1", "cr": "\r=1", "plain": "Amina"}
    )  # fmt: skip
    with kit.journal() as j:
        from bulk_topup.report import write_results

        out = write_results(j, tmp_path / "r.csv", "csv")
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"), newline="")))
    header, line = rows[0], dict(zip(rows[0], rows[1], strict=True))
    assert '\'=HYPERLINK("http://x")' in header and '=HYPERLINK("http://x")' not in header
    # The number stays whole and readable after the apostrophe that makes it text.
    assert line['\'=HYPERLINK("http://x")'] == "'+213 661 23 45 67"
    assert line["note"] == "'-1+1" and line["who"] == "'@SUM(A1)"
    assert line["tab"] == "'\t=1" and line["cr"] == "'\r=1"
    assert line["plain"] == "Amina" and line["phone"] == "0661234567"
    for cell in [*header, *rows[1]]:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


# --- time zones ----------------------------------------------------------------------------------


async def test_the_time_zone_is_the_users(every_state: Kit, tmp_path: Path) -> None:
    for tz, name in (("UTC", "utc.xlsx"), ("Asia/Tokyo", "tokyo.xlsx"), (None, "default.xlsx")):
        args = ["--out", str(tmp_path / name)] + (["--tz", tz] if tz else [])
        result = await invoke(report(every_state, *args))
        assert result.exit_code == 0, result.output
    times = {}
    for name in ("utc.xlsx", "tokyo.xlsx", "default.xlsx"):
        col, lines = table(read(tmp_path / name)["Results"])
        times[name] = lines[0][col["sent at"]]
    assert times["default.xlsx"] - times["utc.xlsx"] == (times["default.xlsx"] - times["utc.xlsx"])
    assert (times["default.xlsx"] - times["utc.xlsx"]).total_seconds() == 3600  # Algiers, UTC+1
    assert (times["tokyo.xlsx"] - times["utc.xlsx"]).total_seconds() == 9 * 3600
    # The environment's default, when no option says otherwise.
    result = await invoke(
        report(every_state, "--out", str(tmp_path / "env.xlsx")), env={"BULK_TOPUP_TZ": "UTC"}
    )
    assert result.exit_code == 0
    col, lines = table(read(tmp_path / "env.xlsx")["Results"])
    assert lines[0][col["sent at"]] == times["utc.xlsx"]


def test_time_zones_work_without_a_system_database() -> None:
    """tzdata (a dependency) stands in where the machine has no /usr/share/zoneinfo."""
    zoneinfo.reset_tzpath(to=[])
    try:
        zoneinfo.ZoneInfo.clear_cache()
        zone = time_zone("Africa/Algiers", env={})
        assert zone.utcoffset(datetime(2026, 7, 1)).total_seconds() == 3600
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


# --- the terminal's language ---------------------------------------------------------------------


def test_a_run_says_its_last_lines_in_french(tmp_path: Path) -> None:
    """The run's closing lines follow BULK_TOPUP_LANG (as they follow --lang)."""
    sheet = tmp_path / "orders.csv"
    sheet.write_text("Numéro,Offre,Montant,Nom\n0661234567,PREPAID_MOBILIS,500,Amina\n")
    result = CliRunner().invoke(
        main,
        ["run", str(sheet), "--batch", "fr-1", "--emulator", "--emulator-speed", "200", "--yes",
         "--state-dir", str(tmp_path / "state")],
        env={"BULK_TOPUP_LANG": "fr", "BULK_TOPUP_TZ": "UTC"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "lignes : FULFILLED 1" in result.output
    assert "résultats : " in result.output
    assert "terminé : toutes les lignes ont été servies" in result.output
    sheets = read(tmp_path / "orders-fr-1-results.xlsx")
    assert "Résultats" in sheets
    summary = {r[0]: r[1] for r in sheets["Résumé"] if r[0]}
    assert summary["heures exprimées en"] == "UTC"  # the environment's zone, without an option


# --- codes in custody ----------------------------------------------------------------------------


def decrypt(path: Path, password: str) -> bytes:
    with path.open("rb") as f:
        office = msoffcrypto.OfficeFile(f)
        office.load_key(password=password, verify_password=True)
        out = io.BytesIO()
        office.decrypt(out)
    return out.getvalue()


async def custody_run(kit: Kit, tmp_path: Path, *extra: str, env: Any = None) -> tuple[Path, Path]:
    out, codes = tmp_path / "r.xlsx", tmp_path / "vault" / "codes.xlsx"
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    result = await invoke(
        report(kit, "--out", str(out), "--codes-file", str(codes), "--codes-password-file",
               str(pw), *extra),
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"card codes: {codes}" in result.output and "warning" not in result.output
    return out, codes


async def test_codes_in_custody(every_state: Kit, tmp_path: Path) -> None:
    out, codes = await custody_run(every_state, tmp_path)
    with every_state.journal() as j:
        rows = j.rows()
    internet_code = rows[4].card_code
    gift_codes = [c["value"] for r in rows for c in r.cards]
    assert internet_code and len(gift_codes) == 3
    # The results carry no code, anywhere in the file.
    raw = b"".join(zipfile.ZipFile(out).read(n) for n in zipfile.ZipFile(out).namelist())
    for code in [internet_code, *gift_codes]:
        assert code.encode() not in raw
    sheets = read(out)
    col, lines = table(sheets["Results"])
    assert lines[4][col["card code"]].endswith(internet_code[-4:])
    assert lines[4][col["card code"]].startswith("•")
    gcol, glines = table(sheets["Gift cards"])
    assert all(c[gcol["card code"]].startswith("••") for c in glines)
    summary = {r[0]: r[1] for r in sheets["Summary"] if r[0]}
    assert summary["card codes"] == "masked here; in full in codes.xlsx (encrypted)"
    # The codes file: encrypted (an OLE container, not a zip), 0600, opened only with the password.
    assert codes.read_bytes()[:8] == bytes.fromhex("d0cf11e0a1b11ae1")
    assert not zipfile.is_zipfile(codes) and codes.stat().st_mode & 0o077 == 0
    with pytest.raises(zipfile.BadZipFile):  # without the password, it is no workbook at all
        load_workbook(codes)
    for wrong in ("correct horse", PASSWORD.upper(), PASSWORD + " "):
        with pytest.raises(InvalidKeyError):
            decrypt(codes, wrong)
    clear = load_workbook(io.BytesIO(decrypt(codes, PASSWORD)))
    ws = clear.worksheets[0]
    header = [c.value for c in ws[1]]
    found = {r[header.index("card code")]: r for r in ws.iter_rows(min_row=2, values_only=True)}
    assert set(found) >= {internet_code, *gift_codes}
    assert found[internet_code][header.index("Nom")] == "Office Alger"
    assert found[gift_codes[0]][header.index("Matricule")] == "E-06"
    assert isinstance(found[internet_code][header.index("issued at")], datetime)


async def test_codes_in_custody_for_csv_and_json_too(every_state: Kit, tmp_path: Path) -> None:
    with every_state.journal() as j:
        codes = [c["value"] for r in j.rows() for c in r.cards] + [j.rows()[4].card_code]
    env = {"BULK_TOPUP_CODES_PASSWORD": PASSWORD}
    for name in ("r.csv", "r.json"):
        result = await invoke(
            report(every_state, "--out", str(tmp_path / name), "--codes-file",
                   str(tmp_path / f"{name}.codes.xlsx")),
            env=env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        text = (tmp_path / name).read_text(encoding="utf-8-sig")
        assert not any(code in text for code in codes), name
        assert decrypt(tmp_path / f"{name}.codes.xlsx", PASSWORD)[:2] == b"PK"
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["codes_masked"] is True


async def test_a_password_file_others_can_read_is_warned_about(
    every_state: Kit, tmp_path: Path
) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    pw.chmod(0o644)
    result = await invoke(
        report(every_state, "--out", str(tmp_path / "r.xlsx"), "--codes-file",
               str(tmp_path / "c.xlsx"), "--codes-password-file", str(pw))
    )  # fmt: skip
    assert result.exit_code == 0
    assert f"warning: the password file {pw} can be read by other users" in result.output
    assert PASSWORD not in result.output


LO_PYTHON = "/usr/bin/python3"


def _uno() -> bool:
    if shutil.which("soffice") is None or not Path(LO_PYTHON).exists():
        return False
    return subprocess.run([LO_PYTHON, "-c", "import uno"], capture_output=True).returncode == 0


@pytest.mark.office
@pytest.mark.skipif(not _uno(), reason="LibreOffice (with python3-uno) is not installed")
async def test_libreoffice_opens_the_codes_only_with_the_password(
    every_state: Kit, tmp_path: Path
) -> None:
    _, codes = await custody_run(every_state, tmp_path)
    script = Path(__file__).with_name("lo_open.py")

    def open_with(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LO_PYTHON, str(script), str(codes), password, str(tmp_path / "lo")],
            capture_output=True,
            text=True,
            timeout=120,
        )

    opened = open_with(PASSWORD)
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert "SANDBOX-CARD-1" in opened.stdout and "Office Alger" in opened.stdout
    for wrong in ("", "wrong"):
        refused = open_with(wrong)
        assert refused.returncode == 3 and refused.stdout.startswith("REFUSED"), refused.stdout
