"""How the CLI shows amounts: exact ETH/gwei/wei for people, raw wei for scripts."""

from __future__ import annotations

import pytest

from node.cli.common import format_amount


@pytest.mark.parametrize(
    ("wei", "shown"),
    [
        (0, "0 wei"),
        (7, "7 wei"),
        (999_999_999, "999999999 wei"),
        (10**9, "1 gwei"),
        (1_500_000_000, "1.5 gwei"),
        (999_999_999_999, "999.999999999 gwei"),
        (10**12, "0.000001 ETH"),
        (21_000 * 10**9, "0.000021 ETH"),
        (10**16, "0.01 ETH"),
        (10**18, "1 ETH"),
        (10**21, "1000 ETH"),
        (123_456_789_012_345_678, "0.123456789012345678 ETH"),
        (-5 * 10**9, "-5 gwei"),
    ],
)
def test_amounts_read_in_the_largest_fitting_unit_exactly(wei: int, shown: str) -> None:
    assert format_amount(wei) == shown


def test_a_uint256_is_not_rounded() -> None:
    largest = 2**256 - 1
    whole, _, rest = format_amount(largest).removesuffix(" ETH").partition(".")
    assert int(whole) * 10**18 + int(rest.ljust(18, "0")) == largest


@pytest.mark.parametrize("amount", [1.5, True, "1000"])
def test_only_whole_wei_is_an_amount(amount: object) -> None:
    with pytest.raises(TypeError):
        format_amount(amount)  # type: ignore[arg-type]
