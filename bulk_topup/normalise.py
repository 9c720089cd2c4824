"""Cells of text to the values they certainly mean, or a sentence saying why not.

Excel eats leading zeros and writes long numbers in scientific notation; clerks type `+213`,
spaces, dots and dashes, `1 000` and `1000,00`. What is certain is repaired and the repair is
returned, so the caller can report it; what is ambiguous is refused (money is not guessed).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MOBILE_RE = re.compile(r"^0[567][0-9]{8}$")
INTERNET_RE = {"ADSL": re.compile(r"^0[0-9]{8}$"), "4G": re.compile(r"^213[0-9]{9}$")}
#: (prefix, characters it stands for, repair note): international forms of a mobile number
MOBILE_PREFIXES = [
    ("+213", 4, "+213 replaced by 0"),
    ("00213", 5, "00213 replaced by 0"),
    ("213", 3, "213 replaced by 0"),
]
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009.\-()/]")


class _Mangled(ValueError):
    """A number Excel has already damaged: the digits it lost cannot be recovered."""


def _digits_of_number(text: str) -> tuple[str | None, str | None]:
    """The digits a number cell really holds, and a note when Excel had mangled it.

    Scientific notation is read only when it is exact: `7.78037340E+08` holds every digit of
    778037340; `7.7803734E+08` may have rounded its last digit away and `7.780373405E+08` is
    not a whole number, so both raise `_Mangled` (never silently truncated).
    """
    t = text.strip()
    m = re.fullmatch(r"[+]?(\d+)(?:[.,](\d+))?[eE]([+-]?\d+)", t)
    if m:
        try:
            d = Decimal(t.replace(",", "."))
        except InvalidOperation:
            return None, None
        whole, frac = m.group(1), m.group(2) or ""
        significant = len((whole + frac).lstrip("0")) or 1
        if d != d.to_integral_value() or d < 0:
            raise _Mangled(
                f'"{t}" is a number in scientific notation that is not a whole number: Excel '
                f"changed it; format the column as text and type the number again"
            )
        digits = str(int(d))
        if significant < len(digits):  # a digit rounded away reads as a trailing zero
            raise _Mangled(
                f'"{t}" shows {significant} of the number\'s {len(digits)} digits: Excel hid '
                f"the others; format the column as text and type the number again"
            )
        return digits, f"written in scientific notation ({t})"
    m = re.fullmatch(r"(\d+)[.,]0+", t)
    if m:
        return m.group(1), f"written as a decimal number ({t})"
    return None, None


def normalise_mobile(text: str) -> tuple[str, list[str], str | None]:
    """(number, repairs, error). The number is `0XXXXXXXXX` when there is no error."""
    repairs: list[str] = []
    raw = text.strip()
    if not raw:
        return "", repairs, "is empty; write the mobile number (0XXXXXXXXX)"
    try:
        digits, note = _digits_of_number(raw)
    except _Mangled as e:
        return raw, repairs, str(e)
    if digits is None:
        plus = raw.startswith("+")
        digits = _SPACES.sub("", raw.lstrip("+"))
        if digits != raw.lstrip("+"):
            repairs.append("spaces or separators removed")
        if plus:
            digits = "+" + digits
    elif note:
        repairs.append(note)
    if re.search(r"[^0-9+]", digits):
        return raw, repairs, f'"{raw}" contains characters that are not digits'
    for prefix, cut, note in MOBILE_PREFIXES:
        if digits.startswith(prefix) and (prefix != "213" or len(digits) == 12):
            digits = "0" + digits[cut:]
            repairs.append(note)
            break
    else:
        if len(digits) == 9 and digits[0] in "567":
            digits = "0" + digits
            repairs.append("leading 0 restored (lost by Excel)")
    if "+" in digits:
        return raw, repairs, f'"{raw}" is not an Algerian number (+213...)'
    if MOBILE_RE.match(digits):
        return digits, repairs, None
    if len(digits) != 10:
        return (
            raw,
            repairs,
            (f'"{raw}" has {len(digits)} digits; an Algerian mobile number has 10 (0XXXXXXXXX)'),
        )
    return (
        raw,
        repairs,
        (f'"{raw}" is not a mobile number: it must start with 05, 06 or 07 (0XXXXXXXXX)'),
    )


def normalise_internet(kind: str, text: str) -> tuple[str, list[str], str | None]:
    repairs: list[str] = []
    raw = text.strip()
    if not raw:
        return "", repairs, "is empty; write the line number"
    try:
        digits, note = _digits_of_number(raw)
    except _Mangled as e:
        return raw, repairs, str(e)
    if digits is None:
        digits = _SPACES.sub("", raw)
        if digits != raw:
            repairs.append("spaces or separators removed")
    elif note:
        repairs.append(note)
    plus = digits.startswith("+")
    digits = digits.lstrip("+")
    if not digits.isdigit():
        return raw, repairs, f'"{raw}" contains characters that are not digits'
    if kind == "ADSL":
        # Only a number of exactly 8 digits lost just its leading zero; shorter ones lack
        # digits that nobody can restore.
        if len(digits) == 8:
            digits = "0" + digits
            repairs.append("leading 0 restored (lost by Excel)")
        if INTERNET_RE["ADSL"].match(digits):
            return digits, repairs, None
        return (
            raw,
            repairs,
            (
                f'"{raw}" is not an ADSL line number: 9 digits starting with 0 '
                f"(0XXXXXXXX), area code included"
            ),
        )
    if digits.startswith("00213"):
        digits = digits[2:]
        repairs.append("00 removed")
    elif plus:
        repairs.append("+ removed")
    elif len(digits) == 10 and digits.startswith("0"):
        digits = "213" + digits[1:]
        repairs.append("leading 0 replaced by 213")
    if INTERNET_RE["4G"].match(digits):
        return digits, repairs, None
    return raw, repairs, f'"{raw}" is not a 4G number: 213 followed by 9 digits (213XXXXXXXXX)'


def parse_dzd(text: str) -> tuple[int | None, str | None, str | None]:
    """Whole dinars from `1000`, `1 000`, `1000,00`, `1.000,00`, `500 DA`; (amount, repair, error).

    Any form but plain digits is a repair, said on its row: `"1 000,00" read as 1000 DA`.
    """
    raw = text.strip()
    value, error = _dinars(raw)
    if value is not None and raw != str(value):
        return value, f'"{raw}" read as {value} DA', None
    return value, None, error


def _dinars(raw: str) -> tuple[int | None, str | None]:
    t = re.sub(r"(?i)\s*(da|dzd|dinars?)\.?$", "", raw)
    t = re.sub(r"[\s\u00a0\u202f\u2009]", "", t)
    if not t:
        return None, None
    if re.fullmatch(r"\d+", t):
        return int(t), None
    m = re.fullmatch(r"(\d+)[.,](\d+)", t)
    if m:
        whole, frac = m.groups()
        if len(frac) == 3 and len(whole) <= 3:
            return None, (
                f'"{raw}" is ambiguous ({int(whole + frac)} DA, or {whole} DA with decimals?); '
                f"write the amount without a separator, e.g. {int(whole + frac)}"
            )
        if set(frac) == {"0"}:
            return int(whole), None
        return None, f'"{raw}" is not a whole number of dinars; amounts are whole DZD (no centimes)'
    m = re.fullmatch(r"(\d{1,3}(?:([.,])\d{3})+)(?:[.,](\d{1,2}))?", t)
    if m and (m.group(3) is None or set(m.group(3)) == {"0"}):
        return int(re.sub(r"[.,]", "", m.group(1))), None
    if re.fullmatch(r"-\d+([.,]\d+)?", t):
        return None, f'"{raw}" is negative; write a positive whole amount'
    return None, f'"{raw}" is not an amount in dinars'


def parse_quantity(text: str) -> tuple[int | None, str | None]:
    t = text.strip()
    if re.fullmatch(r"\d+([.,]0+)?", t):
        return int(re.split(r"[.,]", t)[0]), None
    return None, f'"{t}" is not a whole number of cards'
