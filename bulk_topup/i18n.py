"""Words in the user's language: gettext catalogues, and a language per context.

The English text in the code is the message id; `locale/<lang>/LC_MESSAGES/bulk_topup.po` holds
its translation. Mark a message where it is written and translate it where it is shown:

    _("wrote {path}").format(path=path)            # translated now, in the current language
    ngettext("{n} row", "{n} rows", n).format(n=n)  # the plural the language wants
    pgettext("state", "delivered")                  # the same English in another sense
    npgettext("rows", "delivered", "delivered", n)  # both: "9 livrés" in French
    N_("not sent yet")                              # marked now (a constant), translated later
    NP_("state", "delivered")                       # the same, in a context

Placeholders are `str.format` names, never f-strings: the extractor reads the literal text.
Amounts and counts go in already written the reader's way: `money(1192.5)` is `1,192.50` in
English and `1 192,50` in French.

What is kept, not just shown, is kept in English and shown in the reader's language later:

    Text(N_("{n} cards: order at least 1"), n=0)   # a str whose value is the English sentence;
                                                    # shown(text) says it in the current language

A row problem is a `Text`: the journal stores its English and its template, so a workbook
written later in another language still speaks that language. (Sentences the runner stores as
plain strings, such as stop reasons, are read back by `texts.display()`.)

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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

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


def npgettext(context: str, singular: str, plural: str, n: int) -> str:
    """The singular or plural form of a message in the sense `context` says."""
    return translations(current_language()).npgettext(context, singular, plural, n)


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


# --- numbers the reader's way ------------------------------------------------------------------

#: (thousands separator, decimal mark) per language; French groups with a no-break space.
_NUMBER_MARKS = {"en": (",", "."), "fr": ("\u00a0", ",")}


def _marked(text: str) -> str:
    thousands, decimal = _NUMBER_MARKS.get(current_language(), (",", "."))
    return text.replace(",", "\0").replace(".", decimal).replace("\0", thousands)


def money(value: float) -> str:
    """An amount with two decimals, grouped the reader's way: `1,192.50` or `1 192,50`."""
    return _marked(f"{value:,.2f}")


def number(value: int) -> str:
    """A whole number grouped the reader's way: `100,000` or `100 000`."""
    return _marked(f"{value:,}")


def listed(parts: Iterable[str]) -> str:
    """Parts of a sentence one after the other, with the reader's semicolon: `a; b` or `a ; b`."""
    return pgettext("between parts of a list", "; ").join(parts)


# --- sentences kept in English, shown in the reader's language --------------------------------


class Text(str):
    """A sentence whose value is its English (what is stored, compared and logged) and that can
    be shown in the reader's language: `Text(N_("{n} cards: order at least 1"), n=0)`.

    Arguments that are themselves `Text` are shown in the reader's language too; any other
    argument (a cell as the user typed it, a number) is shown as it is, never translated."""

    template: str
    args: dict[str, Any]

    def __new__(cls, template: str, /, **args: Any) -> Text:
        self = super().__new__(cls, template.format(**args))
        self.template = template
        self.args = args
        return self

    def __reduce__(self) -> Any:  # copy and pickle keep the template
        return (_text_from, (self.template, self.args))

    def shown(self) -> str:
        """This sentence in the current language."""
        return _(self.template).format(**{k: shown(v) for k, v in self.args.items()})

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form that `Text.from_json` reads back (to store the template)."""
        return {
            "template": self.template,
            "args": {k: v.to_json() if isinstance(v, Text) else v for k, v in self.args.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> Text:
        """The `Text` of a stored `to_json()`; a damaged or foreign form gives None."""
        try:
            args = {
                k: cls.from_json(v) if isinstance(v, dict) else v for k, v in data["args"].items()
            }
            return cls(str(data["template"]), **args)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError):
            raise ValueError("not a stored Text") from None


def _text_from(template: str, args: dict[str, Any]) -> Text:
    return Text(template, **args)


def shown(value: Any) -> str:
    """`value` for a reader: a `Text` in the current language, anything else as it is."""
    return value.shown() if isinstance(value, Text) else str(value)
