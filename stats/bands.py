"""Sentinel-2 L1C band metadata: names, native resolutions and the s2cloudless model bands.

Band order everywhere in polyfis is :data:`S2_BANDS` (B01 … B12 with B8A after B08), the order of the
Sentinel-2 product and of s2cloudless's 13-band input.
"""

from __future__ import annotations

from typing import Final

#: The 13 Sentinel-2 L1C bands in product order.
S2_BANDS: Final[tuple[str, ...]] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)

#: Native ground sampling distance of each band, metres.
NATIVE_RESOLUTION: Final[dict[str, int]] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}

#: Central wavelength in nanometres (Sentinel-2A), for STAC ``eo:bands``.
CENTER_WAVELENGTH_NM: Final[dict[str, float]] = {
    "B01": 442.7, "B02": 492.4, "B03": 559.8, "B04": 664.6, "B05": 704.1, "B06": 740.5, "B07": 782.8,
    "B08": 832.8, "B8A": 864.7, "B09": 945.1, "B10": 1373.5, "B11": 1613.7, "B12": 2202.4,
}

#: STAC ``eo:bands`` common names where one exists.
COMMON_NAME: Final[dict[str, str]] = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge", "B06": "rededge",
    "B07": "rededge", "B08": "nir", "B8A": "nir08", "B09": "nir09", "B10": "cirrus", "B11": "swir16",
    "B12": "swir22",
}

#: The 10 bands the s2cloudless LightGBM model takes, in its input order.
MODEL_BANDS: Final[tuple[str, ...]] = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")

#: Query resolutions polyfis accepts, metres (nominal: the grid is the tile's own 10/20/60 m grid).
RESOLUTIONS: Final[tuple[int, ...]] = (10, 20, 60)

#: DN offset added from processing baseline 04.00 on (``RADIO_ADD_OFFSET`` = -1000).
BASELINE_04_OFFSET: Final[int] = 1000

#: Reflectance = DN / QUANTIFICATION_VALUE (after removing the offset).
QUANTIFICATION_VALUE: Final[float] = 10000.0


def baseline_offset(processing_baseline: str | None) -> int:
    """Return the DN offset to subtract for a processing baseline ("04.00" and later: 1000, else 0).

    >>> baseline_offset("03.01"), baseline_offset("04.00"), baseline_offset("05.09"), baseline_offset(None)
    (0, 1000, 1000, 0)
    """
    if not processing_baseline:
        return 0
    try:
        major = int(str(processing_baseline).split(".")[0])
    except ValueError:
        return 0
    return BASELINE_04_OFFSET if major >= 4 else 0
