"""Up- and downsampling: how a band is brought onto a grid whose pixels are smaller or larger than its own.

Sentinel Hub's processing options ``upsampling`` and ``downsampling`` (the Statistical and Process APIs'
``input.data[].processing``, FIS's ``UPSAMPLING``/``DOWNSAMPLING``) name the method: ``NEAREST`` (the
default), ``BILINEAR`` or ``BICUBIC``, and for FIS's downsampling also ``BOX``. A band whose pixels are as large
on the ground as the grid's or larger (20/60 m bands on the 10 m grid, every band on a 5 m grid) is upsampled,
a band with smaller pixels (10 m bands on a 60 m grid) downsampled; the sizes are compared in metres, so that
a grid in degrees or in Web Mercator is judged as one in UTM. The methods are rasterio's (GDAL's warp
kernels): ``BILINEAR`` is :attr:`~rasterio.enums.Resampling.bilinear`, ``BICUBIC``
:attr:`~rasterio.enums.Resampling.cubic` and ``BOX`` :attr:`~rasterio.enums.Resampling.average`, with DN 0
as no data in the source and NaN for no data in the result (:func:`stats.raster.warp_band`).

``NEAREST`` keeps polyfis's own reading (:mod:`stats.raster`): each grid pixel takes the band pixel containing
its centre, except that a band read onto a grid of whole multiples of its pixels is averaged over its valid
pixels (so that a 60 m answer does not depend on which 10 m pixel sits at each centre).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rasterio.enums import Resampling

from .errors import InvalidRequestError

#: Sentinel Hub's method names and the rasterio method of each.
METHODS: Mapping[str, Resampling] = {
    "NEAREST": Resampling.nearest, "BILINEAR": Resampling.bilinear, "BICUBIC": Resampling.cubic,
    "BOX": Resampling.average,
}
#: Methods accepted for upsampling and for downsampling.
UPSAMPLING = ("NEAREST", "BILINEAR", "BICUBIC")
DOWNSAMPLING = ("NEAREST", "BILINEAR", "BICUBIC")
#: FIS also accepts BOX (an area average) for downsampling.
FIS_DOWNSAMPLING = (*DOWNSAMPLING, "BOX")
#: Relative tolerance under which a band's pixel counts as the same size as the grid's (and is upsampled).
_SAME_SIZE = 1e-6


@dataclass(frozen=True)
class Sampling:
    """The upsampling and downsampling methods of a request (Sentinel Hub names, upper case)."""

    upsampling: str = "NEAREST"
    downsampling: str = "NEAREST"

    @classmethod
    def parse(cls, upsampling: Any, downsampling: Any, names: tuple[str, str], *,
              down_accepted: tuple[str, ...] = DOWNSAMPLING) -> Sampling:
        """The methods given as text in any case (None for the default ``NEAREST``); ``names`` are the
        two fields, for the errors.

        :raises InvalidRequestError: naming the field, the value received and the accepted ones.
        """
        chosen = []
        for value, name, accepted in ((upsampling, names[0], UPSAMPLING), (downsampling, names[1], down_accepted)):
            if value is None:
                chosen.append("NEAREST")
                continue
            text = value.strip().upper() if isinstance(value, str) else None
            if text not in accepted:
                raise InvalidRequestError(f"{name}: got {value!r:.80}; expected one of {list(accepted)}")
            chosen.append(text)
        return cls(*chosen)

    @property
    def nearest(self) -> bool:
        """True when both methods are NEAREST (polyfis's own reading, see the module docstring)."""
        return self.upsampling == self.downsampling == "NEAREST"

    def method(self, band_pixel_m: float, grid_pixel_m: float) -> Resampling:
        """The rasterio method for a band of ``band_pixel_m`` metre pixels onto a grid of ``grid_pixel_m``
        metre pixels (ground sizes, :func:`stats.geometry.ground_pixel_size`): upsampling when the band's
        pixels are at least as large."""
        up = band_pixel_m >= grid_pixel_m * (1 - _SAME_SIZE)
        return METHODS[self.upsampling if up else self.downsampling]


#: Polyfis's default: nearest neighbour both ways.
NEAREST = Sampling()
