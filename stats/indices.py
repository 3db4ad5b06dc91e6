"""Spectral indices as safe arithmetic expressions over band names (parsed with :mod:`ast`, never eval'd).

An expression may use the 13 band names (``B01`` … ``B12``, ``B8A``), numbers, ``+ - * / **``, unary
minus and parentheses. It is evaluated per pixel on reflectances (DN / 10000). A pixel where the result is
not finite (a zero denominator) is left out of the index's statistics.

Two more names read the per-pixel cloud layers (which turn the per-pixel cloud mask on): ``CLP``, the cloud
probability of the pixel's cloud cell as 0..255, and ``CLM``, its cloud mask as 0/1. ``CLP`` and ``CLM`` are
also built-in indices by themselves.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from .bands import S2_BANDS
from .errors import UnknownIndexError

#: Built-in indices: name -> expression.
BUILTIN_INDICES: Final[dict[str, str]] = {
    "NDVI": "(B08 - B04) / (B08 + B04)",
    "NDWI": "(B03 - B08) / (B03 + B08)",
    "NDMI": "(B08 - B11) / (B08 + B11)",
    "NBR": "(B08 - B12) / (B08 + B12)",
    "NDSI": "(B03 - B11) / (B03 + B11)",
    "MNDWI": "(B03 - B11) / (B03 + B11)",  # Xu's modified NDWI: NDSI's formula, named for water
    "NDRE": "(B8A - B05) / (B8A + B05)",
    "SAVI": "1.5 * (B08 - B04) / (B08 + B04 + 0.5)",
    "EVI": "2.5 * (B08 - B04) / (B08 + 6 * B04 - 7.5 * B02 + 1)",
    "CLP": "CLP",
    "CLM": "CLM",
}

#: Per-pixel cloud layers an expression may read besides the bands.
CLOUD_LAYERS: Final[tuple[str, ...]] = ("CLP", "CLM")

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_MAX_EXPRESSION = 500
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power}


@dataclass(frozen=True)
class IndexSpec:
    """A named index: ``expression`` parsed into ``tree``; ``bands`` are the bands it reads and
    ``cloud_layers`` the per-pixel cloud layers (CLP, CLM)."""

    name: str
    expression: str
    tree: ast.expr
    bands: tuple[str, ...]
    cloud_layers: tuple[str, ...] = ()

    def evaluate(self, reflectance: Mapping[str, np.ndarray]) -> np.ndarray:
        """Evaluate per pixel; non-finite results become NaN. Arrays are float64 of one shape."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = np.asarray(_eval(self.tree, reflectance), dtype=np.float64)
        if out.ndim == 0:
            shape = next(iter(reflectance.values())).shape if reflectance else ()
            out = np.full(shape, float(out))
        out = out.copy()
        out[~np.isfinite(out)] = np.nan
        return out


def _eval(node: ast.expr, env: Mapping[str, np.ndarray]) -> np.ndarray | float:
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, env), _eval(node.right, env))  # type: ignore[no-any-return]
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, env)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Constant):
        return float(node.value)  # type: ignore[arg-type]  # _check admits only int/float
    raise UnknownIndexError(f"unsupported expression node {type(node).__name__}")


def _check(node: ast.AST, name: str, expression: str, bands: set[str]) -> None:
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        _check(node.left, name, expression, bands)
        _check(node.right, name, expression, bands)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check(node.operand, name, expression, bands)
    elif isinstance(node, ast.Name) and (node.id in S2_BANDS or node.id in CLOUD_LAYERS):
        bands.add(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        try:
            float(node.value)
        except OverflowError as exc:
            raise UnknownIndexError(
                f"indices: {name!r} has a number too large for a float in {expression[:60]!r}") from exc
    else:
        piece = ast.unparse(node) if isinstance(node, ast.AST) else repr(node)
        raise UnknownIndexError(
            f"indices: {name!r} has {piece!r} in expression {expression!r}; expected band names "
            f"{list(S2_BANDS)}, CLP, CLM, numbers, + - * / ** and parentheses"
        )


def compile_index(name: str, expression: str) -> IndexSpec:
    """Parse and check an index expression.

    >>> spec = compile_index("NDVI", "(B08 - B04) / (B08 + B04)")
    >>> spec.bands
    ('B04', 'B08')
    >>> round(float(spec.evaluate({"B04": np.array([0.1]), "B08": np.array([0.3])})[0]), 12)
    0.5
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise UnknownIndexError(
            f"indices: index name {name!r} is not valid; expected letters, digits and '_', starting with a letter"
        )
    if not isinstance(expression, str) or not expression.strip() or len(expression) > _MAX_EXPRESSION:
        raise UnknownIndexError(
            f"indices: expression for {name!r} must be a non-empty string of at most {_MAX_EXPRESSION} characters, "
            f"got {expression!r:.80}"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError as exc:
        raise UnknownIndexError(f"indices: cannot parse expression {expression!r} for {name!r}: {exc.msg}") from exc
    bands: set[str] = set()
    _check(tree, name, expression, bands)
    ordered = tuple(b for b in S2_BANDS if b in bands)
    layers = tuple(layer for layer in CLOUD_LAYERS if layer in bands)
    return IndexSpec(name=name, expression=expression, tree=tree, bands=ordered, cloud_layers=layers)


def resolve_index(item: object) -> IndexSpec:
    """Resolve a request entry: a built-in name (``"NDVI"``) or ``{"name": ..., "expression": ...}``."""
    if isinstance(item, str):
        key = item.upper()
        if key not in BUILTIN_INDICES:
            raise UnknownIndexError(
                f"indices: unknown index {item!r}; expected one of {sorted(BUILTIN_INDICES)} "
                "or {'name': ..., 'expression': ...}"
            )
        return compile_index(key, BUILTIN_INDICES[key])
    if isinstance(item, dict) and set(item) == {"name", "expression"}:
        return compile_index(item["name"], item["expression"])
    raise UnknownIndexError(
        f"indices: entry {item!r:.100} is not an index; expected a name such as 'NDVI' "
        "or an object {'name': 'MYIDX', 'expression': '(B08 - B04) / (B08 + B04)'}"
    )
