"""Index expressions: evaluation and refusal of anything but arithmetic over bands."""

from __future__ import annotations

import numpy as np
import pytest

from stats.errors import UnknownIndexError
from stats.indices import BUILTIN_INDICES, compile_index, resolve_index


def test_ndvi_and_ndwi_by_hand() -> None:
    """NDVI of red 0.1, nir 0.3 is 0.5; NDWI of green 0.3, nir 0.1 is 0.5."""
    env = {"B03": np.array([0.3]), "B04": np.array([0.1]), "B08": np.array([0.3])}
    assert resolve_index("NDVI").evaluate(env)[0] == pytest.approx(0.5)
    env["B08"] = np.array([0.1])
    assert resolve_index("ndwi").evaluate(env)[0] == pytest.approx(0.5)


def test_zero_denominator_gives_nan() -> None:
    """A pixel with red + nir = 0 gets NaN, which the engine leaves out of the statistics."""
    out = resolve_index("NDVI").evaluate({"B04": np.array([0.0, 0.1]), "B08": np.array([0.0, 0.3])})
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.5)


def test_custom_expression_with_constants_and_power() -> None:
    """Constants, unary minus and ** are allowed."""
    spec = compile_index("X", "-(B02 ** 2) + 2 * B12")
    assert spec.bands == ("B02", "B12")
    assert spec.evaluate({"B02": np.array([3.0]), "B12": np.array([1.0])})[0] == pytest.approx(-7.0)


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "B04.real", "abs(B04)", "B04 if B08 else 1", "[B04]", "B99 + 1",
     "B04 < B08", "lambda: 1", "'text'", "B04; B08", ""],
)
def test_anything_but_band_arithmetic_is_refused(expression) -> None:
    """Calls, attributes, comparisons, unknown names, strings and statements are refused before evaluation."""
    with pytest.raises(UnknownIndexError):
        compile_index("BAD", expression)


def test_unknown_index_name_lists_the_builtins() -> None:
    """An unknown name lists the built-in indices."""
    with pytest.raises(UnknownIndexError, match=r"unknown index 'FOO'; expected one of \['CLM', 'CLP', 'EVI'"):
        resolve_index("FOO")


def test_builtins_compile() -> None:
    """Every built-in index compiles and reads S2 bands, or a per-pixel cloud layer (CLP, CLM)."""
    for name, expression in BUILTIN_INDICES.items():
        spec = compile_index(name, expression)
        assert spec.bands or spec.cloud_layers == (name,)
