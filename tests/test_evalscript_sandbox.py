"""Evalscripts cannot replace the code that runs them, cannot allocate outside the engine's memory limit,
and cannot outlast the request's time budget; whatever they return is checked before it is used."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from test_statistical import NDVI_SCRIPT, body

from service import create_app
from stats.errors import EvalscriptError, EvalscriptTimeout
from stats.sentinelhub.evalscript import Evalscript

COLUMNS = {"B04": np.array([0.1, 0.2]), "B08": np.array([0.5, 0.4]), "dataMask": np.array([1.0, 1.0])}
NDVI = [(0.5 - 0.1) / (0.5 + 0.1), (0.4 - 0.2) / (0.4 + 0.2)]


@pytest.mark.parametrize("tamper", [
    "JSON.stringify = () => 'not json';",
    "JSON.parse = () => ({});",
    "Object.keys = () => { throw new Error('no keys'); };",
    "Array.isArray = () => false;",
    "Array.prototype.push = function () {};",
    "Number = () => 'x';",
    "globalThis.__polyfisRun = () => '[1, 2, 3]';",
    "globalThis.__polyfisSetup = () => 'null';",
    "globalThis.__polyfisInputs = () => new ArrayBuffer(0);",
    "globalThis.__polyfisUserData = () => '{\"userData\": 1}';",
    "Object.defineProperty(Object.prototype, 'data', {get() { return [1, 2, 3]; }});",
    "Float64Array.prototype.fill = () => { throw new Error('no fill'); };",
])
def test_a_script_replacing_built_ins_still_gets_its_own_answer(tamper: str) -> None:
    """The runner holds its own copies of what it uses, and its entry points are read-only."""
    out = Evalscript(tamper + "\n" + NDVI_SCRIPT).evaluate(COLUMNS)
    np.testing.assert_allclose(out["data"][:, 0], NDVI, rtol=1e-6)  # float32 output
    assert out["dataMask"][:, 0].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("tamper, match", [
    ("function __polyfisRun() { return '{}'; }", "already been declared"),
    ("setup = () => ({input: 5, output: []});", "setup"),
])
def test_a_script_tampering_with_its_answer_is_a_400(tamper: str, match: str) -> None:
    with pytest.raises(EvalscriptError, match=match):
        Evalscript(tamper + "\n" + NDVI_SCRIPT).evaluate(COLUMNS)


@pytest.mark.parametrize("allocation", [
    "const kept = []; for (let i = 0; i < 40; i++) kept.push(new Float64Array(2 ** 21));",  # 40 x 16 MiB
    "new ArrayBuffer(2 ** 30);",
    "const b = new ArrayBuffer(8, {maxByteLength: 2 ** 32}); b.resize(2 ** 30);",
    "const C = new Float32Array(1).constructor; new C(2 ** 28);",
    "const a = new Uint8Array(2 ** 28); a.slice(); a.slice();",
])
def test_typed_arrays_count_against_the_memory_limit(allocation: str) -> None:
    """V8 keeps ArrayBuffer memory off its heap; polyfis counts it against the script's limit."""
    with pytest.raises(EvalscriptError, match="memory limit"):
        Evalscript(allocation + "\n" + NDVI_SCRIPT, max_memory=256 * 2**20)


def test_small_typed_arrays_and_instanceof_still_work() -> None:
    script = NDVI_SCRIPT.replace("let index", "const v = new Float32Array([samples.B04, samples.B08]);\n"
                                 "  if (!(v instanceof Float32Array)) throw new Error('instanceof');\n  let index")
    out = Evalscript(script).evaluate(COLUMNS)
    np.testing.assert_allclose(out["data"][:, 0], NDVI, rtol=1e-6)


@pytest.mark.parametrize("name", ["WebAssembly", "SharedArrayBuffer", "Atomics"])
def test_webassembly_and_shared_memory_are_not_there(name: str) -> None:
    with pytest.raises(EvalscriptError, match=f"{name} is not defined"):
        Evalscript(f"{name}.toString();\n" + NDVI_SCRIPT)


def test_compiling_counts_against_the_time_budget() -> None:
    """A script whose top level runs for ever is stopped when the request's budget runs out, not at the
    20 s engine limit."""
    start = time.monotonic()
    with pytest.raises(EvalscriptTimeout, match="time budget"):
        Evalscript("while (true) {}\n" + NDVI_SCRIPT, deadline=time.monotonic() + 0.5)
    assert time.monotonic() - start < 5


def test_the_statistical_route_stops_a_slow_script_within_the_budget(simple_archive: Path) -> None:
    client = create_app({"archive": str(simple_archive), "time_budget_s": 1}).test_client()
    start = time.monotonic()
    response = client.post("/api/v1/statistics", json=body("while (true) {}\n" + NDVI_SCRIPT))
    assert response.status_code == 400 and "time budget" in response.json["error"]["message"]
    assert time.monotonic() - start < 10
