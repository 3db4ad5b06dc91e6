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

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..bands import COMMON_NAME, NATIVE_RESOLUTION, S2_BANDS, baseline_offset
from ..errors import ArchiveError

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
    return _layout_of_keys(frozenset(asset_keys))


@functools.lru_cache(maxsize=1024)
def _layout_of_keys(asset_keys: frozenset[str]) -> str:
    """:func:`detect_layout` of a set of keys, remembered (the items of one collection share their keys)."""
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


def item_assets(item_id: str, assets: Mapping[str, Mapping[str, Any]], properties: Mapping[str, Any]) -> ItemAssets:
    """The band and ``SCL`` assets of an item, through its layout (:func:`detect_layout`): ``assets`` are the
    item's asset dicts (as STAC JSON gives them), each with an absolute ``href``.

    :raises ArchiveError: when an asset taken has no href.
    """
    layout = detect_layout(assets)
    hrefs: dict[str, str] = {}
    keys: dict[str, str] = {}
    for band, candidates in LAYOUTS[layout].items():
        for key in candidates:
            if key in assets:
                href = assets[key].get("href")
                if not isinstance(href, str) or not href:
                    raise ArchiveError(f"STAC Item {item_id!r}: asset {key!r} has no href")
                hrefs[band] = href
                keys[band] = key
                break
    return ItemAssets(layout=layout, level=product_level(properties, SCL_ASSET in hrefs), hrefs=hrefs, keys=keys)


def expected_key(layout: str, band: str) -> str:
    """The asset key a layout gives ``band`` (its first candidate), for messages about a missing asset.

    >>> expected_key("earth-search", "B05"), expected_key("cdse", "B01"), expected_key("polyfis", "B8A")
    ('rededge1', 'B01_60m', 'B8A')
    """
    return LAYOUTS.get(layout, LAYOUTS["polyfis"]).get(band, (band,))[0]


def raster_offset(asset: Mapping[str, Any]) -> int | None:
    """The DN offset a band asset's (dict's) ``raster:bands`` give (``-offset / scale``, rounded), or None when
    they give no offset (or no usable scale).

    >>> raster_offset({"href": "b.tif", "raster:bands": [{"scale": 0.0001, "offset": -0.1}]})
    1000
    """
    bands = asset.get("raster:bands")
    if not isinstance(bands, list) or not bands or not isinstance(bands[0], dict):
        return None
    offset, scale = bands[0].get("offset"), bands[0].get("scale")
    if not isinstance(offset, (int, float)) or not isinstance(scale, (int, float)) or not scale:
        return None
    return round(-float(offset) / float(scale))


def dn_offset(assets: Mapping[str, Mapping[str, Any]], found: ItemAssets, properties: Mapping[str, Any]) -> int:
    """The DN offset to remove from an item's bands (``assets``: its asset dicts, ``found``: what
    :func:`item_assets` took from them): from the first band asset whose ``raster:bands`` give one, else from
    ``s2:processing_baseline`` (:func:`stats.bands.baseline_offset`)."""
    for band in S2_BANDS:
        key = found.keys.get(band)
        if key is not None:
            offset = raster_offset(assets[key])
            if offset is not None:
                return max(offset, 0)
    return baseline_offset(properties.get("s2:processing_baseline"))
