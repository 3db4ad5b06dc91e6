"""How published Sentinel-2 collections name their band assets, and how their DN are harmonised.

One table per layout maps each polyfis band name (``B01`` … ``B12``, ``B8A``) to the asset keys an item of
that layout may use for it, first match wins:

* ``polyfis``: the keys polyfis writes itself (``B01`` … ``B12``, ``B8A``; ``SCL`` for an L2A item);
* ``earth-search``: Element 84's Earth Search collections ``sentinel-2-l1c`` (JP2 in the requester-pays
  bucket ``sentinel-s2-l1c``), ``sentinel-2-l2a`` and ``sentinel-2-c1-l2a`` (COGs): the STAC ``eo:bands``
  common names (``coastal``, ``blue``, ``green``, ``red``, ``rededge1`` … ``rededge3``, ``nir``, ``nir08``,
  ``nir09``, ``cirrus``, ``swir16``, ``swir22``; ``scl``), and the ``-jp2`` twins Earth Search's L2A items
  also carry;
* ``cdse``: the Copernicus Data Space Ecosystem's STAC items of SAFE granules, one JP2 per band keyed by band
  and resolution (``B01_60m``, ``B02_10m``, ``SCL_20m``); only a band's native resolution is taken, since a
  band resampled by the ground segment no longer holds the stored pixels.

An item's layout is the one whose keys match most of its assets (:func:`detect_layout`). Its processing level
(:func:`product_level`) is L2A when the item says so (``s2:product_type`` ``S2MSI2A``, ``processing:level``)
or carries a scene classification, else L1C.

Harmonisation (:func:`dn_offset`): DN from processing baseline 04.00 on carry an offset of 1000. When a band
asset gives ``raster:bands`` ``offset`` and ``scale`` (reflectance = DN * scale + offset, as Earth Search
publishes them), the DN offset is ``-offset / scale``; otherwise it follows ``s2:processing_baseline``. Each
item is harmonised on its own, so the tiles of one date may mix baselines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pystac

from ..bands import COMMON_NAME, NATIVE_RESOLUTION, S2_BANDS, baseline_offset

#: The key under which an acquisition keeps its scene classification (L2A ``SCL``) asset.
SCL_ASSET: Final = "SCL"

#: Earth Search's asset key of each band: its common name, the three red-edge bands numbered.
EARTH_SEARCH_KEYS: Final[dict[str, str]] = {
    **{band: COMMON_NAME[band] for band in S2_BANDS},
    "B05": "rededge1", "B06": "rededge2", "B07": "rededge3",
}

#: Layout name -> band (and ``SCL``) -> asset keys, first match wins.
LAYOUTS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "polyfis": {**{band: (band,) for band in S2_BANDS}, SCL_ASSET: (SCL_ASSET,)},
    "earth-search": {**{band: (key, f"{key}-jp2") for band, key in EARTH_SEARCH_KEYS.items()},
                     SCL_ASSET: ("scl", "scl-jp2")},
    "cdse": {**{band: (f"{band}_{NATIVE_RESOLUTION[band]}m", band) for band in S2_BANDS},
             SCL_ASSET: ("SCL_20m", SCL_ASSET)},
}


@dataclass(frozen=True)
class ItemAssets:
    """What one item holds, read through its layout: ``hrefs`` (band or ``SCL`` -> absolute href), ``keys``
    (band or ``SCL`` -> the item's own asset key), the ``layout`` name and the processing ``level``."""

    layout: str
    level: str
    hrefs: Mapping[str, str]
    keys: Mapping[str, str]


def detect_layout(asset_keys: Mapping[str, Any]) -> str:
    """The layout whose keys name most of ``asset_keys`` (``polyfis`` on a tie or when none match).

    >>> detect_layout({"blue": 0, "red": 0, "scl": 0}), detect_layout({"B02_10m": 0, "B8A_20m": 0})
    ('earth-search', 'cdse')
    """
    def matches(name: str) -> int:
        return sum(any(key in asset_keys for key in keys) for keys in LAYOUTS[name].values())

    return max(LAYOUTS, key=lambda name: (matches(name), name == "polyfis"))


def product_level(properties: Mapping[str, Any], has_scl: bool) -> str:
    """``L2A`` or ``L1C``, from the item's ``s2:product_type`` / ``processing:level``, else from whether it
    carries a scene classification.

    >>> product_level({"s2:product_type": "S2MSI2A"}, False), product_level({}, False)
    ('L2A', 'L1C')
    """
    kind = str(properties.get("s2:product_type") or "").upper()
    level = str(properties.get("processing:level") or "").upper()
    if kind.endswith("2A") or level in ("L2A", "L2"):
        return "L2A"
    if kind.endswith("1C") or level in ("L1C", "L1"):
        return "L1C"
    return "L2A" if has_scl else "L1C"


def item_assets(item: pystac.Item) -> ItemAssets:
    """The band and ``SCL`` assets of ``item``, through its layout (:func:`detect_layout`)."""
    layout = detect_layout(item.assets)
    hrefs: dict[str, str] = {}
    keys: dict[str, str] = {}
    for band, candidates in LAYOUTS[layout].items():
        key = next((k for k in candidates if k in item.assets), None)
        if key is None:
            continue
        asset = item.assets[key]
        hrefs[band] = asset.get_absolute_href() or asset.href
        keys[band] = key
    return ItemAssets(layout=layout, level=product_level(item.properties, SCL_ASSET in hrefs), hrefs=hrefs,
                      keys=keys)


def expected_key(layout: str, band: str) -> str:
    """The asset key a layout gives ``band`` (its first candidate), for messages about a missing asset.

    >>> expected_key("earth-search", "B05"), expected_key("cdse", "B01"), expected_key("polyfis", "B8A")
    ('rededge1', 'B01_60m', 'B8A')
    """
    return LAYOUTS.get(layout, LAYOUTS["polyfis"]).get(band, (band,))[0]


def raster_offset(asset: pystac.Asset) -> int | None:
    """The DN offset a band asset's ``raster:bands`` give (``-offset / scale``, rounded), or None when they
    give no offset (or no usable scale).

    >>> raster_offset(pystac.Asset("b.tif", extra_fields={"raster:bands": [{"scale": 0.0001, "offset": -0.1}]}))
    1000
    """
    bands = asset.extra_fields.get("raster:bands")
    if not isinstance(bands, list) or not bands or not isinstance(bands[0], dict):
        return None
    offset, scale = bands[0].get("offset"), bands[0].get("scale")
    if not isinstance(offset, (int, float)) or not isinstance(scale, (int, float)) or not scale:
        return None
    return round(-float(offset) / float(scale))


def dn_offset(item: pystac.Item, assets: ItemAssets) -> int:
    """The DN offset to remove from the item's bands: from the first band asset whose ``raster:bands`` give
    one, else from ``s2:processing_baseline`` (:func:`stats.bands.baseline_offset`)."""
    for band in S2_BANDS:
        key = assets.keys.get(band)
        if key is not None:
            found = raster_offset(item.assets[key])
            if found is not None:
                return max(found, 0)
    return baseline_offset(item.properties.get("s2:processing_baseline"))
