"""The command line's time-series options: one set for ``polyfis query`` and ``polyfis batch``, matching the
request fields of ``POST /api/v1/timeseries`` one for one.

Every option defaults to unset, so that the engine's own defaults apply (the help says what they are), and
:func:`request_options` turns the given ones into the request's option fields, which the engine parses.
:data:`FIELDS` maps each request field to its option, and the tests check both against the request schema.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: Request field (dotted for the members of ``cloud``, ``water``, ``histogram``, ``aggregation``, ``fill`` and
#: ``season``) -> command-line option.
FIELDS: dict[str, str] = {
    "bands": "--bands",
    "indices": "--indices",
    "statistics": "--statistics",
    "resolution": "--resolution",
    "harmonize": "--harmonize",
    "max_cloud_cover": "--max-cloud-cover",
    "include_empty": "--include-empty",
    "exact": "--exact",
    "cloud.mode": "--cloud-mode",
    "cloud.threshold": "--threshold",
    "cloud.max_probability": "--max-probability",
    "cloud.resolution": "--cloud-resolution",
    "cloud.average_over": "--average-over",
    "cloud.dilation_size": "--dilation-size",
    "cloud.mask": "--mask-clouds",
    "cloud.max_fraction": "--max-fraction",
    "cloud.source": "--cloud-source",
    "cloud.opening_size": "--opening-size",
    "cloud.closing_size": "--closing-size",
    "cloud.min_cloud_size": "--min-cloud-size",
    "cloud.erosion_size": "--erosion-size",
    "cloud.shadows": "--shadows",
    "cloud.shadow_heights_m": "--shadow-heights",
    "water.method": "--water",
    "water.threshold": "--water-threshold",
    "water.index": "--water-index",
    "water.max_cloud_fraction": "--water-max-cloud-fraction",
    "water.min_valid": "--water-min-valid",
    "water.outline": "--water-outline",
    "water.buffer_m": "--water-buffer",
    "water.extent": "--water-extent",
    "histogram.bins": "--histogram-bins",
    "histogram.type": "--histogram-type",
    "aggregation.interval": "--aggregate",
    "aggregation.method": "--aggregate-method",
    "aggregation.index": "--aggregate-index",
    "aggregation.last_interval": "--aggregate-last",
    "fill.method": "--fill",
    "fill.variables": "--fill-variables",
    "fill.statistic": "--fill-statistic",
    "fill.grid": "--fill-grid",
    "fill.weights": "--fill-weights",
    "fill.smoothing": "--fill-smoothing",
    "fill.window_days": "--fill-window",
    "fill.order": "--fill-order",
    "season.index": "--season",
    "season.start": "--season-start",
    "season.end": "--season-end",
}

_DECLARATIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--bands",), {"help": "Comma-separated bands (default all 13)."}),
    (("--indices",), {"help": "Comma-separated indices, e.g. NDVI,NDWI."}),
    (("--statistics",), {"help": "Comma-separated statistics (default mean,min,max,std,p10,p50,p90)."}),
    (("--resolution",), {"type": click.Choice(["10", "20", "60"]), "help": "Grid, metres (default 10)."}),
    (("--harmonize/--no-harmonize",), {"default": None, "help": "Remove the baseline 04.00 offset (default on)."}),
    (("--max-cloud-cover",), {"type": float, "help": "Drop tiles whose eo:cloud_cover (%) is above this."}),
    (("--include-empty",), {"is_flag": True, "default": None, "help": "Keep dates without a valid pixel."}),
    (("--exact",), {"is_flag": True, "default": None,
                    "help": "Weight pixels by the fraction of their area inside the polygon."}),
    (("--cloud-mode",), {"type": click.Choice(["averaged", "pixel", "both"]),
                         "help": "Averaged-pixel probability (default), per-pixel cloud mask, or both."}),
    (("--threshold",), {"type": float, "help": "Cloud probability threshold (default 0.4)."}),
    (("--max-probability",), {"type": float, "help": "Drop dates with a cloud probability above this."}),
    (("--cloud-resolution",), {"type": int, "help": "Cloud cell size, metres (10..160, default 160)."}),
    (("--average-over",), {"type": int, "help": "Mask averaging radius, cells (default 4)."}),
    (("--dilation-size",), {"type": int, "help": "Mask dilation radius, cells (default 2)."}),
    (("--mask-clouds",), {"is_flag": True, "default": None, "help": "Compute the statistics over clear pixels only."}),
    (("--max-fraction",), {"type": float, "help": "Drop dates whose cloud fraction is above this."}),
    (("--cloud-source",), {"type": click.Choice(["auto", "layers", "model"]),
                           "help": "Cloud cells from the stored CLP/CLM layers when present (auto, default), only "
                                   "from them, or from the model."}),
    (("--opening-size",), {"type": int, "help": "Mask opening radius, cells (default 0: none)."}),
    (("--closing-size",), {"type": int, "help": "Mask closing radius, cells (default 0: none)."}),
    (("--min-cloud-size",), {"type": int, "help": "Drop clouds of fewer cells (default 0: none)."}),
    (("--erosion-size",), {"type": int, "help": "Mask erosion radius, cells (default 0: none)."}),
    (("--shadows",), {"is_flag": True, "default": None,
                      "help": "Find cloud shadows (per-pixel mask; with --mask-clouds they are left out too)."}),
    (("--shadow-heights",), {"help": "Cloud heights shadows are cast from, MIN,MAX metres (default 200,4000)."}),
    (("--water",), {"type": click.Choice(["threshold", "otsu", "canny_otsu"]),
                    "help": "Water method (default canny_otsu when monitoring, else threshold)."}),
    (("--water-threshold",), {"type": float, "help": "Water index threshold, and the fallback (default 0)."}),
    (("--water-index",), {"help": "Water index (default NDWI; MNDWI uses B11)."}),
    (("--water-max-cloud-fraction",), {"type": float, "help": "Water: most cloud fraction (default 0.2)."}),
    (("--water-min-valid",), {"type": float, "help": "Water: least share of the region with data (default 0.98)."}),
    (("--water-outline",), {"type": click.Path(exists=True, dir_okay=False),
                            "help": "Water monitoring: file holding the nominal outline (GeoJSON or WKT, in --crs)."}),
    (("--water-buffer",), {"type": float, "help": "Water monitoring: metres the outline (or polygon) is grown by "
                                                  "(default 100 with --water-outline)."}),
    (("--water-extent/--no-water-extent",), {"default": None,
                                             "help": "Water: add each date's water polygon (JSON output only)."}),
    (("--histogram-bins",), {"type": int, "help": "Histograms of this many bins per band and index."}),
    (("--histogram-type",), {"type": click.Choice(["equalfrequency", "equidistant", "streaming"]),
                             "help": "Histogram kind (default equalfrequency)."}),
    (("--aggregate",), {"help": "Composite the clear dates into intervals of this ISO-8601 step, e.g. P10D, P1M."}),
    (("--aggregate-method",), {"type": click.Choice(["mean", "median", "max", "last"]),
                               "help": "How an interval composites its clear dates (default mean)."}),
    (("--aggregate-index",), {"help": "Index whose highest mean picks the date of the 'max' method."}),
    (("--aggregate-last",), {"type": click.Choice(["SKIP", "SHORTEN", "EXTEND"]),
                             "help": "The interval passing the range's end (default SHORTEN)."}),
    (("--fill",), {"type": click.Choice(["linear", "savgol", "whittaker"]),
                   "help": "Fill the gaps and smooth the series by this method."}),
    (("--fill-variables",), {"help": "Comma-separated bands or indices to fill (default the indices)."}),
    (("--fill-statistic",), {"help": "Statistic to fill (default mean)."}),
    (("--fill-grid",), {"help": "Give the filled curve every ISO-8601 step, e.g. P1D, P5D (default the dates)."}),
    (("--fill-weights",), {"type": click.Choice(["clear", "cloud_probability", "clear_fraction"]),
                           "help": "Whittaker weights (default clear)."}),
    (("--fill-smoothing",), {"type": float, "help": "Whittaker lambda (default 500)."}),
    (("--fill-window",), {"type": int, "help": "Savitzky-Golay window, odd days (default 31)."}),
    (("--fill-order",), {"type": int, "help": "Savitzky-Golay polynomial order (default 2)."}),
    (("--season",), {"help": "Season metrics (start, peak, end) of this index."}),
    (("--season-start",), {"type": float, "help": "Season start: share of the amplitude (default 0.2)."}),
    (("--season-end",), {"type": float, "help": "Season end: share of the amplitude (default 0.2)."}),
]


def query_options(command: F) -> F:
    """Add the time-series options to a command; they reach it as keyword arguments."""
    for declarations, attributes in reversed(_DECLARATIONS):
        command = click.option(*declarations, **attributes)(command)
    return command


def _parameter(option: str) -> str:
    return option.split("/")[0].removeprefix("--").replace("-", "_")


def request_options(given: dict[str, Any]) -> dict[str, Any]:
    """The request's option fields from the command's keyword arguments (unset options left out; a
    ``water.*`` or ``histogram.*`` option alone turns the water or histogram answer on)."""
    body: dict[str, Any] = {}
    for field, option in FIELDS.items():
        value = given.get(_parameter(option))
        if value is None:
            continue
        if field in ("bands", "indices", "statistics", "fill.variables"):
            value = [t.strip() for t in str(value).split(",") if t.strip()]
        elif field == "resolution":
            value = int(value)
        elif field == "cloud.shadow_heights_m":
            value = _numbers(str(value))
        elif field == "water.outline":
            value = Path(value).read_text(encoding="utf-8")
        group, _, member = field.partition(".")
        if member:
            body.setdefault(group, {})[member] = value
        else:
            body[field] = value
    return body


def _numbers(text: str) -> list[Any] | str:
    """Comma-separated numbers as a list of floats; the text itself when one is not a number (the engine
    then names what it got)."""
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        return text


def option_names(command: click.Command) -> set[str]:
    """The option names a command takes (``--harmonize/--no-harmonize`` as ``--harmonize``)."""
    return {name for param in command.params for name in param.opts if name.startswith("--")}
