"""Sentinel Hub evalscripts (version 3) run in an embedded V8 engine (``mini-racer``) under limits.

An evalscript defines ``setup()``, returning its inputs (band names, ``units`` REFLECTANCE or DN) and
outputs (``id``, ``bands`` as a count or a list of names, ``sampleType``), and ``evaluatePixel(samples)``,
returning one array per output id. polyfis runs ``evaluatePixel`` over all the pixels of an interval in
one engine call: the band columns go in as one JSON text, the outputs come back as one JSON text.

Each script gets its own engine context, a time limit per call and a memory limit; a script that loops
or allocates without end is stopped and reported as a request error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bands import S2_BANDS
from ..errors import EvalscriptError, EvalscriptTimeout, StatsError

#: Time limit of one engine call, milliseconds.
DEFAULT_TIMEOUT_MS = 20_000
#: Memory limit of one script's engine, bytes.
DEFAULT_MAX_MEMORY = 512 * 1024 * 1024
#: Input names an L1C evalscript may read besides the bands.
EXTRA_INPUTS = ("dataMask", "CLP", "CLM")
#: Most outputs of one evalscript, and most bands of one output.
MAX_OUTPUTS = 20
MAX_OUTPUT_BANDS = 100
SAMPLE_TYPES = ("FLOAT32", "UINT8", "UINT16", "INT8", "INT16", "AUTO")

_RUNNER = """
function __polyfisRun(columnsText, n, countsText) {
  const columns = JSON.parse(columnsText);
  const counts = JSON.parse(countsText);
  const names = Object.keys(columns);
  const out = {};
  for (let i = 0; i < n; i++) {
    const sample = {};
    for (let k = 0; k < names.length; k++) sample[names[k]] = columns[names[k]][i];
    let result = evaluatePixel(sample, [], {}, {}, {});
    if (Array.isArray(result)) result = {"default": result};
    for (const id in counts) {
      let value = result[id];
      if (value === undefined) throw new Error("evaluatePixel returned no '" + id + "' output");
      if (!Array.isArray(value)) value = [value];
      if (value.length !== counts[id])
        throw new Error("output '" + id + "' has " + value.length + " values for a pixel; setup() declares "
                        + counts[id]);
      if (out[id] === undefined) out[id] = [];
      for (let b = 0; b < value.length; b++) {
        const v = Number(value[b]);
        out[id].push(Number.isFinite(v) ? v : null);
      }
    }
  }
  return JSON.stringify(out);
}
function __polyfisSetup() { return JSON.stringify(setup()); }
"""


@dataclass(frozen=True)
class Output:
    """One evalscript output: ``id``, its band names and its sample type."""

    id: str
    bands: tuple[str, ...]
    sample_type: str = "FLOAT32"


class Evalscript:
    """A compiled evalscript: its inputs, units and outputs, ready to evaluate pixels.

    :raises EvalscriptError: when the script does not parse, has no ``setup``/``evaluatePixel``, or
        asks for inputs or outputs polyfis does not have.
    """

    def __init__(self, source: str, *, timeout_ms: int | None = None, max_memory: int | None = None) -> None:
        from py_mini_racer import MiniRacer

        if not isinstance(source, str) or not source.strip():
            raise EvalscriptError("evalscript: expected the text of a version-3 evalscript, got an empty value")
        self.timeout_ms = timeout_ms or DEFAULT_TIMEOUT_MS
        self.max_memory = max_memory or DEFAULT_MAX_MEMORY
        self._ctx = MiniRacer()
        self._call(source + "\n" + _RUNNER, "evaluating the script")
        if self._call("typeof evaluatePixel", "checking evaluatePixel") != "function":
            raise EvalscriptError("evalscript: no evaluatePixel(samples) function; expected a version-3 evalscript")
        if self._call("typeof setup", "checking setup") != "function":
            raise EvalscriptError("evalscript: no setup() function; expected a version-3 evalscript")
        spec = json.loads(self._call("__polyfisSetup()", "running setup()") or "null")
        if not isinstance(spec, dict):
            raise EvalscriptError(
                f"evalscript: setup() returned {spec!r:.80}; expected an object with input and output")
        if str(spec.get("mosaicking", "SIMPLE")).upper() != "SIMPLE":
            raise EvalscriptError(f"evalscript: mosaicking {spec.get('mosaicking')!r} is not supported; polyfis "
                                  "runs evalscripts with SIMPLE mosaicking (one sample per pixel)")
        self.inputs, self.units = _parse_inputs(spec.get("input"))
        self.outputs = _parse_outputs(spec.get("output"))

    def _call(self, code: str, what: str) -> Any:
        from py_mini_racer import JSEvalException, JSOOMException, JSTimeoutException

        try:
            return self._ctx.eval(code, timeout=self.timeout_ms, max_memory=self.max_memory)
        except JSTimeoutException as exc:
            raise EvalscriptTimeout(f"evalscript: {what} took more than {self.timeout_ms} ms; stopped") from exc
        except JSOOMException as exc:
            raise EvalscriptError(
                f"evalscript: {what} used more than {self.max_memory // 2**20} MiB of memory; stopped") from exc
        except JSEvalException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EvalscriptError(f"evalscript: error while {what}: {first[:300]}") from exc

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``evaluatePixel`` on every pixel.

        :param columns: input name -> 1-D array, one value per pixel (all the same length).
        :returns: output id -> float64 array ``(n, len(bands))`` cast to the output's sample type.
        """
        n = len(next(iter(columns.values()))) if columns else 0
        if n == 0:
            return {o.id: np.zeros((0, len(o.bands))) for o in self.outputs}
        text = json.dumps({name: np.asarray(v, dtype=np.float64).tolist() for name, v in columns.items()})
        counts = json.dumps({o.id: len(o.bands) for o in self.outputs})
        result = self._call(f"__polyfisRun({json.dumps(text)}, {n}, {json.dumps(counts)})", "running evaluatePixel")
        if not isinstance(result, str) or len(result) > 40 * n * sum(len(o.bands) for o in self.outputs) + 1000:
            raise EvalscriptError("evalscript: evaluatePixel returned an unexpected result; expected numbers")
        raw = json.loads(result)
        out = {}
        for output in self.outputs:
            array = np.array([np.nan if v is None else v for v in raw[output.id]], dtype=np.float64)
            out[output.id] = _cast(array.reshape(n, len(output.bands)), output.sample_type)
        return out


def _parse_inputs(value: Any) -> tuple[tuple[str, ...], str]:
    units = "REFLECTANCE"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        units = str(value[0].get("units", "REFLECTANCE")).upper()
        value = value[0].get("bands")
    elif isinstance(value, dict):
        units = str(value.get("units", "REFLECTANCE")).upper()
        value = value.get("bands")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EvalscriptError(f"evalscript: setup().input must list band names, got {value!r:.80}")
    unknown = [v for v in value if v not in S2_BANDS and v not in EXTRA_INPUTS]
    if unknown:
        raise EvalscriptError(f"evalscript: unknown input bands {unknown}; sentinel-2-l1c has "
                              f"{list(S2_BANDS) + list(EXTRA_INPUTS)}")
    if units not in ("REFLECTANCE", "DN"):
        raise EvalscriptError(f"evalscript: units {units!r} are not supported; expected REFLECTANCE or DN")
    return tuple(value), units


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


def compile_evalscript(source: Any) -> Evalscript:
    """An :class:`Evalscript` from request text, with errors as 400-class :class:`EvalscriptError`."""
    try:
        return Evalscript(source)
    except StatsError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise EvalscriptError(f"evalscript: setup() returned something unusable: {exc}") from exc
