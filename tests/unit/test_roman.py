from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.contract.roman import convert, from_roman, parse_integer, to_roman
from lib.errors import RomanError


@pytest.mark.parametrize(("n", "numeral"), [(1, "I"), (4, "IV"), (9, "IX"), (14, "XIV"), (40, "XL"), (90, "XC"),
                                             (400, "CD"), (1994, "MCMXCIV"), (2026, "MMXXVI"), (3999, "MMMCMXCIX")])
def test_known_values(n: int, numeral: str) -> None:
    assert to_roman(n) == numeral
    assert from_roman(numeral) == n


def test_round_trip_for_every_value() -> None:
    seen = set()
    for n in range(1, 4000):
        numeral = to_roman(n)
        assert from_roman(numeral) == n
        seen.add(numeral)
    assert len(seen) == 3999


CANONICAL = frozenset(to_roman(n) for n in range(1, 4000))


@given(st.text(alphabet="IVXLCDM", min_size=1, max_size=16))
def test_every_non_canonical_string_is_rejected(text: str) -> None:
    if text in CANONICAL:
        assert to_roman(from_roman(text)) == text
    else:
        with pytest.raises(RomanError):
            from_roman(text)


@pytest.mark.parametrize(
    ("numeral", "message"),
    [
        ("IIII", "'IIII' is not a canonical numeral; 4 is written 'IV'"),
        ("VX", "5 is written 'V'"),
        ("IM", "999 is written 'CMXCIX'"),
        ("MMMM", "out of range"),
        ("", "empty numeral"),
        ("mcmxciv", "not upper case: numerals are written 'MCMXCIV'"),
        ("XIZ", "contains 'Z', which are not Roman digits"),
    ],
)
def test_rejections_say_what_is_wrong(numeral: str, message: str) -> None:
    with pytest.raises(RomanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_roman(numeral)


@pytest.mark.parametrize(("text", "message"), [("0", "out of range"), ("4000", "out of range"), ("-1", "out of range"),
                                                ("abc", "is not an integer"), ("", "empty input"),
                                                ("3.5", "is not an integer"), ("  ", "empty input")])
def test_to_roman_input_errors(text: str, message: str) -> None:
    with pytest.raises(RomanError, match=message):
        convert("to_roman", text)


@given(st.integers())
def test_to_roman_never_answers_outside_range(n: int) -> None:
    if 1 <= n <= 3999:
        assert from_roman(to_roman(n)) == n
    else:
        with pytest.raises(RomanError):
            to_roman(n)


def test_booleans_are_not_numbers() -> None:
    with pytest.raises(RomanError):
        to_roman(True)  # type: ignore[arg-type]
    assert parse_integer(" 42 ") == 42
    with pytest.raises(RomanError, match="unknown operation"):
        convert("to_greek", "1")
