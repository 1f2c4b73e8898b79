from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.env import format_size, format_size_exact, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("32G", 32 * 1024**3),
        ("1T", 1024**4),
        ("1.5G", 1536 * 1024**2),
        ("512m", 512 * 1024**2),
        ("100GiB", 100 * 1024**3),
    ],
)
def test_sizes_parse_in_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "32X", "-1G", "1.3B", "G"])
def test_nonsense_sizes_are_refused_with_a_message(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|whole number"):
        parse_size(text)


def test_sizes_for_people_are_short_and_rounded() -> None:
    assert format_size(24684084 * 1024) == "23.5G"
    assert format_size(32 * 1024**3) == "32G"
    assert format_size(1536 * 1024**2) == "1.5G"
    assert format_size(100) == "100B"


@given(st.integers(min_value=1, max_value=2**60))
def test_exact_sizes_read_back_to_the_same_bytes(num_bytes: int) -> None:
    assert parse_size(format_size_exact(num_bytes)) == num_bytes
