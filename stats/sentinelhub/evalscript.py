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
import time
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

#: Installed before the script, so that the script cannot replace what runs it: the runner's helpers are
#: captured in a closure and the two entry points are read-only globals. WebAssembly, SharedArrayBuffer
#: and Atomics are removed, and every ArrayBuffer and typed array allocated counts against ``__budget``
#: bytes (V8 keeps their memory outside the heap its own limit watches); past it, a RangeError.
_PRELUDE = """
(function (budget) {
  const parse = JSON.parse, stringify = JSON.stringify, keys = Object.keys, isArray = Array.isArray;
  const toNumber = Number, isFinite = Number.isFinite, define = Object.defineProperty;
  const construct = Reflect.construct, apply = Reflect.apply;
  let allocated = 0;
  function spend(bytes) {
    const n = toNumber(bytes);
    allocated += isFinite(n) && n > 0 ? n : 0;
    if (allocated > budget) throw new RangeError("typed arrays and ArrayBuffers over the evalscript's memory limit");
  }
  function guard(name, bytesOf) {
    const original = globalThis[name];
    if (typeof original !== "function") return;
    const guarded = new Proxy(original, {
      construct(target, args, newTarget) {
        spend(bytesOf(args, original));
        return construct(target, args, newTarget === guarded ? target : newTarget);
      },
      apply(target, self, args) { return apply(target, self, args); },
    });
    define(original.prototype, "constructor", {value: guarded, writable: false, configurable: false});
    define(globalThis, name, {value: guarded, writable: false, configurable: false});
  }
  const elements = (args, original) => {
    const first = args[0];
    const length = typeof first === "object" && first !== null
      ? (typeof first.byteLength === "number" && !isArray(first) ? 0 : toNumber(first.length) || 0)
      : toNumber(first) || 0;
    return length * (original.BYTES_PER_ELEMENT || 1);
  };
  guard("ArrayBuffer", (args) => {
    const options = args[1];
    const most = options && typeof options === "object" ? toNumber(options.maxByteLength) || 0 : 0;
    return (toNumber(args[0]) || 0) + most;
  });
  for (const name of ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array",
                      "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"]) {
    guard(name, elements);
  }
  const bufferProto = ArrayBuffer.prototype;
  for (const method of ["transfer", "transferToFixedLength"]) {
    const original = bufferProto[method];
    if (typeof original !== "function") continue;
    define(bufferProto, method, {value: function (length) {
      spend(length === undefined ? this.byteLength : length);
      return apply(original, this, [length]);
    }, writable: false, configurable: false});
  }
  for (const name of ["WebAssembly", "SharedArrayBuffer", "Atomics"]) delete globalThis[name];

  function run(columnsText, n, countsText) {
    const columns = parse(columnsText);
    const counts = parse(countsText);
    const names = keys(columns);
    const ids = keys(counts);
    const out = {};
    for (let k = 0; k < ids.length; k++) out[ids[k]] = [];
    for (let i = 0; i < n; i++) {
      const sample = {};
      for (let k = 0; k < names.length; k++) sample[names[k]] = columns[names[k]][i];
      let result = evaluatePixel(sample, [], {}, {}, {});
      if (isArray(result)) result = {"default": result};
      if (result === null || typeof result !== "object") throw new Error("evaluatePixel returned no outputs");
      for (let k = 0; k < ids.length; k++) {
        const id = ids[k];
        let value = result[id];
        if (value === undefined) throw new Error("evaluatePixel returned no '" + id + "' output");
        if (!isArray(value)) value = [value];
        if (value.length !== counts[id])
          throw new Error("output '" + id + "' has " + value.length + " values for a pixel; setup() declares "
                          + counts[id]);
        const column = out[id];
        for (let b = 0; b < value.length; b++) {
          const v = toNumber(value[b]);
          column[column.length] = isFinite(v) ? v : null;
        }
      }
    }
    return stringify(out);
  }
  define(globalThis, "__polyfisRun", {value: run, writable: false, configurable: false});
  define(globalThis, "__polyfisSetup", {value: () => stringify(setup()), writable: false, configurable: false});
})(__BUDGET__);
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

    def __init__(self, source: str, *, timeout_ms: int | None = None, max_memory: int | None = None,
                 deadline: float | None = None) -> None:
        from py_mini_racer import MiniRacer

        if not isinstance(source, str) or not source.strip():
            raise EvalscriptError("evalscript: expected the text of a version-3 evalscript, got an empty value")
        self.timeout_ms = timeout_ms or DEFAULT_TIMEOUT_MS
        self.max_memory = max_memory or DEFAULT_MAX_MEMORY
        self.deadline = deadline
        self._ctx = MiniRacer()
        self._call(_PRELUDE.replace("__BUDGET__", str(int(self.max_memory))), "preparing the engine")
        self._call(source, "evaluating the script")
        if self._call("typeof evaluatePixel", "checking evaluatePixel") != "function":
            raise EvalscriptError("evalscript: no evaluatePixel(samples) function; expected a version-3 evalscript")
        if self._call("typeof setup", "checking setup") != "function":
            raise EvalscriptError("evalscript: no setup() function; expected a version-3 evalscript")
        spec = _json(self._call("__polyfisSetup()", "running setup()"), "setup()")
        if not isinstance(spec, dict):
            raise EvalscriptError(
                f"evalscript: setup() returned {spec!r:.80}; expected an object with input and output")
        if str(spec.get("mosaicking", "SIMPLE")).upper() != "SIMPLE":
            raise EvalscriptError(f"evalscript: mosaicking {spec.get('mosaicking')!r} is not supported; polyfis "
                                  "runs evalscripts with SIMPLE mosaicking (one sample per pixel)")
        self.inputs, self.units = _parse_inputs(spec.get("input"))
        self.outputs = _parse_outputs(spec.get("output"))

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
        unexpected = EvalscriptError("evalscript: evaluatePixel returned an unexpected result; expected numbers")
        if not isinstance(result, str) or len(result) > 40 * n * sum(len(o.bands) for o in self.outputs) + 1000:
            raise unexpected
        raw = _json(result, "evaluatePixel")
        out = {}
        for output in self.outputs:
            values = raw.get(output.id) if isinstance(raw, dict) else None
            if not isinstance(values, list) or len(values) != n * len(output.bands) or not all(
                    v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
                raise unexpected
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            out[output.id] = _cast(array.reshape(n, len(output.bands)), output.sample_type)
        return out


def _json(text: Any, what: str) -> Any:
    """The JSON an engine call returned; anything else is the script's error, in words of our own."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError) as exc:
        raise EvalscriptError(f"evalscript: {what} returned something that is not JSON data; expected plain "
                              "objects, arrays and numbers") from exc


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
