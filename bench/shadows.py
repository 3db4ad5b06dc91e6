"""Cloud shadows on the demo archive: the shadow mask of every shadow date against the ground truth.

Run:  .venv/bin/python bench/shadows.py [--demo-dir DIR] [--results-dir DIR]

For every demo date whose truth holds shadows, the whole scene's cloud block is read, scored and masked as a
query with ``cloud.shadows: true`` does it (:func:`stats.clouds.shadow_masks.date_masks`), once with the default
cloud mask (160 m cells, average_over 4, dilation_size 2) and once with 40 m cells (average_over 2,
dilation_size 1); the shadow detector is also run on the truth's own cloud mask. Per date it reports:

* ``recall``: the share of truth shadow pixels (not water) the shadow mask flags;
* ``recall outside cloud``: the same over the truth shadow pixels outside the engine's cloud mask (those the
  cloud mask leaves to the shadow mask);
* ``excluded``: the share of truth shadow pixels under the cloud or the shadow mask (left out by ``cloud.mask``);
* ``false positives``: the share of truth-clear pixels (not cloud, not shadow, not no data) flagged shadow.

Results go to ``shadows.md`` in ``--results-dir`` (default ``bench/results``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry import box

from stats import Archive
from stats.archive.catalog import group_by_date
from stats.archive.synthetic import build_demo_archive, load_ground_truth, load_truth_masks
from stats.bands import MODEL_BANDS
from stats.clouds.cells import ProbabilityCache
from stats.clouds.model import default_model
from stats.clouds.shadow_masks import date_masks
from stats.clouds.shadows import SHADOW_BANDS, ShadowParameters
from stats.request import Area, MaskParameters

#: The cloud masks evaluated: the default (Sentinel Hub's 160 m) and 40 m cells, scored by the model (the
#: archive's stored layers, when it has them, are 160 m cells).
MASKS: dict[str, MaskParameters] = {"160 m": MaskParameters(source="model"),
                                    "40 m": MaskParameters(40, 0.4, 2, 1, source="model")}


@dataclass(frozen=True)
class Score:
    """Pixel counts of one date and one cloud mask; the rates are derived from them."""

    shadow: int  # truth shadow pixels (not water)
    found: int  # of which the shadow mask flags
    outside: int  # truth shadow pixels outside the engine's cloud mask
    found_outside: int
    excluded: int  # truth shadow pixels under the cloud or the shadow mask
    clear: int  # truth-clear pixels
    false: int  # of which flagged shadow

    def __add__(self, other: Score) -> Score:
        return Score(*(a + b for a, b in zip(self.counts, other.counts)))

    @property
    def counts(self) -> tuple[int, ...]:
        return (self.shadow, self.found, self.outside, self.found_outside, self.excluded, self.clear, self.false)

    @property
    def recall(self) -> float:
        return self.found / self.shadow if self.shadow else float("nan")

    @property
    def recall_outside(self) -> float:
        return self.found_outside / self.outside if self.outside else float("nan")

    @property
    def excluded_rate(self) -> float:
        return self.excluded / self.shadow if self.shadow else float("nan")

    @property
    def false_rate(self) -> float:
        return self.false / self.clear if self.clear else float("nan")


def score(truth: dict[str, np.ndarray], cloud: np.ndarray, shadow: np.ndarray) -> Score:
    """Compare a cloud and a shadow mask (the truth raster's shape) with the truth of one date."""
    target = truth["shadow"] & ~truth["water"]
    clear = ~truth["cloud"] & ~truth["shadow"] & ~truth["nodata"]
    outside = target & ~cloud
    return Score(int(target.sum()), int((shadow & target).sum()), int(outside.sum()), int((shadow & outside).sum()),
                 int(((shadow | cloud) & target).sum()), int(clear.sum()), int((shadow & clear).sum()))


def shadow_dates(root: Path) -> list[str]:
    """The demo dates whose truth holds shadows."""
    return sorted(d for d, v in load_ground_truth(root)["dates"].items() if v["shadow_cover"] > 0)


def scene_area(root: Path) -> Area:
    """The whole demo scene as a polygon in its CRS."""
    scene = load_ground_truth(root)["scene"]
    _, _, x0, _, _, y0 = scene["transform"]
    rows, cols = scene["shape"]
    res = scene["resolution_m"]
    return Area.parse(box(x0, y0 - rows * res, x0 + cols * res, y0), scene["crs"])


def evaluate(root: Path, params: MaskParameters | None,
             shadow_params: ShadowParameters | None = None) -> Iterator[tuple[str, Score]]:
    """(date, :class:`Score`) of every shadow date with the engine's cloud mask of ``params``, or with the
    truth's cloud mask when ``params`` is None."""
    shadow_params = shadow_params or ShadowParameters()
    archive = Archive.open(root)
    area = scene_area(root)
    model, cache = default_model(), ProbabilityCache()
    wanted = set(shadow_dates(root))
    bands = sorted(set(MODEL_BANDS) | set(SHADOW_BANDS))
    for tiles in group_by_date(archive.acquisitions):
        day = tiles[0].date.isoformat()
        if day not in wanted:
            continue
        truth = load_truth_masks(root, day)
        masks = date_masks(tiles, area, bands, params or MaskParameters(), shadow_params, model, cache)
        # the scene starts at a cell corner and the window is clipped to it: the block is the scene
        assert masks.shadow is not None and masks.input is not None, masks.warning
        assert masks.cloud.shape == truth["cloud"].shape
        if params is None:
            cloud = truth["cloud"]
            shadow = masks.input.detect(cloud, shadow_params)
        else:
            cloud, shadow = masks.cloud, masks.shadow
        yield day, score(truth, cloud, shadow)


def total(rows: list[tuple[str, Score]]) -> Score:
    """The pixel counts of many dates added up."""
    out = Score(0, 0, 0, 0, 0, 0, 0)
    for _, s in rows:
        out = out + s
    return out


def table(rows: list[tuple[str, Score]], cumulus: set[str]) -> list[str]:
    """Markdown rows of per-date scores, their total and the total of the cumulus dates."""
    lines = ["| date | truth shadow px | recall | recall outside cloud mask | excluded (cloud or shadow) "
             "| false positives |", "|---|---|---|---|---|---|"]
    for day, s in rows:
        lines.append(f"| {day} | {s.shadow} | {s.recall:.3f} | {s.recall_outside:.3f} | {s.excluded_rate:.3f} "
                     f"| {s.false_rate:.4f} |")
    for name, part in (("all dates", rows), ("cumulus dates", [r for r in rows if r[0] in cumulus])):
        t = total(part)
        lines.append(f"| **{name}** | {t.shadow} | **{t.recall:.3f}** | {t.recall_outside:.3f} "
                     f"| {t.excluded_rate:.3f} | **{t.false_rate:.4f}** |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=None, help="demo archive folder (built when absent)")
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    root = build_demo_archive(args.demo_dir)
    out = ["# Cloud shadows on the demo archive", "",
           "`bench/shadows.py`: the shadow mask of `stats.clouds.shadows` (cloud heights 200-4000 m, B08 below 0.5 "
           "of the lit land's median, water NDWI > 0.3) over the whole demo scene on every date whose truth holds "
           "shadows, against `truth/<date>.tif`. Recall counts truth shadow pixels that are not water (water is "
           "never shadow); false positives are truth-clear pixels (not cloud, not shadow, not no data) flagged "
           "shadow. Target: recall >= 0.85, false positives <= 0.03.", ""]
    figures: dict[str, dict[str, dict[str, float]]] = {}
    cumulus = {d for d, v in load_ground_truth(root)["dates"].items() if v["sky"] == "cumulus"}
    for name, params in [*MASKS.items(), ("truth cloud mask", None)]:
        rows = list(evaluate(root, params))
        title = (f"## Cloud mask: s2cloudless, {name} cells (resolution {params.resolution}, average_over "
                 f"{params.average_over}, dilation_size {params.dilation_size})" if params is not None else
                 "## Cloud mask: the truth's own (an upper bound: no detector's mask)")
        out += [title, "", *table(rows, cumulus), ""]
        figures[name] = {day: {"recall": s.recall, "false_positive_rate": s.false_rate} for day, s in rows}
        print("\n".join([title, *table(rows, cumulus)]), flush=True)
    out += ["## Reading the figures", "",
            "- The target is reached on the cumulus dates with the 40 m s2cloudless mask, not with the default "
            "160 m one: its cells average small cumulus with the ground around them and miss them (their shadows "
            "are then never cast), and its averaging and dilation cover many shadow pixels next to the clouds "
            "(`excluded` counts those: `cloud.mask` leaves them out of the statistics anyway, but they are not "
            "in the shadow mask).",
            "- 2023-11-11 is cirrus at 9000 m under a 26 degree sun: its shadows fall about 18 km from the cloud "
            "that casts them, outside the 5 km scene and above the default 4000 m heights; no cloud in the "
            "window can explain them, so none is found (and nothing is guessed).",
            "- The rest of the misses on the truth's own mask are the shadow's soft edge (thin cloud edges that "
            "reach the truth's optical thickness of 1 on the line to the sun but dim B08 by less than half).", ""]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "shadows.md").write_text("\n".join(out) + "\n", encoding="utf-8")
    (args.results_dir / "shadows.json").write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
