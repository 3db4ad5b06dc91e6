"""Archives of Sentinel-2 L1C acquisitions as static STAC catalogs.

An archive is a STAC Collection (``collection.json``) whose Items are acquisition tiles. Each Item carries
``datetime``, ``eo:cloud_cover``, ``s2:processing_baseline`` and ``proj:epsg``, and one asset per band: a
single-band uint16 Cloud-Optimised GeoTIFF at the band's native resolution, nodata 0, keyed by the band
name (``B01`` … ``B12``, ``B8A``). Hrefs may be local paths or http(s) URLs; rasterio reads both.

:class:`Archive` is the archive the engine searches, whatever its source (:mod:`stats.archive.sources`: a
static catalog, its stac-geoparquet index, a STAC API). :class:`ArchiveWriter` writes COGs, Items and the
index; the demo generator and ``polyfis ingest`` both use it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pystac
import rasterio
from affine import Affine
from pyproj import CRS, Transformer
from pystac.layout import TemplateLayoutStrategy
from pystac.utils import str_to_datetime
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ..bands import CENTER_WAVELENGTH_NM, COMMON_NAME, S2_BANDS, baseline_offset
from ..errors import ArchiveError
from .layouts import dn_offset, expected_key, item_assets

if TYPE_CHECKING:
    from .sources import ArchiveSource

COLLECTION_FILE = "collection.json"
PROJECTION_V1 = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
EO_V1 = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
VIEW_V1 = "https://stac-extensions.github.io/view/v1.0.0/schema.json"


#: Item property describing the stored CLP/CLM layers (written by ``polyfis clouds``).
CLOUD_LAYERS_PROPERTY = "polyfis:clouds"
#: Asset keys of the stored cloud probability and cloud mask layers.
CLP_ASSET, CLM_ASSET = "CLP", "CLM"


@dataclass(frozen=True)
class CloudLayerAssets:
    """The stored cloud layers of an acquisition: the ``CLP`` (uint8 round(255 p)) and ``CLM`` (uint8 0/1, 255
    for no data) COGs, on cells of ``cell_pixels`` x ``cell_pixels`` pixels of the tile's 10 m class
    (``resolution`` metres on the ground) anchored at the tile origin, and the mask parameters of ``CLM``."""

    clp: str
    clm: str
    resolution: int
    cell_pixels: int
    threshold: float
    average_over: int
    dilation_size: int
    #: the CLM asset's ``proj:transform`` (6 coefficients) and ``proj:shape``, when the item gives them
    transform: tuple[float, ...] | None = None
    shape: tuple[int, int] | None = None

    @classmethod
    def from_dict(cls, item_id: str, properties: Mapping[str, Any], assets: Mapping[str, Mapping[str, Any]]
                  ) -> CloudLayerAssets | None:
        """The layers of an item (its properties and asset dicts, hrefs absolute) that has both assets and the
        :data:`CLOUD_LAYERS_PROPERTY`, else None."""
        info = properties.get(CLOUD_LAYERS_PROPERTY)
        clp, clm = assets.get(CLP_ASSET), assets.get(CLM_ASSET)
        if not isinstance(info, dict) or clp is None or clm is None:
            return None
        transform, shape = clm.get("proj:transform"), clm.get("proj:shape")
        try:
            return cls(clp=str(clp["href"]), clm=str(clm["href"]),
                       resolution=int(info["resolution"]), cell_pixels=int(info["cell_pixels"]),
                       threshold=float(info["threshold"]), average_over=int(info["average_over"]),
                       dilation_size=int(info["dilation_size"]),
                       transform=tuple(float(v) for v in transform[:6]) if transform else None,
                       shape=(int(shape[0]), int(shape[1])) if shape else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"STAC Item {item_id!r}: malformed {CLOUD_LAYERS_PROPERTY} property: {exc}") from exc


@dataclass(frozen=True)
class Acquisition:
    """One acquisition tile of an archive.

    ``assets`` maps band name to an absolute href (path or URL). ``footprint`` is the tile's data extent
    in EPSG:4326 (lon, lat), ``bbox`` its bounds (minx, miny, maxx, maxy). ``sun_azimuth`` (degrees
    clockwise from north) and ``sun_elevation`` (degrees above the horizon) are the tile's mean sun angles,
    None when the item does not give them (:func:`sun_angles`).
    """

    id: str
    datetime: dt.datetime
    crs: str
    footprint: BaseGeometry
    assets: Mapping[str, str]
    cloud_cover: float | None = None
    processing_baseline: str | None = None
    tile: str | None = None
    sun_azimuth: float | None = None
    sun_elevation: float | None = None
    cloud_layers: CloudLayerAssets | None = None
    #: the item's layout (:mod:`stats.archive.layouts`), processing level (``L1C`` or ``L2A``), the item's own
    #: asset key of each band, and the DN offset its ``raster:bands`` or baseline give (None: from the baseline)
    layout: str = "polyfis"
    level: str = "L1C"
    asset_keys: Mapping[str, str] = field(default_factory=dict)
    offset: int | None = None

    @property
    def date(self) -> dt.date:
        """UTC calendar date of the acquisition."""
        return self.datetime.astimezone(dt.UTC).date()

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """Bounds of the footprint in EPSG:4326."""
        return tuple(self.footprint.bounds)  # type: ignore[return-value]

    @property
    def dn_offset(self) -> int:
        """DN offset to remove for harmonisation: the item's own (:func:`stats.archive.layouts.dn_offset`),
        else 1000 from baseline 04.00 on and 0 before."""
        return baseline_offset(self.processing_baseline) if self.offset is None else self.offset

    def asset_key(self, band: str) -> str:
        """The item's asset key for ``band`` (or ``SCL``), or the one its layout would give it."""
        return self.asset_keys.get(band) or expected_key(self.layout, band)


def group_by_date(acquisitions: Iterable[Acquisition]) -> list[list[Acquisition]]:
    """Acquisitions grouped by UTC date, oldest date first; within a date, in acquisition order (the
    order in which a date's tiles are mosaicked)."""
    groups: dict[dt.date, list[Acquisition]] = {}
    for acq in acquisitions:
        groups.setdefault(acq.date, []).append(acq)
    return [sorted(groups[day], key=lambda a: (a.datetime, a.id)) for day in sorted(groups)]


class Archive:
    """An archive of acquisitions, whatever its source (:mod:`stats.archive.sources`): a static STAC catalog in
    memory, a stac-geoparquet index or a STAC API. The engine searches it; it does not care which it is.

    ``Archive(acquisitions)`` holds the given acquisitions in memory; :meth:`open` opens a reference.
    """

    def __init__(self, acquisitions: Iterable[Acquisition] = (), *, id: str = "sentinel-2-l1c",
                 title: str = "Sentinel-2 L1C", href: str | None = None, metadata: Mapping[str, Any] | None = None,
                 source: ArchiveSource | None = None) -> None:
        if source is None:
            from .sources.static import MemorySource

            source = MemorySource(acquisitions, id=id, title=title, href=href, metadata=dict(metadata or {}))
        self.source = source

    @property
    def id(self) -> str:
        """The collection's id."""
        return self.source.id

    @property
    def title(self) -> str:
        """The collection's title."""
        return self.source.title

    @property
    def href(self) -> str | None:
        """The reference the archive was opened from (opens it again), None for one built in memory."""
        return self.source.href or None

    @property
    def metadata(self) -> dict[str, Any]:
        """The catalog's ``polyfis:metadata`` (the demo archive's recipe digest ...)."""
        return self.source.metadata

    @property
    def kind(self) -> str:
        """What the source is, for messages."""
        return self.source.kind

    @classmethod
    def open(cls, href: str | os.PathLike[str]) -> Archive:
        """Open an archive reference: a folder holding ``collection.json`` (searched through its
        ``items.parquet`` index when it has one), a STAC file or URL, a ``.parquet`` stac-geoparquet index, or
        ``stac+https://host/path#collection`` for a STAC API.

        :raises ArchiveError: when the archive is missing, malformed or unreachable, naming it.
        """
        from .sources import open_source

        return cls(source=open_source(href))

    def search(
        self,
        geometry_wgs84: BaseGeometry,
        start: dt.datetime,
        end: dt.datetime,
        *,
        max_cloud_cover: float | None = None,
    ) -> list[Acquisition]:
        """Acquisitions whose footprint intersects ``geometry_wgs84`` with ``start <= datetime <= end``,
        sorted by (datetime, id).

        ``max_cloud_cover`` (percent, 0–100) drops tiles whose ``eo:cloud_cover`` is above it.
        """
        return self.source.search(geometry_wgs84, start, end, max_cloud_cover=max_cloud_cover)

    def get(self, ids: Sequence[str]) -> list[Acquisition]:
        """The acquisitions of ``ids`` in that order.

        :raises MissingAcquisitionError: naming the ids the archive does not hold.
        """
        return self.source.get(ids)

    @property
    def acquisitions(self) -> list[Acquisition]:
        """Every acquisition, sorted by (datetime, id) (for local archives: a STAC API is searched, not listed).

        :raises ArchiveError: for a STAC API.
        """
        return self.source.all()

    @property
    def count(self) -> int | None:
        """How many acquisitions the archive holds, None when its source cannot say."""
        return self.source.count

    def covers(self, geometry_wgs84: BaseGeometry) -> bool:
        """Whether any acquisition's footprint meets the geometry, at any time."""
        return self.source.covers(geometry_wgs84)

    def bands(self) -> list[str]:
        """The band asset names the archive's acquisitions have."""
        return self.source.bands()

    def dates(self) -> list[tuple[dt.date, float | None]]:
        """Every date with an acquisition and its tiles' mean ``eo:cloud_cover`` (empty for a STAC API)."""
        return self.source.dates()

    @property
    def spatial_extent(self) -> tuple[float, float, float, float] | None:
        """Union of all footprints' bounds in EPSG:4326, or None for an empty archive."""
        return self.source.spatial_extent

    @property
    def temporal_extent(self) -> tuple[dt.datetime, dt.datetime] | None:
        """First and last acquisition times, or None for an empty archive."""
        return self.source.temporal_extent


#: Item properties that give the sun angles: the STAC view extension's, else Earth Search's mean solar angles.
SUN_PROPERTIES = ("view:sun_azimuth", "view:sun_elevation")
MEAN_SOLAR_PROPERTIES = ("s2:mean_solar_azimuth", "s2:mean_solar_zenith")


def _angle(value: Any, low: float, high: float) -> float | None:
    """A finite number from ``low`` to ``high`` as a float, else None (a property that cannot be used)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if np.isfinite(number) and low <= number <= high else None


def sun_angles(properties: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``(azimuth, elevation)`` of the sun, degrees, from an item's properties: ``view:sun_azimuth`` and
    ``view:sun_elevation``, else ``s2:mean_solar_azimuth`` and ``90 - s2:mean_solar_zenith``; None for an
    angle absent or out of range (azimuth 0 to 360, elevation -90 to 90).

    >>> sun_angles({"s2:mean_solar_azimuth": 157.5, "s2:mean_solar_zenith": 50.25})
    (157.5, 39.75)
    """
    azimuth = _angle(properties.get(SUN_PROPERTIES[0]), 0.0, 360.0)
    elevation = _angle(properties.get(SUN_PROPERTIES[1]), -90.0, 90.0)
    if azimuth is None:
        azimuth = _angle(properties.get(MEAN_SOLAR_PROPERTIES[0]), 0.0, 360.0)
    if elevation is None:
        zenith = _angle(properties.get(MEAN_SOLAR_PROPERTIES[1]), 0.0, 180.0)
        elevation = None if zenith is None else 90.0 - zenith
    return azimuth, elevation


def acquisition_from_dict(data: Mapping[str, Any]) -> Acquisition:
    """Build an :class:`Acquisition` from a STAC Item's dict (as its JSON gives it), written by polyfis or any
    Sentinel-2 L1C/L2A STAC source, its assets read through the item's layout (:mod:`stats.archive.layouts`):
    the one Item -> Acquisition conversion rule. The assets' hrefs must be absolute; ``properties.datetime`` is an
    RFC 3339 string or a :class:`datetime.datetime`.

    :raises ArchiveError: naming the item and what it lacks.
    """
    item_id = str(data.get("id"))
    props = data.get("properties")
    if not isinstance(props, Mapping):
        raise ArchiveError(f"STAC Item {item_id!r} has no properties")
    when = props.get("datetime")
    if isinstance(when, str):
        try:
            when = str_to_datetime(when)
        except ValueError as exc:
            raise ArchiveError(f"STAC Item {item_id!r} has a malformed datetime {when!r}") from exc
    if not isinstance(when, dt.datetime):
        raise ArchiveError(f"STAC Item {item_id!r} has no datetime")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    epsg = props.get("proj:epsg")
    code = props.get("proj:code") or (f"EPSG:{epsg}" if epsg else None)
    if code is None:
        raise ArchiveError(f"STAC Item {item_id!r} has neither proj:epsg nor proj:code")
    assets = data.get("assets") or {}
    found = item_assets(item_id, assets, props)
    geometry = data.get("geometry")
    if geometry is None:
        raise ArchiveError(f"STAC Item {item_id!r} has no geometry")
    azimuth, elevation = sun_angles(props)
    return Acquisition(
        id=item_id,
        datetime=when.astimezone(dt.UTC),
        crs=str(code),
        footprint=shape(geometry),
        assets=found.hrefs,
        cloud_cover=props.get("eo:cloud_cover"),
        processing_baseline=props.get("s2:processing_baseline"),
        tile=props.get("s2:mgrs_tile") or props.get("grid:code"),
        sun_azimuth=azimuth,
        sun_elevation=elevation,
        cloud_layers=CloudLayerAssets.from_dict(item_id, props, assets),
        layout=found.layout,
        level=found.level,
        asset_keys=found.keys,
        offset=dn_offset(assets, found, props),
    )


def acquisition_from_item(item: pystac.Item) -> Acquisition:
    """:func:`acquisition_from_dict` of a pystac Item: its datetime, and its assets' hrefs made absolute
    against the item's own href."""
    return acquisition_from_dict({
        "id": item.id,
        "geometry": item.geometry,
        "properties": {**item.properties, "datetime": item.datetime},
        "assets": {key: {**asset.extra_fields, "href": asset.get_absolute_href() or asset.href}
                   for key, asset in item.assets.items()},
    })


@dataclass(frozen=True)
class CogLayout:
    """How band COGs are written: internal tile size in pixels, compression codec and predictor."""

    blocksize: int = 512
    compress: str = "DEFLATE"
    predictor: int = 2

    def profile(self) -> dict[str, Any]:
        """Creation options for GDAL's COG driver."""
        options: dict[str, Any] = {"blocksize": self.blocksize, "compress": self.compress}
        if self.compress.upper() not in ("NONE", "JPEG", "WEBP", "JXL"):
            options["predictor"] = self.predictor
        return options


def write_band_cog(path: Path, array: np.ndarray, crs: str, transform: Affine, *, nodata: int = 0,
                   layout: CogLayout | None = None) -> None:
    """Write one uint16 band as a Cloud-Optimised GeoTIFF with overviews (default :class:`CogLayout`)."""
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D band array, got shape {array.shape}")
    profile = {
        "driver": "COG",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": "uint16",
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        **(layout or CogLayout()).profile(),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array.astype(np.uint16, copy=False), 1)


def footprint_wgs84(crs: str, bounds: Sequence[float]) -> BaseGeometry:
    """The bounds (minx, miny, maxx, maxy) in ``crs`` as a densified polygon in EPSG:4326 (lon, lat)."""
    transformer = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)
    minx, miny, maxx, maxy = bounds
    xs = np.concatenate([np.linspace(minx, maxx, 21), np.full(21, maxx), np.linspace(maxx, minx, 21),
                         np.full(21, minx)])
    ys = np.concatenate([np.full(21, miny), np.linspace(miny, maxy, 21), np.full(21, maxy),
                         np.linspace(maxy, miny, 21)])
    lon, lat = transformer.transform(xs, ys)
    return shape({"type": "Polygon", "coordinates": [list(zip(lon, lat))]})


class ArchiveWriter:
    """Write acquisitions into an archive folder as COGs plus a self-contained STAC Collection.

    Opening a folder that already holds an archive appends to it; an Item with an existing id is replaced.
    Call :meth:`save` (or use the writer as a context manager) to write ``collection.json``.
    """

    def __init__(self, root: str | os.PathLike[str], *, collection_id: str = "sentinel-2-l1c",
                 title: str = "Sentinel-2 L1C", description: str = "Sentinel-2 L1C acquisitions",
                 layout: CogLayout | None = None) -> None:
        self.root = Path(root)
        self.layout = layout or CogLayout()
        self.root.mkdir(parents=True, exist_ok=True)
        existing = self.root / COLLECTION_FILE
        if existing.is_file():
            collection = pystac.read_file(str(existing.resolve()))
            if not isinstance(collection, pystac.Collection):
                raise ArchiveError(f"{existing} is not a STAC Collection")
            self.collection = collection
        else:
            self.collection = pystac.Collection(
                id=collection_id,
                title=title,
                description=description,
                extent=pystac.Extent(
                    pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                    pystac.TemporalExtent([[None, None]]),  # type: ignore[arg-type]
                ),
                license="proprietary",
            )

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.save()

    def add(
        self,
        item_id: str,
        when: dt.datetime,
        crs: str,
        bands: Mapping[str, tuple[np.ndarray, Affine]],
        *,
        cloud_cover: float | None = None,
        processing_baseline: str | None = None,
        extra_properties: Mapping[str, Any] | None = None,
    ) -> pystac.Item:
        """Write the band COGs of one acquisition and add its Item.

        :param bands: band name -> (uint16 array (rows, cols), affine transform in ``crs``).
        :param extra_properties: more Item properties; ``view:`` ones (the sun angles) add the STAC view
            extension to the Item.
        """
        unknown = sorted(set(bands) - set(S2_BANDS))
        if unknown:
            raise ArchiveError(f"unknown band names {unknown}; expected names among {list(S2_BANDS)}")
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if self.collection.get_item(item_id) is not None:
            self.collection.remove_item(item_id)
        item_dir = self.root / "items" / item_id
        if item_dir.exists():
            shutil.rmtree(item_dir)
        item_dir.mkdir(parents=True)
        all_bounds = []
        for name, (array, transform) in bands.items():
            write_band_cog(item_dir / f"{name}.tif", array, crs, transform, layout=self.layout)
            rows, cols = array.shape
            all_bounds.append(rasterio.transform.array_bounds(rows, cols, transform))
        b = np.array(all_bounds)
        # array_bounds returns (west, south, east, north)
        bounds = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
        footprint = footprint_wgs84(crs, bounds)
        epsg = CRS.from_user_input(crs).to_epsg()
        properties: dict[str, Any] = {
            "platform": "sentinel-2a",
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "s2:product_type": "S2MSI1C",
            "proj:epsg": epsg,
        }
        if processing_baseline:
            properties["s2:processing_baseline"] = processing_baseline
        if cloud_cover is not None:
            properties["eo:cloud_cover"] = float(cloud_cover)
        properties.update(extra_properties or {})
        item = pystac.Item(
            id=item_id,
            geometry=mapping(footprint),
            bbox=list(footprint.bounds),
            datetime=when,
            properties=properties,
            stac_extensions=[PROJECTION_V1, EO_V1] + ([VIEW_V1] if any(k.startswith("view:") for k in properties)
                                                      else []),
        )
        for name, (array, transform) in bands.items():
            item.add_asset(
                name,
                pystac.Asset(
                    href=str((item_dir / f"{name}.tif").resolve()),
                    media_type=pystac.MediaType.COG,
                    roles=["data"],
                    extra_fields={
                        "eo:bands": [{"name": name, "common_name": COMMON_NAME[name],
                                      "center_wavelength": CENTER_WAVELENGTH_NM[name] / 1000.0}],
                        "proj:shape": list(array.shape),
                        "proj:transform": list(transform)[:6],
                        "raster:bands": [{"nodata": 0, "data_type": "uint16",
                                          "spatial_resolution": abs(transform.a)}],
                    },
                ),
            )
        self.collection.add_item(item)
        return item

    def add_items(self, items: Iterable[pystac.Item]) -> None:
        """Add ready-made Items (their assets must already exist)."""
        for item in items:
            self.collection.add_item(item)

    def save(self, metadata: Mapping[str, Any] | None = None) -> Path:
        """Update the collection extent and write a self-contained catalog; return ``collection.json``."""
        items = list(self.collection.get_items(recursive=True))
        if items:
            self.collection.extent = pystac.Extent.from_items(items)
        if metadata is not None:
            self.collection.extra_fields["polyfis:metadata"] = dict(metadata)
        self.collection.normalize_hrefs(
            str(self.root.resolve()) + "/", strategy=TemplateLayoutStrategy(item_template="items/${id}")
        )
        self.collection.make_all_asset_hrefs_relative()
        self.collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        from .sources import INDEX_FILE
        from .sources.geoparquet import write_index

        write_index(items, self.root / INDEX_FILE, collection_id=self.collection.id, title=self.collection.title,
                    metadata=self.collection.extra_fields.get("polyfis:metadata"))
        return self.root / COLLECTION_FILE
