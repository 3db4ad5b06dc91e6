"""Deterministic synthetic Sentinel-2 L1C demo archive.

The demo archive is one 5.04 km x 5.04 km scene in UTM 33N observed on every date of a recipe
(``stats/fixtures/demo_recipe.json``): crop fields with phenology, a lake whose shore retreats in late summer
around a wooded island, a forest, a town, a gravel pit and grassland, seen through clear skies, thin or
thick cirrus, cumulus with their shadows and full overcast, sometimes cut by a no-data swath edge.

How a date is made
------------------
1. **Surface (10 m).** Every pixel belongs to a cover (a land-cover class, or a field's crop). A cover's
   spectrum on a day is a linear mixture of endmember spectra whose fractions are interpolated between
   keypoints of the recipe (bare soil in winter, green-up, peak, ripening, harvest …). A static texture
   scales the surface part of the signal (the part above the path radiance) by a few percent; fields get
   1.5 %, so they stay spectrally homogeneous.
2. **Sky.** A cloud optical thickness field ``tau`` (10 m) is built from the recipe: analytic cumulus blobs
   with rough edges and internal texture, streaky cirrus, or a textured overcast deck. The shadow uses the
   same field displaced away from the sun (solar position computed for the acquisition time, cloud height
   from the recipe). Shadow scales the surface part by ``T + (1 - T) * diffuse`` with the delta-scaled
   direct transmission ``T = exp(-(1 - g) tau_sun / cos(zenith))``. A cloud layer then mixes linearly with
   the surface: ``TOA = a * albedo + (1 - a) * surface``, with the two-stream reflectance of a conservative
   layer ``a = (1 - g) tau / (2 + (1 - g) tau)`` (``g`` the asymmetry parameter of the cloud type).
3. **Sensor.** Gaussian noise is added per 10 m pixel; the 20 m and 60 m bands are 2x2 and 6x6 block means of
   the 10 m reflectance, so all bands are consistent. DN = ``round(reflectance * 10000)``, plus 1000 from
   processing baseline 04.00 on, clipped to [1, 65535]; no-data pixels (a strip beyond a swath edge, drawn
   on the 60 m grid so all bands agree) are 0.

Ground truth follows the recipe's physical ``cloud_rule`` (cloud where ``tau >= 1``), never a detector's
output. It is written to ``<root>/ground_truth.json`` (per polygon and date: cloud, shadow and no-data
fractions, water area, clear-sky NDVI; per date: sky type, baseline, true cloud cover …) and as 10 m rasters
under ``<root>/truth/`` (``landcover.tif`` and one bit-flag raster per date, see
:data:`~stats.archive.synthetic.truth.TRUTH_FLAGS`).

Randomness comes from one seed in the recipe, split per purpose and date with :class:`numpy.random.SeedSequence`,
so the same recipe gives the same bytes on every run.

Modules
-------
``files``
    File names, default folders (the only place the environment is read) and JSON input/output.
``recipe``
    Reading and checking the recipe and the polygons.
``cache``
    Digest, stamp and atomic install of a built archive.
``scene``
    Pixel grids and layout geometry (polygons, lake, island, lines).
``randomness``
    Seeded generators per purpose and date, smooth value noise.
``sun``
    Solar position of an acquisition.
``surface``
    Land cover, materials, texture and cover spectra.
``sky``
    Cloud optical thickness on the line of sight and to the sun.
``acquisition``
    TOA reflectance, sensor noise, no-data strip and band DN.
``truth``
    Truth rasters and per-polygon answers, and reading them back.
``build``
    :func:`build_demo_archive` and the date-by-date generation.
"""

from __future__ import annotations

from .build import build_demo_archive, demo_archive_of
from .files import STAMP_FILE, default_demo_dir, fixtures_dir
from .recipe import demo_polygons
from .scene import lake_level
from .truth import load_ground_truth, load_truth_masks

__all__ = [
    "STAMP_FILE",
    "build_demo_archive",
    "demo_archive_of",
    "default_demo_dir",
    "demo_polygons",
    "fixtures_dir",
    "lake_level",
    "load_ground_truth",
    "load_truth_masks",
]
