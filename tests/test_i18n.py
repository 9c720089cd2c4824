"""The catalogues: every message marked in the code has its French, the compiled catalogue is the
one its source says, and a language is set per context, not per process."""

from __future__ import annotations

import gettext
import io
import re
import threading
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import bulk_topup
from bulk_topup.i18n import (
    EXTRA_KEYWORDS,
    LOCALE_DIR,
    _,
    current_language,
    listed,
    ngettext,
    normalise_language,
    pgettext,
    use_language,
)

PACKAGE = Path(bulk_topup.__file__).parent
FRENCH = LOCALE_DIR / "fr" / "LC_MESSAGES" / "bulk_topup.po"
PLACEHOLDER = re.compile(r"\{[^{}]*\}|&[A-Z]")  # str.format fields; footer codes (&P, &D...)


def marked_messages() -> dict[tuple[str | None, str], str]:
    """(context, message id) -> where, for every message the code marks for translation."""
    found: dict[tuple[str | None, str], str] = {}
    keywords = {**DEFAULT_KEYWORDS, **EXTRA_KEYWORDS}
    # The code, and the console's templates (Jinja's extractor), as babel.cfg says.
    method_map = [("console/templates/**.html", "jinja2"), ("**.py", "python")]
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(PACKAGE), method_map=method_map, keywords=keywords, comment_tags=()
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found[(context, msgid)] = f"{filename}:{lineno}"
    return found


def french_catalog():
    with FRENCH.open("rb") as f:
        return read_po(f, locale="fr")


def test_every_marked_message_has_its_french() -> None:
    """Fails when a message is marked in the code and the French catalogue lacks it (run
    `make i18n`, translate the new entries, run it again)."""
    catalog = french_catalog()
    missing = []
    for (context, msgid), where in sorted(marked_messages().items(), key=str):
        entry = catalog.get(msgid, context=context)
        translated = entry is not None and (
            all(entry.string) if isinstance(entry.string, tuple) else bool(entry.string)
        )
        if not translated or (entry is not None and entry.fuzzy):
            missing.append(f"{where}: {msgid!r}" + (f" (context {context!r})" if context else ""))
    assert not missing, "no French for:\n" + "\n".join(missing)
    assert len(marked_messages()) > 100  # the extractor did see the code


def test_translations_keep_their_placeholders() -> None:
    """A translation that drops or renames `{path}` would raise KeyError (or lose the value)
    when shown."""
    for message in french_catalog():
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = sorted(set(PLACEHOLDER.findall(ids[-1])))
        for text in strings:
            assert sorted(set(PLACEHOLDER.findall(text))) == wanted, (message.id, text)


def test_the_committed_mo_is_compiled_from_the_po() -> None:
    """A fresh install reads the committed .mo: it must say what the .po says."""
    compiled = io.BytesIO()
    write_mo(compiled, french_catalog())
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)
    with (FRENCH.with_suffix(".mo")).open("rb") as f:
        committed = gettext.GNUTranslations(f)
    assert committed._catalog == expected._catalog  # type: ignore[attr-defined]
    assert committed.plural(2) == 1 and committed.plural(1) == 0 and committed.plural(0) == 0


def test_french_and_english() -> None:
    with use_language("fr"):
        assert current_language() == "fr"
        assert _("results: {path}").format(path="r.xlsx") == "résultats : r.xlsx"
        assert ngettext("{n} row", "{n} rows", 1).format(n=1) == "1 ligne"
        assert ngettext("{n} row", "{n} rows", 2).format(n=2) == "2 lignes"
        assert pgettext("sheet", "Retry") == "À renvoyer"
        assert listed(["en attente", "2 lignes"]) == "en attente ; 2 lignes"
        with use_language("en"):
            assert _("results: {path}") == "results: {path}"
        assert current_language() == "fr"
    assert _("results: {path}") == "results: {path}"
    assert listed(["pending", "2 rows"]) == "pending; 2 rows"


def test_the_environment_decides_when_nothing_else_does(monkeypatch) -> None:
    monkeypatch.setenv("BULK_TOPUP_LANG", "fr_DZ.UTF-8")
    assert current_language() == "fr" and _("rows") == "lignes"
    with use_language("en"):
        assert _("rows") == "rows"
    monkeypatch.setenv("BULK_TOPUP_LANG", "de")  # not spoken: English, not an error mid-run
    assert current_language() == "en"
    assert normalise_language("FR") == "fr" and normalise_language("xx") is None


def test_two_contexts_speak_two_languages_at_once() -> None:
    """A console serving two users: each thread (or task) keeps its own language."""
    barrier = threading.Barrier(2)
    said: dict[str, str] = {}

    def speak(lang: str) -> None:
        with use_language(lang):
            barrier.wait(5)  # both inside their `with` at the same time
            said[lang] = _("rows")
            barrier.wait(5)

    threads = [threading.Thread(target=speak, args=(lang,)) for lang in ("fr", "en")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert said == {"fr": "lignes", "en": "rows"}
