"""Cells of text to the values they certainly mean, or a sentence saying why not.

Excel eats leading zeros and writes long numbers in scientific notation; clerks type `+213`,
spaces, dots and dashes, `1 000` and `1000,00`. What is certain is repaired and the repair is
returned, so the caller can report it; what is ambiguous is refused (money is not guessed).
Sentences are `Text`: English as a value, shown in the reader's language.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .i18n import N_, Text

MOBILE_RE = re.compile(r"^0[567][0-9]{8}$")
INTERNET_RE = {"ADSL": re.compile(r"^0[0-9]{8}$"), "4G": re.compile(r"^213[0-9]{9}$")}
#: (prefix, characters it stands for, repair note): international forms of a mobile number
MOBILE_PREFIXES = [
    ("+213", 4, N_("+213 replaced by 0")),
    ("00213", 5, N_("00213 replaced by 0")),
    ("213", 3, N_("213 replaced by 0")),
]
SEPARATORS_REMOVED = N_("spaces or separators removed")
ARABIC_DIGITS = N_("written in Arabic-Indic digits")
#: ٠١٢٣٤٥٦٧٨٩ (Arabic-Indic) and ۰۱۲۳۴۵۶۷۸۹ (Eastern Arabic-Indic) as 0-9
_TO_ASCII = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
ZERO_RESTORED = N_("leading 0 restored (lost by Excel)")
_MAX_NUMBER_DIGITS = 15  # no amount, quantity or telephone number is longer
_CLIP = 40


def clip(cell: str) -> str:
    """A cell as quoted in a message: whole when short, its start and an ellipsis when long."""
    return cell if len(cell) <= _CLIP else cell[: _CLIP - 1] + "…"


_SPACES = re.compile(r"[\s\u00a0\u202f\u2009.\-()/]")


class _Mangled(ValueError):
    """A number Excel has already damaged: the digits it lost cannot be recovered."""

    def __init__(self, message: Text) -> None:
        super().__init__(message)
        self.message = message


def _too_long_scientific(t: str) -> Text:
    return Text(
        N_(
            '"{text}" is a number in scientific notation, far longer than a telephone number: '
            "format the column as text and type the number again"
        ),
        text=clip(t),
    )


def _digits_of_number(text: str) -> tuple[str | None, Text | None]:
    """The digits a number cell really holds, and a note when Excel had mangled it.

    Scientific notation is read only when it is exact: `7.78037340E+08` holds every digit of
    778037340; `7.7803734E+08` may have rounded its last digit away and `7.780373405E+08` is
    not a whole number, so both raise `_Mangled` (never silently truncated).
    """
    t = text.strip()
    m = re.fullmatch(r"[+]?(\d+)(?:[.,](\d+))?[eE]([+-]?\d+)", t)
    if m:
        if len(m.group(1)) + len(m.group(2) or "") > _MAX_NUMBER_DIGITS or len(m.group(3)) > 3:
            raise _Mangled(_too_long_scientific(t))
        try:
            d = Decimal(t.replace(",", "."))
        except InvalidOperation:
            return None, None
        whole, frac = m.group(1), m.group(2) or ""
        significant = len((whole + frac).lstrip("0")) or 1
        if d != d.to_integral_value() or d < 0:
            raise _Mangled(
                Text(
                    N_(
                        '"{text}" is a number in scientific notation that is not a whole number: '
                        "Excel changed it; format the column as text and type the number again"
                    ),
                    text=clip(t),
                )
            )
        digits = str(int(d))
        if len(digits) > _MAX_NUMBER_DIGITS:
            raise _Mangled(_too_long_scientific(t))
        if significant < len(digits):  # a digit rounded away reads as a trailing zero
            raise _Mangled(
                Text(
                    N_(
                        '"{text}" shows {shown} of the number\'s {n} digits: Excel hid the '
                        "others; format the column as text and type the number again"
                    ),
                    text=clip(t),
                    shown=significant,
                    n=len(digits),
                )
            )
        return digits, Text(N_("written in scientific notation ({text})"), text=clip(t))
    m = re.fullmatch(r"(\d+)[.,]0+", t)
    if m:
        return m.group(1), Text(N_("written as a decimal number ({text})"), text=clip(t))
    return None, None


def normalise_mobile(text: str) -> tuple[str, list[Text], Text | None]:
    """(number, repairs, error). The number is `0XXXXXXXXX` when there is no error."""
    repairs: list[Text] = []
    raw = text.strip()
    if raw.translate(_TO_ASCII) != raw:  # digits typed in Arabic script: the same digits
        raw = raw.translate(_TO_ASCII)
        repairs.append(Text(ARABIC_DIGITS))
    if not raw:
        return "", repairs, Text(N_("is empty; write the mobile number (0XXXXXXXXX)"))
    try:
        digits, note = _digits_of_number(raw)
    except _Mangled as e:
        return raw, repairs, e.message
    if digits is None:
        plus = raw.startswith("+")
        digits = _SPACES.sub("", raw.lstrip("+"))
        if digits != raw.lstrip("+"):
            repairs.append(Text(SEPARATORS_REMOVED))
        if plus:
            digits = "+" + digits
    elif note:
        repairs.append(note)
    if re.search(r"[^0-9+]", digits):
        return (
            raw,
            repairs,
            Text(N_('"{text}" contains characters that are not digits'), text=clip(raw)),
        )
    for prefix, cut, note_ in MOBILE_PREFIXES:
        if digits.startswith(prefix) and (prefix != "213" or len(digits) == 12):
            digits = "0" + digits[cut:]
            repairs.append(Text(note_))
            break
    else:
        if len(digits) == 9 and digits[0] in "567":
            digits = "0" + digits
            repairs.append(Text(ZERO_RESTORED))
    if "+" in digits:
        return (
            raw,
            repairs,
            Text(N_('"{text}" is not an Algerian number (+213...)'), text=clip(raw)),
        )
    if MOBILE_RE.match(digits):
        return digits, repairs, None
    if len(digits) != 10:
        return (
            raw,
            repairs,
            Text(
                N_('"{text}" has {n} digits; an Algerian mobile number has 10 (0XXXXXXXXX)'),
                text=clip(raw),
                n=len(digits),
            ),
        )
    return (
        raw,
        repairs,
        Text(
            N_('"{text}" is not a mobile number: it must start with 05, 06 or 07 (0XXXXXXXXX)'),
            text=clip(raw),
        ),
    )


def normalise_internet(kind: str, text: str) -> tuple[str, list[Text], Text | None]:
    repairs: list[Text] = []
    raw = text.strip()
    if raw.translate(_TO_ASCII) != raw:
        raw = raw.translate(_TO_ASCII)
        repairs.append(Text(ARABIC_DIGITS))
    if not raw:
        return "", repairs, Text(N_("is empty; write the line number"))
    try:
        digits, note = _digits_of_number(raw)
    except _Mangled as e:
        return raw, repairs, e.message
    if digits is None:
        digits = _SPACES.sub("", raw)
        if digits != raw:
            repairs.append(Text(SEPARATORS_REMOVED))
    elif note:
        repairs.append(note)
    plus = digits.startswith("+")
    digits = digits.lstrip("+")
    if not digits.isdigit():
        return (
            raw,
            repairs,
            Text(N_('"{text}" contains characters that are not digits'), text=clip(raw)),
        )
    if kind == "ADSL":
        # Only a number of exactly 8 digits lost just its leading zero; shorter ones lack
        # digits that nobody can restore.
        if len(digits) == 8:
            digits = "0" + digits
            repairs.append(Text(ZERO_RESTORED))
        if INTERNET_RE["ADSL"].match(digits):
            return digits, repairs, None
        return (
            raw,
            repairs,
            Text(
                N_(
                    '"{text}" is not an ADSL line number: 9 digits starting with 0 (0XXXXXXXX), '
                    "area code included"
                ),
                text=clip(raw),
            ),
        )
    if digits.startswith("00213"):
        digits = digits[2:]
        repairs.append(Text(N_("00 removed")))
    elif plus:
        repairs.append(Text(N_("+ removed")))
    elif len(digits) == 10 and digits.startswith("0"):
        digits = "213" + digits[1:]
        repairs.append(Text(N_("leading 0 replaced by 213")))
    if INTERNET_RE["4G"].match(digits):
        return digits, repairs, None
    return (
        raw,
        repairs,
        Text(
            N_('"{text}" is not a 4G number: 213 followed by 9 digits (213XXXXXXXXX)'),
            text=clip(raw),
        ),
    )


def parse_dzd(text: str) -> tuple[int | None, Text | None, Text | None]:
    """Whole dinars from `1000`, `1 000`, `1000,00`, `1.000,00`, `500 DA`; (amount, repair, error).

    Any form but plain digits is a repair, said on its row: `"1 000,00" read as 1000 DA`.
    """
    raw = text.strip()
    value, error = _dinars(raw)
    if value is not None and raw != str(value):
        return value, Text(N_('"{text}" read as {amount} DA'), text=clip(raw), amount=value), None
    return value, None, error


def _dinars(raw: str) -> tuple[int | None, Text | None]:
    t = re.sub(r"(?i)\s*(da|dzd|dinars?)\.?$", "", raw)
    t = re.sub(r"[\s\u00a0\u202f\u2009]", "", t)
    if not t:
        return None, None
    if len(re.sub(r"\D", "", t).lstrip("0")) > _MAX_NUMBER_DIGITS:
        return None, Text(N_('"{text}" is far too large to be an amount in dinars'), text=clip(raw))
    if re.fullmatch(r"\d+", t):
        return int(t), None
    m = re.fullmatch(r"(\d+)[.,](\d+)", t)
    if m:
        whole, frac = m.groups()
        if len(frac) == 3 and len(whole) <= 3:
            return None, Text(
                N_(
                    '"{text}" is ambiguous ({joined} DA, or {whole} DA with decimals?); write the '
                    "amount without a separator, e.g. {joined}"
                ),
                text=clip(raw),
                joined=int(whole + frac),
                whole=whole,
            )
        if set(frac) == {"0"}:
            return int(whole), None
        return None, Text(
            N_('"{text}" is not a whole number of dinars; amounts are whole DZD (no centimes)'),
            text=clip(raw),
        )
    m = re.fullmatch(r"(\d{1,3}(?:([.,])\d{3})+)(?:[.,](\d{1,2}))?", t)
    if m and (m.group(3) is None or set(m.group(3)) == {"0"}):
        return int(re.sub(r"[.,]", "", m.group(1))), None
    if re.fullmatch(r"-\d+([.,]\d+)?", t):
        return None, Text(N_('"{text}" is negative; write a positive whole amount'), text=clip(raw))
    return None, Text(N_('"{text}" is not an amount in dinars'), text=clip(raw))


def parse_quantity(text: str) -> tuple[int | None, Text | None]:
    t = text.strip()
    m = re.fullmatch(r"(\d+)([.,]0+)?", t)
    if m and len(m.group(1).lstrip("0")) > _MAX_NUMBER_DIGITS:
        return None, Text(N_('"{text}" is far too many cards'), text=clip(t))
    if m:
        return int(m.group(1)), None
    return None, Text(N_('"{text}" is not a whole number of cards'), text=clip(t))
