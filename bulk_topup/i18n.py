"""Words in the user's language: gettext catalogues, and a language per context.

The English text in the code is the message id; `locale/<lang>/LC_MESSAGES/bulk_topup.po` holds
its translation. Mark a message where it is written and translate it where it is shown:

    _("wrote {path}").format(path=path)            # translated now, in the current language
    ngettext("{n} row", "{n} rows", n).format(n=n)  # the plural the language wants
    pgettext("state", "delivered")                  # the same English in another sense
    N_("not sent yet")                              # marked now (a constant), translated later
    NP_("state", "delivered")                       # the same, in a context

Placeholders are `str.format` names, never f-strings: the extractor reads the literal text.

The language is a context variable, not a global: a command sets it with `use_language()` for
its own duration, and two requests served at once (a console, later) can speak two languages.
Without one set, `BULK_TOPUP_LANG` decides, else English.

The compiled `.mo` files are committed beside their `.po` sources, so a fresh `pip install -e .`
(or a wheel) needs no compiler and no Babel at run time; `make i18n` extracts, merges and compiles
with Babel, and a test fails when a `.mo` is older than its `.po` or a marked message has no
French translation.
"""

from __future__ import annotations

import functools
import gettext
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

DOMAIN = "bulk_topup"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
ENV_LANGUAGE = "BULK_TOPUP_LANG"

_language: ContextVar[str | None] = ContextVar("bulk_topup_language", default=None)


def normalise_language(text: str | None) -> str | None:
    """`fr`, `FR`, `fr_DZ.UTF-8`, `fr-FR` -> `fr`; a language bulk_topup does not speak -> None."""
    if not text:
        return None
    code = re.split(r"[_.@-]", text.strip().lower(), maxsplit=1)[0]
    return code if code in LANGUAGES else None


def current_language() -> str:
    """The language of this context: set by `use_language()`, else the environment's, else
    English."""
    return _language.get() or normalise_language(os.environ.get(ENV_LANGUAGE)) or DEFAULT_LANGUAGE


@contextmanager
def use_language(language: str | None) -> Iterator[str]:
    """Speak `language` inside the `with` block (None: keep the current one)."""
    chosen = normalise_language(language) if language else current_language()
    if chosen is None:
        raise ValueError(f"unknown language {language!r}; bulk-topup speaks {', '.join(LANGUAGES)}")
    token = _language.set(chosen)
    try:
        yield chosen
    finally:
        _language.reset(token)


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of `language` (English needs none: its ids are its words)."""
    if language == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, [language], fallback=True)


def _(message: str) -> str:
    """`message` in the current language."""
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form of a message, as the current language counts."""
    return translations(current_language()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """`message` in the current language, in the sense `context` says (a column, a state)."""
    return translations(current_language()).pgettext(context, message)


def N_(message: str) -> str:  # noqa: N802 (the gettext convention's name)
    """Mark `message` for translation without translating it now (module constants)."""
    return message


def NP_(context: str, message: str) -> str:  # noqa: N802
    """Mark `message` in `context` for translation without translating it now; show it with
    `pgettext(context, message)`."""
    return message


#: The markers the extractor looks for, beyond Babel's defaults (`_`, `ngettext`, `pgettext`,
#: `N_`...): `make i18n` and the catalogue test pass the same.
EXTRA_KEYWORDS = {"NP_": ((1, "c"), 2)}
