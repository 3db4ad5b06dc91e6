"""Sentinel Hub evalscripts (version 3) run in an embedded V8 engine (``mini-racer``) under limits.

An evalscript defines ``setup()``, returning its inputs (band names; ``units`` one value or one per band:
REFLECTANCE or DN for the bands, DN for ``dataMask``/``CLP``/``CLM``, DEGREES for the sun angles), its
outputs (``id``, ``bands`` as a count or a list of names, ``sampleType``) and its ``mosaicking`` (SIMPLE,
ORBIT or TILE), and ``evaluatePixel(samples, scenes, inputMetadata, customData, outputMetadata)``,
returning one array per output id. The optional ``preProcessScenes(collections)`` (ORBIT and TILE) picks
and orders the scenes before any pixel is read, ``updateOutput(outputs, collection)`` changes the outputs'
band counts, and ``updateOutputMetadata(scenes, inputMetadata, outputMetadata)`` runs once after the
pixels; whatever it leaves in ``outputMetadata.userData`` is handed back. Before the script, the engine
gets Sentinel Hub's documented global helpers (``index``, ``inverse``, ``valueMap``, ``valueInterpolate``,
``colorBlend``, ``combine``, ``int2rgb``, ``rgb2int``, ``normalizeRGB``, the ``ColorMap``/``ColorRamp``/
``ColorGradient``/``HighlightCompress`` visualizers, the colour tables, ``Mosaicking``, ``SampleType`` ...:
``helpers.js``), each replaceable by the script's own.

Using it (the Statistical API in :mod:`..statistical` does this per aggregation interval)::

    script = compile_evalscript(text, deadline)          # setup(): script.inputs, .units, .outputs, .mosaicking
    values = script.band_values("B04", dn)                # a band's DN in the unit the script reads it in
    plan = script.plan([SceneTile.from_acquisition(a) for a in tiles], start, end)
    # plan.groups: for each sample, the indices of the tiles to mosaic into it (one group for SIMPLE,
    # one per UTC day for ORBIT, one per tile for TILE; after preProcessScenes), plan.outputs after updateOutput
    columns = [read(group) for group in plan.groups]      # per sample: input name -> one value per pixel
    result = script.run(plan, columns)                    # result.outputs: id -> (pixels, bands); result.user_data

``script.evaluate(columns)`` is the SIMPLE shortcut (one sample per pixel, no scenes). polyfis runs
``evaluatePixel`` over all the pixels of a call in one engine call: the inputs go in as one JSON text, the
outputs come back as one JSON text. Each script gets its own engine context, a time limit per call and a
memory limit; a script that loops or allocates without end is stopped and reported as a request error.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...bands import QUANTIFICATION_VALUE, S2_BANDS
from ...errors import EvalscriptError, EvalscriptTimeout, InvalidRequestError, StatsError

if TYPE_CHECKING:
    from ...archive.catalog import Acquisition

#: Time limit of one engine call, milliseconds.
DEFAULT_TIMEOUT_MS = 20_000
#: Memory limit of one script's engine, bytes.
DEFAULT_MAX_MEMORY = 512 * 1024 * 1024
#: The mean sun angles of the acquisition, in degrees (``view:sun_elevation``/``view:sun_azimuth``).
SUN_INPUTS = ("sunZenithAngles", "sunAzimuthAngles")
#: The viewing angles Sentinel Hub has for sentinel-2-l1c; polyfis's archive items carry none.
VIEW_INPUTS = ("viewZenithMean", "viewAzimuthMean")
#: The units each sentinel-2-l1c input may be read in, its default first (Sentinel Hub's table of the
#: collection: bands in REFLECTANCE or DN, the masks and cloud layers in DN, the angles in DEGREES).
INPUT_UNITS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(S2_BANDS, ("REFLECTANCE", "DN")),
    "dataMask": ("DN",), "CLP": ("DN",), "CLM": ("DN",),
    **dict.fromkeys(SUN_INPUTS + VIEW_INPUTS, ("DEGREES",)),
}
#: Most outputs of one evalscript, and most bands of one output.
MAX_OUTPUTS = 20
MAX_OUTPUT_BANDS = 100
SAMPLE_TYPES = ("FLOAT32", "UINT8", "UINT16", "INT8", "INT16", "AUTO")
MOSAICKING = ("SIMPLE", "ORBIT", "TILE")
#: Most characters of ``outputMetadata.userData`` as JSON.
MAX_USER_DATA_CHARS = 4 * 1024 * 1024
#: The collection name ``updateOutput`` finds its scenes under, besides ``collection.scenes``.
COLLECTION = "sentinel-2-l1c"

_RUNNER = importlib.resources.files(__package__).joinpath("runner.js").read_text(encoding="utf-8")
_HELPERS = importlib.resources.files(__package__).joinpath("helpers.js").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Output:
    """One evalscript output: ``id``, its band names and its sample type."""

    id: str
    bands: tuple[str, ...]
    sample_type: str = "FLOAT32"


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SceneTile:
    """One acquisition tile as evalscripts see it in ``scenes.tiles`` (``date``, ``shId``, ``cloudCoverage``,
    ``dataPath``)."""

    date: dt.datetime
    sh_id: int
    data_path: str
    cloud_coverage: float | None = None

    @classmethod
    def from_acquisition(cls, acq: Acquisition) -> SceneTile:
        """The tile of an archive acquisition: ``shId`` a stable number made from its id, ``dataPath`` the
        folder of its bands when they are URLs, else its id."""
        href = next(iter(acq.assets.values()), "")
        path = href.rsplit("/", 1)[0] if "://" in href else acq.id
        return cls(date=acq.datetime, sh_id=zlib.crc32(acq.id.encode()), data_path=path,
                   cloud_coverage=acq.cloud_cover)

    def metadata(self) -> dict[str, Any]:
        """The ``scenes.tiles`` entry."""
        out: dict[str, Any] = {"date": _iso(self.date), "shId": self.sh_id, "dataPath": self.data_path}
        if self.cloud_coverage is not None:
            out["cloudCoverage"] = self.cloud_coverage
        return out


@dataclass(frozen=True)
class Plan:
    """The samples of one evaluation: ``groups`` lists, per sample and in the script's order, the indices
    of the ``tiles`` mosaicked into it; ``outputs`` are the outputs after ``updateOutput``; ``scenes`` is the
    object ``evaluatePixel`` gets as its second argument."""

    mosaicking: str
    tiles: tuple[SceneTile, ...]
    groups: tuple[tuple[int, ...], ...]
    outputs: tuple[Output, ...]
    scenes: Mapping[str, Any]


@dataclass(frozen=True)
class Evaluation:
    """What one run returns: output id -> array ``(pixels, bands)``, and ``outputMetadata.userData``."""

    outputs: dict[str, np.ndarray]
    user_data: Any = None


#: The bytes counted per input or output value of a pixel during ``evaluatePixel``: the float64 in the runner's
#: input or output buffer (8), with room for the sample objects and numbers the engine makes from it. A call
#: needing more than the engine's memory limit could exhaust the engine, so it is refused before any band is read.
ENGINE_VALUE_BYTES = 32


class Evalscript:
    """A compiled evalscript: its inputs, units, outputs and mosaicking, ready to evaluate pixels.

    ``inputs`` are the input names in the script's order, ``units`` maps each to the unit it is read in.

    :raises EvalscriptError: when the script does not parse, has no ``setup``/``evaluatePixel``, or
        asks for inputs, outputs or a mosaicking polyfis does not have.
    """

    def __init__(self, source: str, *, timeout_ms: int | None = None, max_memory: int | None = None,
                 deadline: float | None = None) -> None:
        from py_mini_racer import MiniRacer

        if not isinstance(source, str) or not source.strip():
            raise EvalscriptError("evalscript: expected the text of a version-3 evalscript, got an empty value")
        self.timeout_ms = timeout_ms or DEFAULT_TIMEOUT_MS
        self.max_memory = max_memory or DEFAULT_MAX_MEMORY
        self.deadline = deadline
        self._ctx = MiniRacer()
        self._exchange = threading.Lock()  # a run's inputs, call and userData are three engine calls
        self._call(_RUNNER.replace("__BUDGET__", str(int(self.max_memory))), "preparing the engine")
        self._call(_HELPERS, "installing the evalscript helpers")
        self._call(source, "evaluating the script")
        if self._call("typeof evaluatePixel", "checking evaluatePixel") != "function":
            raise EvalscriptError("evalscript: no evaluatePixel(samples) function; expected a version-3 evalscript")
        if self._call("typeof setup", "checking setup") != "function":
            raise EvalscriptError("evalscript: no setup() function; expected a version-3 evalscript")
        described = _json(self._call("__polyfisSetup()", "running setup()"), "setup()")
        spec = described.get("spec") if isinstance(described, dict) else None
        if not isinstance(spec, dict):
            raise EvalscriptError(
                f"evalscript: setup() returned {spec!r:.80}; expected an object with input and output")
        mosaicking = spec.get("mosaicking", "SIMPLE")
        if not isinstance(mosaicking, str) or mosaicking.upper() not in MOSAICKING:
            raise EvalscriptError(f"evalscript: setup().mosaicking is {mosaicking!r:.40}; expected one of "
                                  f"{list(MOSAICKING)}")
        self.mosaicking = mosaicking.upper()
        self.units = _parse_inputs(spec.get("input"))
        self.inputs = tuple(self.units)
        self.outputs = _parse_outputs(spec.get("output"))
        self.has_pre_process = bool(described.get("preProcessScenes"))
        self.has_update_output = bool(described.get("updateOutput"))

    def _call(self, code: str, what: str) -> Any:
        """Run ``code`` in the engine within the call time limit, or what is left of the request's time
        budget when that is less."""
        from py_mini_racer import JSEvalException, JSOOMException, JSTimeoutException

        timeout = self.timeout_ms
        budget_binds = False
        if self.deadline is not None:
            left = int((self.deadline - time.monotonic()) * 1000)
            if left <= 0:
                raise EvalscriptTimeout(f"evalscript: not {what}: the request's time budget ran out")
            budget_binds, timeout = left < timeout, min(timeout, left)
        try:
            return self._ctx.eval(code, timeout=timeout, max_memory=self.max_memory)
        except JSTimeoutException as exc:
            limit = "the request's time budget" if budget_binds else f"{self.timeout_ms} ms"
            raise EvalscriptTimeout(f"evalscript: {what} took more than {limit}; stopped") from exc
        except JSOOMException as exc:
            raise EvalscriptError(
                f"evalscript: {what} used more than {self.max_memory // 2**20} MiB of memory; stopped") from exc
        except JSEvalException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EvalscriptError(f"evalscript: error while {what}: {first[:300]}") from exc

    def band_values(self, band: str, dn: np.ndarray) -> np.ndarray:
        """A spectral band's stored DN (the harmonisation offset already applied) in the unit the script reads
        it in: as stored for DN, divided by the quantification value (10000) for REFLECTANCE."""
        return dn if self.units.get(band) == "DN" else dn / QUANTIFICATION_VALUE

    def band_columns(self, dn: Mapping[str, np.ndarray], offset: np.ndarray, valid: np.ndarray,
                     harmonize: bool) -> dict[str, np.ndarray]:
        """``dataMask`` and the spectral bands among the script's inputs, one float64 value per pixel in
        row-major order: each band's harmonised DN (``dn``; ``offset`` added back when not ``harmonize``) in
        the unit the script reads it in, 0 where ``valid`` is False; ``dataMask`` is ``valid``."""
        columns: dict[str, np.ndarray] = {}
        for name in self.inputs:
            if name == "dataMask":
                columns[name] = valid.astype(np.float64).ravel()
            elif name in S2_BANDS:
                values = dn[name].astype(np.float64) + (0 if harmonize else offset)
                columns[name] = np.where(valid, self.band_values(name, values), 0.0).ravel()
        return columns

    def plan(self, tiles: Sequence[SceneTile], time_from: dt.datetime, time_to: dt.datetime) -> Plan:
        """The samples of an evaluation over ``tiles`` (in mosaicking order, first wins) acquired in
        ``[time_from, time_to)``: grouped by the script's mosaicking, then picked and ordered by
        ``preProcessScenes`` and sized by ``updateOutput`` when the script defines them.

        :raises EvalscriptError: when those functions fail or return something unusable.
        """
        tiles = tuple(tiles)
        if self.mosaicking == "SIMPLE":
            groups: list[tuple[int, ...]] = [tuple(range(len(tiles)))]
            entries = [dict(t.metadata(), __idx=i) for i, t in enumerate(tiles)]
        elif self.mosaicking == "TILE":
            groups = [(i,) for i in range(len(tiles))]
            entries = [dict(t.metadata(), __idx=i) for i, t in enumerate(tiles)]
        else:
            groups = [tuple(members) for members in _orbit_groups(tiles)]
            entries = [{"dateFrom": f"{_day(tiles[g[0]])}T00:00:00Z", "dateTo": f"{_day(tiles[g[0]])}T23:59:59Z",
                        "__idx": i} for i, g in enumerate(groups)]
        every = {g: i for i, g in enumerate(groups)}
        outputs = self.outputs
        pre_process = self.has_pre_process and self.mosaicking != "SIMPLE"
        if pre_process or self.has_update_output:
            text = json.dumps({"mosaicking": self.mosaicking, "from": _iso(time_from), "to": _iso(time_to),
                               "scenes": entries, "collection": COLLECTION,
                               "outputs": {o.id: {"bands": len(o.bands)} for o in outputs}})
            answer = _json(self._call(f"__polyfisPlan({json.dumps(text)})", "running preProcessScenes/updateOutput"),
                           "preProcessScenes/updateOutput")
            if not isinstance(answer, dict):
                raise EvalscriptError("evalscript: preProcessScenes/updateOutput returned an unexpected result")
            if pre_process:
                groups = [groups[i] for i in _kept(answer.get("kept"), len(groups))]
            outputs = _resized(outputs, answer.get("outputs"))
        if self.mosaicking == "SIMPLE":
            scenes: dict[str, Any] = {}
        elif self.mosaicking == "TILE":
            scenes = {"tiles": [dict(tiles[g[0]].metadata(), __idx=g[0]) for g in groups]}
        else:
            scenes = {"orbits": [dict(entries[every[g]], tiles=[tiles[i].metadata() for i in g]) for g in groups]}
        return Plan(mosaicking=self.mosaicking, tiles=tiles, groups=tuple(groups), outputs=outputs, scenes=scenes)

    def check_capacity(self, pixels: int, values_per_pixel: int) -> None:
        """Refuse, before anything is read, a run of ``evaluatePixel`` over ``pixels`` pixels with
        ``values_per_pixel`` input and output values each that could not fit in the engine's memory limit.

        :raises InvalidRequestError: naming the limit and what would help (the whole request is refused, as
            over the request memory budget).
        """
        need = pixels * values_per_pixel * ENGINE_VALUE_BYTES
        if need > self.max_memory:
            raise InvalidRequestError(
                f"evalscript: {pixels:,} pixels x {values_per_pixel} input and output values need at least "
                f"{need / 2**20:,.0f} MiB inside the evalscript engine, over its limit of "
                f"{self.max_memory // 2**20} MiB; ask for fewer pixels (a "
                "smaller area or a coarser resolution), fewer inputs or a shorter interval")

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``evaluatePixel`` on every pixel with one sample each (SIMPLE, no scenes).

        :param columns: input name -> 1-D array, one value per pixel (all the same length).
        :returns: output id -> float64 array ``(n, len(bands))`` cast to the output's sample type.
        """
        plan = Plan(mosaicking="SIMPLE", tiles=(), groups=((),), outputs=self.outputs, scenes={})
        return self.run(plan, [columns]).outputs

    def run(self, plan: Plan, samples: Sequence[Mapping[str, np.ndarray]], pixels: int | None = None) -> Evaluation:
        """Run ``evaluatePixel`` on every pixel, then ``updateOutputMetadata``.

        :param plan: from :meth:`plan` (or the SIMPLE plan of :meth:`evaluate`).
        :param samples: one mapping per group of the plan (exactly one for SIMPLE): input name -> 1-D array,
            one value per pixel, every array the same length; a pixel a sample has no data for has
            ``dataMask`` 0 there.
        :param pixels: the number of pixels, needed only when the plan has no sample (``preProcessScenes``
            kept none: ``evaluatePixel`` then gets an empty array on every pixel).
        :returns: output id -> float64 array ``(n, len(bands))`` cast to the output's sample type, and
            ``outputMetadata.userData``.
        """
        simple = plan.mosaicking == "SIMPLE"
        if len(samples) != (1 if simple else len(plan.groups)):
            raise ValueError(f"run: {len(samples)} samples for a plan of {len(plan.groups)} groups")
        arrays = [c for s in samples for c in s.values()]
        n = len(arrays[0]) if arrays else (pixels or 0)
        if any(len(a) != n for a in arrays) or (pixels is not None and pixels != n):
            raise ValueError("run: every input column needs one value per pixel")
        if n == 0:
            return Evaluation({o.id: np.zeros((0, len(o.bands))) for o in plan.outputs})
        names = list(samples[0]) if samples else []
        if any(set(s) != set(names) for s in samples):
            raise ValueError("run: every sample needs the same input columns")
        columns = [np.concatenate([np.asarray(s[name], dtype=np.float64) for s in samples]) for name in names]
        counts = {o.id: len(o.bands) for o in plan.outputs}
        context = json.dumps({"samples": -1 if simple else len(samples), "scenes": plan.scenes,
                              "inputMetadata": {"serviceVersion": "polyfis",
                                                "normalizationFactor": 1 / QUANTIFICATION_VALUE}})
        with self._exchange:
            inbox = self._call(f"__polyfisInputs({8 * sum(c.size for c in columns)})", "preparing the inputs")
            if columns:
                np.frombuffer(inbox, dtype=np.float64)[:] = np.concatenate(columns)
            result = self._call(f"__polyfisRun({n}, {json.dumps(json.dumps(names))}, "
                                f"{json.dumps(json.dumps(counts))}, {json.dumps(context)})", "running evaluatePixel")
            if not isinstance(result, memoryview) or result.nbytes != 8 * n * sum(counts.values()):
                raise EvalscriptError("evalscript: evaluatePixel returned an unexpected result; expected numbers")
            values = np.frombuffer(result, dtype=np.float64).copy()
            text = self._call("__polyfisUserData()", "reading outputMetadata.userData")
        out, start = {}, 0
        for output in plan.outputs:
            size = n * len(output.bands)
            out[output.id] = _cast(values[start:start + size].reshape(n, len(output.bands)), output.sample_type)
            start += size
        if not isinstance(text, str) or len(text) > MAX_USER_DATA_CHARS + len('{"userData":}'):
            raise EvalscriptError(f"evalscript: outputMetadata.userData is over {MAX_USER_DATA_CHARS} characters "
                                  "of JSON; expected a small object")
        raw = _json(text, "updateOutputMetadata")
        return Evaluation(out, raw.get("userData") if isinstance(raw, dict) else None)


def _day(tile: SceneTile) -> str:
    return tile.date.astimezone(dt.UTC).date().isoformat()


def _orbit_groups(tiles: Sequence[SceneTile]) -> list[list[int]]:
    """Tile indices grouped by UTC day (Sentinel Hub's orbits), days in the order their first tile comes."""
    days: dict[str, list[int]] = {}
    for i, t in enumerate(tiles):
        days.setdefault(_day(t), []).append(i)
    return list(days.values())


def _kept(value: Any, count: int) -> list[int]:
    """The scene indices preProcessScenes kept, checked: known ``__idx`` values, each once."""
    if not isinstance(value, list):
        raise EvalscriptError("evalscript: preProcessScenes returned an unexpected result; expected its "
                              "collections with the scenes kept")
    seen: set[int] = set()
    for idx in value:
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < count or idx in seen:
            raise EvalscriptError("evalscript: preProcessScenes returned a scene that is not one of those it was "
                                  "given (or one twice); expected a subset of collections.scenes, __idx kept")
        seen.add(idx)
    return list(value)


def _resized(outputs: tuple[Output, ...], counts: Any) -> tuple[Output, ...]:
    """The outputs with the band counts updateOutput left; renamed ``B0``... where a count changed."""
    if not isinstance(counts, dict):
        raise EvalscriptError("evalscript: updateOutput left an unexpected outputs object")
    resized = []
    for output in outputs:
        bands = counts.get(output.id)
        if not isinstance(bands, (int, float)) or isinstance(bands, bool) or bands != int(bands) \
                or not 1 <= bands <= MAX_OUTPUT_BANDS:
            raise EvalscriptError(f"evalscript: updateOutput set output '{output.id}' to {bands!r:.40} bands; "
                                  f"expected 1 to {MAX_OUTPUT_BANDS}")
        names = output.bands if int(bands) == len(output.bands) else tuple(f"B{i}" for i in range(int(bands)))
        resized.append(Output(id=output.id, bands=names, sample_type=output.sample_type))
    return tuple(resized)


def _json(text: Any, what: str) -> Any:
    """The JSON an engine call returned; anything else is the script's error, in words of our own."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError) as exc:
        raise EvalscriptError(f"evalscript: {what} returned something that is not JSON data; expected plain "
                              "objects, arrays and numbers") from exc


def _parse_inputs(value: Any) -> dict[str, str]:
    """Input name -> unit from ``setup().input``: a list of band names, an object ``{bands, units}``, or a list
    of such objects (polyfis reads one data source, the first). ``units`` is one value for every band (a mask,
    cloud layer or angle that cannot take it keeps its own unit) or a list with one per band."""
    units: Any = None
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0]
    if isinstance(value, dict):
        units = value.get("units")
        value = value.get("bands")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EvalscriptError(f"evalscript: setup().input must list band names, got {value!r:.80}")
    view = [v for v in value if v in VIEW_INPUTS]
    if view:
        raise EvalscriptError(f"evalscript: input {view[0]}: polyfis's archive has no viewing angles (its items "
                              f"carry the mean sun angles only); expected inputs among "
                              f"{[name for name in INPUT_UNITS if name not in VIEW_INPUTS]}")
    unknown = [v for v in value if v not in INPUT_UNITS]
    if unknown:
        raise EvalscriptError(f"evalscript: unknown input bands {unknown}; sentinel-2-l1c has {list(INPUT_UNITS)}")
    if isinstance(units, list):
        if len(units) != len(value):
            raise EvalscriptError(f"evalscript: setup().input has {len(value)} bands and {len(units)} units; "
                                  "expected one unit per band, or one value for all")
        given = [str(u).upper() for u in units]
        shared = False
    elif units is None or isinstance(units, str):
        given = [str(units or "").upper()] * len(value)
        shared = True
        known = sorted({u for allowed in INPUT_UNITS.values() for u in allowed})
        if units and given and given[0] not in known:
            raise EvalscriptError(f"evalscript: units {units!r:.40} are not supported; expected one of {known}")
    else:
        raise EvalscriptError(f"evalscript: setup().input units {units!r:.80}; expected a unit name or a list "
                              "of one per band")
    out: dict[str, str] = {}
    for name, unit in zip(value, given):
        allowed = INPUT_UNITS[name]
        if not unit or (shared and unit not in allowed and len(allowed) == 1):
            unit = allowed[0]
        if unit not in allowed:
            raise EvalscriptError(f"evalscript: input {name} in units {unit!r:.40} is not available; expected "
                                  f"{' or '.join(allowed)}")
        out[name] = unit
    return out


def _parse_outputs(value: Any) -> tuple[Output, ...]:
    items = value if isinstance(value, list) else [value]
    if not 1 <= len(items) <= MAX_OUTPUTS:
        raise EvalscriptError(f"evalscript: setup() declares {len(items)} outputs; expected 1 to {MAX_OUTPUTS}")
    outputs = []
    for item in items:
        if not isinstance(item, dict):
            raise EvalscriptError(f"evalscript: setup().output entries must be objects, got {item!r:.80}")
        bands = item.get("bands", 1)
        if isinstance(bands, list) and 1 <= len(bands) <= MAX_OUTPUT_BANDS:
            names = tuple(str(b) for b in bands)
        elif isinstance(bands, int) and not isinstance(bands, bool) and 1 <= bands <= MAX_OUTPUT_BANDS:
            names = tuple(f"B{i}" for i in range(bands))
        else:
            raise EvalscriptError(f"evalscript: output bands must be a count or a list of 1 to {MAX_OUTPUT_BANDS} "
                                  f"names, got {bands!r:.80}")
        sample_type = str(item.get("sampleType", "FLOAT32")).upper()
        if sample_type not in SAMPLE_TYPES:
            raise EvalscriptError(f"evalscript: sampleType {sample_type!r}; expected one of {list(SAMPLE_TYPES)}")
        outputs.append(Output(id=str(item.get("id", "default")), bands=names, sample_type=sample_type))
    return tuple(outputs)


def _cast(values: np.ndarray, sample_type: str) -> np.ndarray:
    """Values as the output's sample type would store them (float64 for the statistics)."""
    if sample_type in ("FLOAT32", "AUTO"):
        return values.astype(np.float32).astype(np.float64)
    bounds = {"UINT8": (0, 255), "UINT16": (0, 65535), "INT8": (-128, 127), "INT16": (-32768, 32767)}[sample_type]
    with np.errstate(invalid="ignore"):
        return np.clip(np.round(np.nan_to_num(values, nan=0.0)), *bounds)


def compile_evalscript(source: Any, deadline: float | None = None) -> Evalscript:
    """An :class:`Evalscript` from request text, with errors as 400-class :class:`EvalscriptError`;
    ``deadline`` (monotonic seconds) is the request's time budget, compiling included."""
    try:
        return Evalscript(source, deadline=deadline)
    except StatsError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise EvalscriptError("evalscript: setup() returned something unusable; expected {input: [...], "
                              "output: {...}} as Sentinel Hub's evalscript V3 defines") from exc
