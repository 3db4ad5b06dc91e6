"""Turn real Sentinel-2 L1C imagery into a polyfis archive (COG per band + STAC Item per acquisition).

Accepted sources (files, or folders searched recursively for ``.tif``, ``.tiff`` and ``.jp2``):

* **band stacks**: one multi-band GeoTIFF per acquisition whose band descriptions name the bands
  (``B01`` … ``B12``, ``B8A``; case-insensitive). Bands are written unchanged, at the stack's resolution.
* **one file per band**: single-band files whose name contains the band (``..._B04.tif``,
  ``T33TWM_20230105T100031_B8A.jp2`` as in a SAFE granule's ``IMG_DATA``). Files of one folder and one
  acquisition time form one acquisition.

The acquisition time comes from the tags (``ACQUISITION``, ``DATETIME``, ``SENSING_TIME``,
``TIFFTAG_DATETIME`` …) or else from the file or folder name (``20230105T100031`` or ``2023-01-05``).
The processing baseline comes from a ``PROCESSING_BASELINE`` tag, a SAFE-style ``_N0400_`` in the path,
or the ``processing_baseline`` argument. The mean sun angles, written as ``view:sun_azimuth`` and
``view:sun_elevation``, come from the granule's ``MTD_TL.xml`` when the band files sit in a SAFE granule
(``GRANULE/<g>/IMG_DATA/*.jp2`` beside ``GRANULE/<g>/MTD_TL.xml``: ``Tile_Angles/Mean_Sun_Angle`` with its
``ZENITH_ANGLE`` and ``AZIMUTH_ANGLE``), else from ``SUN_AZIMUTH`` and ``SUN_ELEVATION`` tags.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from ..bands import S2_BANDS
from ..errors import IngestError
from .catalog import SUN_PROPERTIES, ArchiveWriter

_SUFFIXES = {".tif", ".tiff", ".jp2"}
_BAND_IN_NAME = re.compile(r"(?:^|[_\-.])(B0[1-9]|B1[0-2]|B8A)(?=[_\-.]|$)", re.IGNORECASE)
_COMPACT_TIME = re.compile(r"(\d{8}T\d{6})")
_ISO_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}:\d{2}))?")
_SAFE_BASELINE = re.compile(r"_N(\d{2})(\d{2})(?=_|\.|$)")
#: Files of a SAFE product that are not bands: true-colour image, preview, quality masks.
_NOT_BANDS = re.compile(r"(^|_)(TCI|PVI)(_|\.|$)|^MSK_", re.IGNORECASE)
_TIME_TAGS = ("ACQUISITION", "ACQUISITION_TIME", "DATETIME", "SENSING_TIME", "PRODUCT_START_TIME",
              "DATATAKE_SENSING_START", "TIFFTAG_DATETIME")


@dataclass(frozen=True)
class IngestedItem:
    """What :func:`ingest` wrote for one acquisition."""

    id: str
    datetime: dt.datetime
    bands: tuple[str, ...]
    sources: tuple[str, ...]


def _files(sources: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in _SUFFIXES and p.is_file()
                          and not _NOT_BANDS.search(p.name) and "QI_DATA" not in p.parts)
        elif path.is_file():
            out.append(path)
        else:
            raise IngestError(f"ingest: {str(source)!r} does not exist; expected a GeoTIFF/JP2 file or a folder")
    if not out:
        raise IngestError(f"ingest: no .tif, .tiff or .jp2 files found in {[str(s) for s in sources]}")
    return out


def _parse_time_text(text: str) -> dt.datetime | None:
    text = text.strip()
    try:
        match = _COMPACT_TIME.search(text)
        if match:
            return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
        # TIFF's own "YYYY:MM:DD HH:MM:SS"
        tiff = re.match(r"^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})$", text)
        if tiff:
            year, month, day, hour, minute, second = map(int, tiff.groups())
            return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            match = _ISO_DATE.search(text)
            if not match:
                return None
            parsed = dt.datetime.fromisoformat(match.group(1) + ("T" + match.group(2) if match.group(2) else ""))
    except ValueError as exc:
        raise IngestError(f"ingest: {text!r} holds an impossible date or time ({exc})") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def acquisition_time(path: Path, tags: dict[str, str]) -> dt.datetime:
    """Acquisition time from the tags, else from the file name, else the parent folders' names.

    :raises IngestError: when none of them holds a date.
    """
    upper = {k.upper(): v for k, v in tags.items()}
    for key in _TIME_TAGS:
        if key in upper:
            found = _parse_time_text(upper[key])
            if found is not None:
                return found
    for part in [path.name, *(p.name for p in path.parents)]:
        found = _parse_time_text(part)
        if found is not None:
            return found
    raise IngestError(
        f"ingest: cannot find the acquisition time of {str(path)!r}: no tag among {list(_TIME_TAGS)} and no "
        "date in the file or folder name; expected e.g. a tag ACQUISITION=2023-01-05T10:00:31 or a name "
        "like T33TWM_20230105T100031_B04.tif"
    )


def _baseline(path: Path, tags: dict[str, str], default: str | None) -> str | None:
    upper = {k.upper(): v for k, v in tags.items()}
    for key in ("PROCESSING_BASELINE", "S2:PROCESSING_BASELINE"):
        if key in upper:
            return upper[key].strip()
    match = _SAFE_BASELINE.search(str(path))
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    return default


#: The tile metadata file of a SAFE granule, beside its ``IMG_DATA`` folder.
TILE_METADATA = "MTD_TL.xml"


def _local(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rsplit("}", 1)[-1]


def _degrees(text: str | None, what: str, source: Path) -> float:
    try:
        value = float(text or "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise IngestError(f"ingest: {what} of {str(source)!r} is {text!r}; expected a number of degrees")
    return value


def granule_sun_angles(path: Path) -> tuple[float, float]:
    """``(azimuth, elevation)`` (degrees) of a SAFE granule's ``MTD_TL.xml``: its
    ``Tile_Angles/Mean_Sun_Angle`` ``AZIMUTH_ANGLE`` and 90 - ``ZENITH_ANGLE``.

    :raises IngestError: when the file cannot be read or lacks the angles.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise IngestError(f"ingest: cannot read {str(path)!r}: {exc}") from exc
    for tile_angles in (e for e in root.iter() if _local(e.tag) == "Tile_Angles"):
        for mean in (e for e in tile_angles if _local(e.tag) == "Mean_Sun_Angle"):
            angles = {_local(e.tag): e.text for e in mean}
            zenith = _degrees(angles.get("ZENITH_ANGLE"), "Mean_Sun_Angle/ZENITH_ANGLE", path)
            azimuth = _degrees(angles.get("AZIMUTH_ANGLE"), "Mean_Sun_Angle/AZIMUTH_ANGLE", path)
            return azimuth, 90.0 - zenith
    raise IngestError(f"ingest: {str(path)!r} has no Tile_Angles/Mean_Sun_Angle; expected the tile metadata of a "
                      "Sentinel-2 L1C granule")


def sun_properties(folder: Path, tags: dict[str, str]) -> dict[str, float]:
    """The ``view:`` sun-angle properties of an acquisition whose files are in ``folder`` (a granule's
    ``IMG_DATA``, or any folder) with the tags of its first file; empty when neither gives them."""
    granule = folder.parent if folder.name.upper() == "IMG_DATA" else None
    angles: tuple[float, float] | None = None
    if granule is not None and (granule / TILE_METADATA).is_file():
        angles = granule_sun_angles(granule / TILE_METADATA)
    else:
        upper = {k.upper(): v for k, v in tags.items()}
        if "SUN_AZIMUTH" in upper and "SUN_ELEVATION" in upper:
            angles = (_degrees(upper["SUN_AZIMUTH"], "tag SUN_AZIMUTH", folder),
                      _degrees(upper["SUN_ELEVATION"], "tag SUN_ELEVATION", folder))
    return {} if angles is None else dict(zip(SUN_PROPERTIES, angles))


def _band_name(text: str | None) -> str | None:
    if not text:
        return None
    name = text.strip().upper()
    if name in S2_BANDS:
        return name
    match = _BAND_IN_NAME.search(text)
    return match.group(1).upper() if match else None


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "item"


def ingest(
    sources: Sequence[str | Path],
    archive: str | Path,
    *,
    processing_baseline: str | None = None,
) -> list[IngestedItem]:
    """Ingest ``sources`` into the archive folder ``archive`` (created, or appended to).

    :raises IngestError: for a file without recognisable bands or acquisition time, with the reason.
    """
    stacks: list[Path] = []
    singles: dict[tuple[Path, dt.datetime], dict[str, Path]] = defaultdict(dict)
    meta: dict[Path, tuple[dict[str, str], int]] = {}
    for path in _files(sources):
        try:
            with rasterio.open(path) as src:
                meta[path] = (src.tags(), src.count)
                descriptions = src.descriptions
        except rasterio.errors.RasterioIOError as exc:
            raise IngestError(f"ingest: cannot open {str(path)!r}: {exc}") from exc
        tags, count = meta[path]
        if count > 1:
            names = [_band_name(d) for d in descriptions]
            if not all(names):
                raise IngestError(
                    f"ingest: {str(path)!r} has {count} bands with descriptions {list(descriptions)}; expected "
                    "every band described by its Sentinel-2 name (B01 ... B12, B8A)"
                )
            stacks.append(path)
            continue
        band = _band_name(path.stem) or _band_name(descriptions[0])
        if band is None:
            raise IngestError(
                f"ingest: cannot tell which band {str(path)!r} holds; expected the band name in the file name "
                "(e.g. T33TWM_20230105T100031_B04.tif) or as the band description"
            )
        singles[(path.parent, acquisition_time(path, tags))][band] = path

    written: list[IngestedItem] = []
    used: dict[str, Path] = {}
    with ArchiveWriter(archive) as writer:
        for path in stacks:
            tags, _ = meta[path]
            when = acquisition_time(path, tags)
            crs, bands = _read_stack(path)
            item_id = _unique(_safe_id(path.stem), path, used)
            writer.add(item_id, when, crs, bands, processing_baseline=_baseline(path, tags, processing_baseline),
                       extra_properties={"polyfis:source": path.name, **sun_properties(path.parent, tags)})
            written.append(IngestedItem(item_id, when, tuple(bands), (str(path),)))
        for (folder, when), files in sorted(singles.items(), key=lambda kv: kv[0][1]):
            crs, bands = _read_singles(files)
            first = next(iter(files.values()))
            granule = folder.parent if folder.name.upper() == "IMG_DATA" else folder
            item_id = _unique(_safe_id(f"{granule.name}_{when:%Y%m%dT%H%M%S}"), folder, used)
            writer.add(item_id, when, crs, bands,
                       processing_baseline=_baseline(first, meta[first][0], processing_baseline),
                       extra_properties={"polyfis:source": folder.name,
                                         **sun_properties(folder, meta[first][0])})
            written.append(IngestedItem(item_id, when, tuple(bands), tuple(str(p) for p in files.values())))
    return written


Bands = dict[str, tuple[np.ndarray, Affine]]


def _unique(item_id: str, source: Path, used: dict[str, Path]) -> str:
    """``item_id``, or an error when another source of this ingest already took it."""
    if item_id in used:
        raise IngestError(
            f"ingest: {str(source)!r} and {str(used[item_id])!r} would both become acquisition {item_id!r}; "
            "expected distinct file names (or granule folders) per acquisition"
        )
    used[item_id] = source
    return item_id


def _read_stack(path: Path) -> tuple[str, Bands]:
    """CRS and bands (by their descriptions) of a multi-band stack."""
    with rasterio.open(path) as src:
        bands: Bands = {}
        for index, description in enumerate(src.descriptions, start=1):
            name = _band_name(description)
            if name is None:
                raise IngestError(f"ingest: band {index} of {str(path)!r} has description {description!r}; "
                                  "expected a Sentinel-2 band name")
            bands[name] = (_as_uint16(_nodata_to_zero(src, index), path), src.transform)
        return _crs_text(src, path), bands


def _read_singles(files: dict[str, Path]) -> tuple[str, Bands]:
    """CRS and bands of one acquisition's single-band files (all in one CRS)."""
    bands: Bands = {}
    crs_of = {}
    for name, path in files.items():
        with rasterio.open(path) as src:
            crs_of[path] = _crs_text(src, path)
            bands[name] = (_as_uint16(_nodata_to_zero(src, 1), path), src.transform)
    if len(set(crs_of.values())) > 1:
        raise IngestError(f"ingest: the bands of one acquisition are in different CRSs: "
                          f"{ {p.name: c for p, c in crs_of.items()} }; expected one CRS")
    return next(iter(crs_of.values())), bands


def _nodata_to_zero(src: rasterio.io.DatasetReader, index: int) -> np.ndarray:
    """Band ``index`` with the source's no-data (value or mask) set to 0, the archive's no-data."""
    masked = src.read(index, masked=True)
    return np.ma.filled(masked, 0)


def _crs_text(src: rasterio.io.DatasetReader, path: Path) -> str:
    if src.crs is None:
        raise IngestError(f"ingest: {str(path)!r} has no CRS; expected a georeferenced image")
    epsg = src.crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else src.crs.to_wkt()


def _as_uint16(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint16:
        return array
    if np.issubdtype(array.dtype, np.floating):
        finite = array[np.isfinite(array)]
        if finite.size and finite.max() <= 2.0:
            raise IngestError(
                f"ingest: {str(path)!r} holds float reflectances (max {finite.max():.3f}); expected DN "
                "(reflectance x 10000) as integers"
            )
    if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 65535):
        raise IngestError(f"ingest: {str(path)!r} has values outside 0..65535; expected uint16 DN")
    return np.nan_to_num(array, nan=0).astype(np.uint16)
