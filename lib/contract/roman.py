"""The domain: integers 1..3999 to canonical Roman numerals and back.

Canonical means the one spelling the subtractive rules allow: 4 is IV (never IIII), 90 is XC
(never LXXXX), 1994 is MCMXCIV. Anything else is refused with a message that says what is wrong,
never answered with a wrong number. Silver validation uses the same functions to check that a
successful event's output really is the conversion of its input.
"""

from __future__ import annotations

import re

from lib.errors import RomanError

MIN_VALUE = 1
MAX_VALUE = 3999

_SYMBOLS: tuple[tuple[int, str], ...] = (
    (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"),
    (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
    (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
)
_DIGITS = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_INTEGER = re.compile(r"[+-]?\d+")


def to_roman(value: int) -> str:
    """The canonical numeral for 1..3999."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RomanError(f"expected an integer, got {type(value).__name__}")
    if not MIN_VALUE <= value <= MAX_VALUE:
        raise RomanError(
            f"{value} is out of range: Roman numerals cover {MIN_VALUE} to {MAX_VALUE} (there is no zero "
            "and no negative numeral)"
        )
    parts = []
    for amount, symbol in _SYMBOLS:
        count, value = divmod(value, amount)
        parts.append(symbol * count)
    return "".join(parts)


def parse_integer(text: str) -> int:
    """Parse the decimal text a client sent ('1994'), with errors that name the problem."""
    stripped = text.strip()
    if not stripped:
        raise RomanError("empty input: send an integer from 1 to 3999")
    if not _INTEGER.fullmatch(stripped):
        raise RomanError(f"{text!r} is not an integer: send digits only, from 1 to 3999")
    digits = stripped.lstrip("+-").lstrip("0")
    if len(digits) > len(str(MAX_VALUE)):  # never int() of a huge text: Python refuses past 4,300 digits
        raise RomanError(f"{stripped[:20]}... ({len(digits)} digits) is out of range: Roman numerals cover "
                         f"{MIN_VALUE} to {MAX_VALUE}")
    return int(stripped)


def from_roman(numeral: str) -> int:
    """The value of a canonical numeral; non-canonical spellings are refused, not guessed."""
    if not numeral:
        raise RomanError("empty numeral: send a Roman numeral such as MCMXCIV")
    bad = sorted({ch for ch in numeral if ch not in _DIGITS})
    if bad:
        if numeral.upper() != numeral and all(ch in _DIGITS for ch in numeral.upper()):
            raise RomanError(f"{numeral!r} is not upper case: numerals are written {numeral.upper()!r}")
        shown = ", ".join(repr(ch) for ch in bad)
        raise RomanError(f"{numeral!r} contains {shown}, which are not Roman digits (I, V, X, L, C, D, M)")
    total = 0
    for current, following in zip(numeral, [*numeral[1:], None], strict=True):
        value = _DIGITS[current]
        total += -value if following is not None and _DIGITS[following] > value else value
    canonical = to_roman(total) if MIN_VALUE <= total <= MAX_VALUE else None
    if canonical != numeral:
        if canonical is None:
            raise RomanError(f"{numeral!r} is out of range: the largest numeral is MMMCMXCIX (3999)")
        raise RomanError(f"{numeral!r} is not a canonical numeral; {total} is written {canonical!r}")
    return total


def convert(operation: str, text: str) -> str:
    """Run one request of the service: 'to_roman' of decimal text, or 'from_roman' of a numeral."""
    if operation == "to_roman":
        return to_roman(parse_integer(text))
    if operation == "from_roman":
        return str(from_roman(text))
    raise RomanError(f"unknown operation {operation!r}: use to_roman or from_roman")
