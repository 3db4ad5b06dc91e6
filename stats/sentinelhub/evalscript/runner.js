// The evalscript runner, installed before anything else in a script's engine.
//
// The runner's built-ins are captured in a closure and its entry points are read-only globals, so that the
// script cannot replace what runs it. WebAssembly, SharedArrayBuffer and Atomics are removed, and every
// ArrayBuffer and typed array allocated counts against the budget (bytes) (V8 keeps their memory outside the
// heap its own limit watches); past it, a RangeError.

(function (budget) {
  const parse = JSON.parse, stringify = JSON.stringify, keys = Object.keys, isArray = Array.isArray;
  const toNumber = Number, isFinite = Number.isFinite, define = Object.defineProperty;
  const construct = Reflect.construct, apply = Reflect.apply, DateType = Date;
  const Buffer = ArrayBuffer, Float64 = Float64Array;  // the runner's own buffers, outside the script's budget
  let inbox = new Buffer(0), userData = undefined;
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

  // The optional functions of a version-3 script, looked up when called (a script may declare them in any way).
  function optional(name) {
    if (name === "preProcessScenes") return typeof preProcessScenes === "function" ? preProcessScenes : null;
    if (name === "updateOutput") return typeof updateOutput === "function" ? updateOutput : null;
    return typeof updateOutputMetadata === "function" ? updateOutputMetadata : null;
  }

  function describe() {
    return stringify({
      spec: setup(),
      preProcessScenes: optional("preProcessScenes") !== null,
      updateOutput: optional("updateOutput") !== null,
      updateOutputMetadata: optional("updateOutputMetadata") !== null,
    });
  }

  // preProcessScenes (ORBIT and TILE) and updateOutput, before any pixel is read. ``planText`` holds the
  // mosaicking, the time range, the scenes (each with its ``__idx``) and the outputs' band counts; the answer
  // is the ``__idx`` of the scenes kept, in the order returned, and the band counts after updateOutput.
  function plan(planText) {
    const p = parse(planText);
    let scenes = p.scenes;
    let kept = null;
    const filter = p.mosaicking === "SIMPLE" ? null : optional("preProcessScenes");
    if (filter !== null) {
      const key = p.mosaicking === "ORBIT" ? "orbits" : "tiles";
      const given = {};
      given[key] = scenes;
      const result = filter({from: new DateType(p.from), to: new DateType(p.to), scenes: given});
      const list = result !== null && typeof result === "object" && result.scenes !== null
        && typeof result.scenes === "object" ? result.scenes[key] : undefined;
      if (!isArray(list)) throw new Error("preProcessScenes must return its collections with scenes." + key
                                          + " an array");
      kept = [];
      scenes = [];
      for (let i = 0; i < list.length; i++) {
        const scene = list[i];
        kept[kept.length] = scene !== null && typeof scene === "object" ? toNumber(scene.__idx) : NaN;
        scenes[scenes.length] = scene;
      }
    }
    const outputs = p.outputs;
    const resize = optional("updateOutput");
    if (resize !== null) {
      const dates = [];
      for (let i = 0; i < scenes.length; i++) {
        const scene = scenes[i];
        const when = scene === null || typeof scene !== "object" ? undefined : (scene.dateFrom || scene.date);
        dates[dates.length] = {date: new DateType(when)};
      }
      const collection = {scenes: dates};
      collection[p.collection] = {scenes: dates};
      resize(outputs, collection);
    }
    const counts = {};
    const ids = keys(p.outputs);
    for (let i = 0; i < ids.length; i++) {
      const entry = outputs[ids[i]];
      counts[ids[i]] = entry !== null && typeof entry === "object" ? toNumber(entry.bands) : NaN;
    }
    return stringify({kept: kept, outputs: counts});
  }

  // The buffer the caller writes a run's inputs into before calling ``run``: ``bytes`` bytes of float64 columns.
  function inputs(bytes) {
    inbox = new Buffer(bytes);
    return inbox;
  }

  // evaluatePixel on ``n`` pixels. The inputs are the float64 columns in the input buffer, in the order of
  // ``namesText``: ``n`` values each for SIMPLE (``context.samples`` < 0, one sample object per pixel), else
  // ``samples * n`` with sample ``j`` of pixel ``i`` at ``j * n + i`` (an array of sample objects per pixel).
  // Then updateOutputMetadata. The answer is an ArrayBuffer of float64 values: each output's, pixel after pixel,
  // in the order of ``countsText``, NaN where a value is not a finite number; ``outputMetadata.userData`` is
  // kept for ``lastUserData``.
  function run(n, namesText, countsText, contextText) {
    const names = parse(namesText);
    const counts = parse(countsText);
    const context = parse(contextText);
    const ids = keys(counts);
    const k = context.samples;
    const length = k < 0 ? n : k * n;
    const columns = [];
    for (let m = 0; m < names.length; m++) columns[m] = new Float64(inbox, m * length * 8, length);
    const scenes = context.scenes;
    const inputMetadata = context.inputMetadata;
    const customData = {};
    const outputMetadata = {};
    let total = 0;
    for (let m = 0; m < ids.length; m++) total += counts[ids[m]] * n;
    const outbox = new Buffer(total * 8);
    const out = [];
    let offset = 0;
    for (let m = 0; m < ids.length; m++) {
      out[m] = new Float64(outbox, offset * 8, counts[ids[m]] * n);
      offset += counts[ids[m]] * n;
    }
    userData = undefined;
    for (let i = 0; i < n; i++) {
      let samples;
      if (k < 0) {
        samples = {};
        for (let m = 0; m < names.length; m++) samples[names[m]] = columns[m][i];
      } else {
        samples = [];
        for (let j = 0; j < k; j++) {
          const sample = {};
          for (let m = 0; m < names.length; m++) sample[names[m]] = columns[m][j * n + i];
          samples[j] = sample;
        }
      }
      let result = evaluatePixel(samples, scenes, inputMetadata, customData, outputMetadata);
      if (isArray(result)) result = {"default": result};
      if (result === null || typeof result !== "object") throw new Error("evaluatePixel returned no outputs");
      for (let m = 0; m < ids.length; m++) {
        const id = ids[m];
        let value = result[id];
        if (value === undefined) throw new Error("evaluatePixel returned no '" + id + "' output");
        if (!isArray(value)) value = [value];
        const count = counts[id];
        if (value.length !== count)
          throw new Error("output '" + id + "' has " + value.length + " values for a pixel; setup() declares "
                          + count);
        const column = out[m];
        for (let b = 0; b < count; b++) {
          const v = toNumber(value[b]);
          column[i * count + b] = isFinite(v) ? v : NaN;
        }
      }
    }
    const finish = optional("updateOutputMetadata");
    if (finish !== null) finish(scenes, inputMetadata, outputMetadata);
    userData = outputMetadata.userData;
    inbox = new Buffer(0);
    return outbox;
  }

  // ``outputMetadata.userData`` of the last run, as JSON.
  function lastUserData() {
    return stringify({userData: userData});
  }

  define(globalThis, "__polyfisInputs", {value: inputs, writable: false, configurable: false});
  define(globalThis, "__polyfisUserData", {value: lastUserData, writable: false, configurable: false});
  define(globalThis, "__polyfisRun", {value: run, writable: false, configurable: false});
  define(globalThis, "__polyfisPlan", {value: plan, writable: false, configurable: false});
  define(globalThis, "__polyfisSetup", {value: describe, writable: false, configurable: false});
})(__BUDGET__);
