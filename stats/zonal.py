"""Per-band statistics over the valid pixels of a polygon.

Every function takes a 1-D float64 array of the values of the valid pixels (no NaN; pixels outside the
polygon or without data are already removed) and returns plain Python numbers. With no value, every
statistic is ``None`` and ``count`` is 0: never NaN.

Statistic names (one schema for models, JSON, CSV and openapi.yaml):

``count``  number of values;  ``mean``  arithmetic mean;  ``min`` / ``max``  extremes;
``std``  population standard deviation (ddof = 0, as rasterstats and Sentinel Hub's ``stDev``);
``sum``  sum of values;  ``median``  the 50th percentile;
``pNN``  the NN-th percentile, 0 <= NN <= 100, decimals allowed (``p2.5``), linear interpolation between
closest ranks (``numpy.percentile`` default, as rasterstats ``percentile_NN``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final, Literal, TypeVar

import numpy as np

from .errors import UnknownStatisticError

#: Statistics computed when a request names none.
DEFAULT_STATISTICS: Final[tuple[str, ...]] = ("mean", "min", "max", "std", "p10", "p50", "p90")

#: Statistics with fixed names.
BASIC_STATISTICS: Final[tuple[str, ...]] = ("count", "mean", "min", "max", "std", "sum", "median")

T = TypeVar("T")

_PERCENTILE = re.compile(r"^p(100|[0-9]{1,2})(\.[0-9]+)?$")


def percentile_of(name: str) -> float | None:
    """The percentile of a ``pNN`` statistic name, or None for other names.

    >>> percentile_of("p90"), percentile_of("p2.5"), percentile_of("mean")
    (90.0, 2.5, None)
    """
    match = _PERCENTILE.match(name)
    if match is None:
        return None
    value = float(name[1:])
    return value if value <= 100 else None


def validate_statistics(names: Sequence[str]) -> tuple[str, ...]:
    """Check statistic names; return them without duplicates, in the given order.

    :raises UnknownStatisticError: naming the bad entry and the accepted forms.
    """
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or (name not in BASIC_STATISTICS and percentile_of(name) is None):
            raise UnknownStatisticError(
                f"statistics: unknown statistic {name!r}; expected one of {list(BASIC_STATISTICS)} "
                "or a percentile 'p0'..'p100' such as 'p10' or 'p2.5'"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def summarize(values: np.ndarray, statistics: Sequence[str]) -> dict[str, float | int | None]:
    """Compute ``statistics`` over the 1-D array ``values``.

    >>> summarize(np.array([1.0, 2.0, 3.0, 4.0]), ["count", "mean", "std", "p50", "min"])
    {'count': 4, 'mean': 2.5, 'std': 1.118033988749895, 'p50': 2.5, 'min': 1.0}
    >>> summarize(np.array([]), ["count", "mean"])
    {'count': 0, 'mean': None}
    """
    values = np.asarray(values, dtype=np.float64)
    n = int(values.size)
    if n == 0:
        return {name: (0 if name == "count" else None) for name in statistics}
    qs = _quantiles_of(statistics)
    pct = dict(zip(qs, np.percentile(values, qs).tolist())) if qs else {}
    mean = float(values.mean())
    basic: dict[str, Callable[[], Any]] = {
        "count": lambda: n, "mean": lambda: mean, "min": lambda: float(values.min()),
        "max": lambda: float(values.max()), "std": lambda: float(np.sqrt(np.mean((values - mean) ** 2))),
        "sum": lambda: float(values.sum()),
    }
    return _assemble(statistics, basic, lambda q: float(pct[q]))


def summarize_many(arrays: Sequence[np.ndarray], statistics: Sequence[str]) -> list[dict[str, float | int | None]]:
    """:func:`summarize` of each of ``arrays``, the same numbers, with the arrays of one length computed
    together (as the rows of a 2-D array: one percentile, mean and extreme call per length, not per array).

    >>> summarize_many([np.array([1.0, 2.0]), np.array([3.0, 5.0]), np.array([])], ["mean", "p50"])
    [{'mean': 1.5, 'p50': 1.5}, {'mean': 4.0, 'p50': 4.0}, {'mean': None, 'p50': None}]
    """
    out: list[dict[str, float | int | None]] = [{} for _ in arrays]
    by_length: dict[int, list[int]] = {}
    for i, values in enumerate(arrays):
        by_length.setdefault(int(np.asarray(values).size), []).append(i)
    for n, members in by_length.items():
        if n == 0 or len(members) == 1:
            for i in members:
                out[i] = summarize(arrays[i], statistics)
            continue
        rows = np.stack([np.asarray(arrays[i], dtype=np.float64).ravel() for i in members])
        for i, summary in zip(members, _summarize_rows(rows, statistics)):
            out[i] = summary
    return out


def _summarize_rows(rows: np.ndarray, statistics: Sequence[str]) -> list[dict[str, float | int | None]]:
    """:func:`summarize` of each row of the 2-D array ``rows`` (at least one column)."""
    k, n = rows.shape
    qs = _quantiles_of(statistics)
    pct = np.percentile(rows, qs, axis=1).T.tolist() if qs else [[] for _ in range(k)]
    mean = rows.mean(axis=1)
    columns: dict[str, Callable[[], list[Any]]] = {
        "count": lambda: [n] * k, "mean": mean.tolist,
        "min": lambda: rows.min(axis=1).tolist(), "max": lambda: rows.max(axis=1).tolist(),
        "std": lambda: np.sqrt(np.mean((rows - mean[:, np.newaxis]) ** 2, axis=1)).tolist(),
        "sum": lambda: rows.sum(axis=1).tolist(),
    }
    wanted = {name: columns[name]() for name in statistics if name in columns}
    out = []
    for row in range(k):
        quantiles = dict(zip(qs, pct[row]))
        basic: dict[str, Callable[[], Any]] = {name: partial(list.__getitem__, values, row)
                                               for name, values in wanted.items()}
        out.append(_assemble(statistics, basic, quantiles.__getitem__))
    return out


def _quantiles_of(statistics: Sequence[str]) -> list[float]:
    """The percentiles (0..100) the statistic names need, sorted, each once (``median`` is 50)."""
    return sorted({q for q in (_quantile_of(s) for s in statistics) if q is not None})


def _quantile_of(name: str) -> float | None:
    return 50.0 if name == "median" else percentile_of(name)


def _assemble(statistics: Sequence[str], basic: Mapping[str, Callable[[], T]],
              quantile: Callable[[float], T]) -> dict[str, T]:
    """The one dispatch over statistic names: a percentile or the median from ``quantile(q)``, every other
    name from its entry of ``basic`` (computed only when asked for)."""
    out: dict[str, T] = {}
    for name in statistics:
        q = _quantile_of(name)
        if q is None and name not in basic:
            validate_statistics([name])  # raises, naming the statistics polyfis computes
        out[name] = quantile(q) if q is not None else basic[name]()
    return out


HistogramKind = Literal["equalfrequency", "equidistant", "streaming"]
#: Most bins of one histogram.
MAX_BINS: Final[int] = 1000
HISTOGRAM_KINDS: Final[tuple[str, ...]] = ("equalfrequency", "equidistant", "streaming")


def histogram(values: np.ndarray, bins: int, kind: str = "equalfrequency") -> list[dict[str, float]]:
    """A histogram of ``values`` in one of the shapes of Sentinel Hub's FIS.

    * ``equalfrequency``: ``bins`` groups of the sorted values with near-equal counts, each
      ``{"lowEdge": smallest value, "mean": group mean, "count": size}``;
    * ``equidistant``: ``bins`` equal-width bins from min to max (the last one closed),
      ``{"lowEdge", "count"}``;
    * ``streaming``: at most ``bins`` centroids ``{"value", "count"}`` found by repeatedly merging the two
      closest neighbouring centroids (Ben-Haim and Tom-Tov's streaming histogram, run over all values).

    Counts are floats, as FIS writes them. No values give no bins.

    >>> histogram(np.array([1.0, 2.0, 3.0, 4.0]), 2, "equidistant")
    [{'lowEdge': 1.0, 'count': 2.0}, {'lowEdge': 2.5, 'count': 2.0}]
    >>> histogram(np.array([1.0, 2.0, 3.0, 10.0]), 2, "equalfrequency")
    [{'lowEdge': 1.0, 'mean': 1.5, 'count': 2.0}, {'lowEdge': 3.0, 'mean': 6.5, 'count': 2.0}]
    >>> histogram(np.array([1.0, 1.1, 5.0, 5.2, 9.0]), 3, "streaming")
    [{'value': 1.05, 'count': 2.0}, {'value': 5.1, 'count': 2.0}, {'value': 9.0, 'count': 1.0}]
    """
    values = np.sort(np.asarray(values, dtype=np.float64))
    if values.size == 0:
        return []
    if kind == "equalfrequency":
        groups = [g for g in np.array_split(values, min(bins, values.size)) if g.size]
        return [{"lowEdge": float(g[0]), "mean": float(g.mean()), "count": float(g.size)} for g in groups]
    if kind == "equidistant":
        counts, edges = np.histogram(values, bins=bins, range=(values[0], values[-1]))
        return [{"lowEdge": float(e), "count": float(c)} for e, c in zip(edges[:-1], counts)]
    return _streaming(values, bins)


def _streaming(values: np.ndarray, bins: int) -> list[dict[str, float]]:
    uniques, counts = np.unique(values, return_counts=True)
    if uniques.size > 1024:  # pre-merge into 1024 equal-width centroids (exact means and counts)
        index = np.minimum(((uniques - uniques[0]) / (uniques[-1] - uniques[0]) * 1024).astype(int), 1023)
        sums = np.bincount(index, weights=uniques * counts, minlength=1024)
        totals = np.bincount(index, weights=counts, minlength=1024)
        keep = totals > 0
        uniques, counts = sums[keep] / totals[keep], totals[keep]
    centres, weights = list(map(float, uniques)), list(map(float, counts))
    while len(centres) > bins:
        gaps = np.diff(centres)
        i = int(np.argmin(gaps))
        w = weights[i] + weights[i + 1]
        centres[i] = (centres[i] * weights[i] + centres[i + 1] * weights[i + 1]) / w
        weights[i] = w
        del centres[i + 1], weights[i + 1]
    return [{"value": c, "count": w} for c, w in zip(centres, weights)]


def grouped_summary(values: np.ndarray, labels: np.ndarray, groups: int,
                    statistics: Sequence[str], *, keys: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`summarize` for many groups at once: ``labels[i]`` (0 <= label < ``groups``) is the group of
    ``values[i]``. Returns one float64 array of length ``groups`` per statistic, NaN for an empty group
    (``count`` is 0 there). Same definitions as :func:`summarize` (population std, linear percentiles).

    ``keys``, when given, is a uint16 array ordered like ``values`` (such as the DN the values come from):
    the order statistics then use two radix sorts instead of a comparison sort.

    >>> out = grouped_summary(np.array([1.0, 5.0, 2.0, 3.0, 4.0]), np.array([0, 1, 0, 0, 2]), 4,
    ...                       ["count", "mean", "max", "p50", "std"])
    >>> out["count"].tolist(), out["mean"].tolist()[:3], out["max"].tolist()[:3], out["p50"].tolist()[:3]
    ([3.0, 1.0, 1.0, 0.0], [2.0, 5.0, 4.0], [3.0, 5.0, 4.0], [2.0, 5.0, 4.0])
    >>> round(float(out["std"][0]), 6), bool(np.isnan(out["mean"][3]))
    (0.816497, True)
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.intp)
    counts = np.bincount(labels, minlength=groups).astype(np.float64)
    has = counts > 0
    nan = np.full(groups, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        sums = np.bincount(labels, weights=values, minlength=groups)
        mean = np.where(has, sums / counts, np.nan)
    ordered: np.ndarray | None = None
    starts = (np.cumsum(counts) - counts).astype(np.intp)
    n = counts.astype(np.intp)

    def sorted_values() -> np.ndarray:
        nonlocal ordered
        if ordered is None:
            by_value = np.argsort(keys, kind="stable") if keys is not None else np.argsort(values)
            by_label = labels[by_value]
            if groups <= np.iinfo(np.uint16).max:
                by_label = by_label.astype(np.uint16)  # radix sort
            ordered = values[by_value[np.argsort(by_label, kind="stable")]]
        return ordered

    def quantile(q: float) -> np.ndarray:
        v = sorted_values()
        result = nan.copy()
        if not has.any():
            return result
        pos = (q / 100.0) * (n[has] - 1)
        lo = np.floor(pos).astype(np.intp)
        t = pos - lo
        hi = np.minimum(lo + 1, n[has] - 1)
        a, b = v[starts[has] + lo], v[starts[has] + hi]
        # numpy's lerp: symmetric form so that t = 1 gives b exactly
        result[has] = np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)
        return result

    def extreme(name: str) -> np.ndarray:
        v = sorted_values()
        result = nan.copy()
        result[has] = v[starts[has] if name == "min" else starts[has] + n[has] - 1]
        return result

    def std() -> np.ndarray:
        dev = values - np.where(has, mean, 0.0)[labels]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(has, np.sqrt(np.bincount(labels, weights=dev * dev, minlength=groups) / counts), np.nan)

    basic: dict[str, Callable[[], np.ndarray]] = {
        "count": lambda: counts, "mean": lambda: mean, "sum": lambda: np.where(has, sums, np.nan),
        "min": lambda: extreme("min"), "max": lambda: extreme("max"), "std": std,
    }
    return _assemble(statistics, basic, quantile)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> list[float]:
    """exactextract's weighted quantiles (``qs`` in [0, 1]) of ``values`` with positive ``weights``; see
    :func:`weighted_summary`."""
    uniques, index = np.unique(values, return_inverse=True)
    w = np.bincount(index.ravel(), weights=weights, minlength=uniques.size)
    n = uniques.size
    before = np.concatenate(([0.0], np.cumsum(w)[:-1]))  # weight of the smaller values
    s = np.arange(n) * w + (n - 1) * before
    total = float(np.cumsum(w)[-1]) * (n - 1)
    out = []
    for q in qs:
        target = q * total
        right = int(np.searchsorted(s, target, side="right"))  # first s > target
        left = right - 1
        if right >= n:
            out.append(float(uniques[left]))
        else:
            out.append(float(uniques[left] + (target - s[left]) * (uniques[right] - uniques[left])
                             / (s[right] - s[left])))
    return out


def weighted_summary(values: np.ndarray, weights: np.ndarray,
                     statistics: Sequence[str]) -> dict[str, float | int | None]:
    """Compute ``statistics`` (the names of :func:`summarize`) over the 1-D array ``values``
    weighted by ``weights`` (coverage fractions, >= 0), as exactextract computes its statistics.

    Pixels with weight 0 are ignored; ``values`` must be finite where the weight is positive. With
    weights ``w`` and values ``x`` of the pixels with ``w > 0``:

    ``count``  sum of ``w`` (a float);  ``sum``  sum of ``w * x``;  ``mean``  ``sum / count``;
    ``std``  weighted population standard deviation, sqrt(sum(w * (x - mean)**2) / sum(w));
    ``min`` / ``max``  extremes of ``x`` (weights play no part);
    ``median`` and ``pNN``  exactextract's weighted quantile at q = NN / 100, defined as follows. Equal
    values are merged first, adding their weights: let ``x_1 < ... < x_n`` be the distinct values,
    ``w_k`` the total weight of ``x_k``, ``S_k = w_1 + ... + w_k`` and ``S = S_n``. Each value gets the
    position ``s_1 = 0``, ``s_k = (k - 1) * w_k + (n - 1) * S_(k-1)`` (non-decreasing, ``s_n = (n - 1) * S``).
    With the target ``t = q * (n - 1) * S`` and ``x_j`` the first value whose ``s_j > t``, the quantile is
    ``x_(j-1) + (t - s_(j-1)) * (x_j - x_(j-1)) / (s_j - s_(j-1))``, or ``x_n`` when there is no such
    value (so q = 0 gives ``x_1``, q = 1 gives ``x_n``, one distinct value gives itself). With equal weights
    and distinct values this is ``numpy.percentile``'s linear interpolation; repeated values differ from
    it, since they are merged into one value of larger weight (``[1, 1, 1, 2]`` has median 1.5, not 1).
    exactextract then converts the quantile to the raster's data type (rounding to float32, truncating to
    an integer); this function returns the float64 value.

    With no positive weight, ``count`` is 0 and every other statistic is None: never NaN.

    >>> weighted_summary(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4), ["count", "mean", "std", "p50"])
    {'count': 4.0, 'mean': 2.5, 'std': 1.118033988749895, 'p50': 2.5}
    >>> weighted_summary(np.array([10.0, 20.0, 30.0]), np.array([1.0, 0.5, 0.0]), ["count", "sum", "mean", "max"])
    {'count': 1.5, 'sum': 20.0, 'mean': 13.333333333333334, 'max': 20.0}
    >>> weighted_summary(np.array([1.0, 1.0, 1.0, 2.0]), np.ones(4), ["median", "p0", "p100"])
    {'median': 1.5, 'p0': 1.0, 'p100': 2.0}
    >>> weighted_summary(np.array([5.0]), np.array([0.0]), ["count", "mean", "p10"])
    {'count': 0, 'mean': None, 'p10': None}

    :raises UnknownStatisticError: for a name outside the schema of this module.
    :raises ValueError: when the arrays differ in shape or a weight is negative or not finite.
    """
    statistics = validate_statistics(statistics)
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if values.shape != weights.shape:
        raise ValueError(f"weights: expected {values.size} weights, one per value, got {weights.size}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("weights: expected finite weights >= 0")
    keep = weights > 0
    x, w = values[keep], weights[keep]
    if x.size == 0:
        return {name: (0 if name == "count" else None) for name in statistics}
    qs = _quantiles_of(statistics)
    pct = dict(zip(qs, _weighted_quantiles(x, w, [q / 100.0 for q in qs])))
    count = float(w.sum())
    total = float((w * x).sum())
    mean = total / count
    basic: dict[str, Callable[[], Any]] = {
        "count": lambda: count, "sum": lambda: total, "mean": lambda: mean,
        "min": lambda: float(x.min()), "max": lambda: float(x.max()),
        "std": lambda: float(np.sqrt((w * (x - mean) ** 2).sum() / count)),
    }
    return _assemble(statistics, basic, pct.__getitem__)
