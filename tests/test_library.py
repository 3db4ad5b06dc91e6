"""polyfis as a library: the public names of `import polyfis`, `python -m polyfis`, and the error table."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import BASE_DN, CRS_UTM, utm_box

import polyfis
import stats.errors as errors


def test_import_polyfis_answers_a_time_series(simple_archive: Path) -> None:
    """The names of `import polyfis` are enough to parse, run and read a query."""
    request = polyfis.TimeSeriesRequest.from_dict({
        "geometry": {"type": "Polygon", "coordinates": [utm_box(6, 1, 10, 5)]}, "crs": CRS_UTM,
        "time": {"from": "2023-01-01", "to": "2023-01-31"}, "bands": ["B04"], "statistics": ["mean", "count"]})
    assert isinstance(request.area, polyfis.Area) and isinstance(request.time, polyfis.TimeRange)
    result = polyfis.query_timeseries(request, polyfis.Archive.open(simple_archive))
    (entry,) = result.series
    assert entry.bands["B04"]["count"] == 16
    assert entry.bands["B04"]["mean"] == pytest.approx((BASE_DN["B04"] + 38.5) / 10000)


def test_python_dash_m_polyfis_is_the_command_line() -> None:
    out = subprocess.run([sys.executable, "-m", "polyfis", "--version"], capture_output=True, text=True, check=True)
    assert version("polyfis") in out.stdout


def test_every_error_class_has_its_status_in_the_one_table() -> None:
    """Every exception class of polyfis is in stats/errors.py, and the table gives each a status: the
    caller's mistakes 4xx, the server's trouble 5xx."""
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, Exception) and c.__module__ == errors.__name__]
    assert errors.StatsError in classes and errors.EvalscriptTimeout in classes
    statuses = {c.__name__: errors.status_for(c("message")) for c in classes}
    assert all(400 <= s < 600 for s in statuses.values()), statuses
    assert statuses["UnknownBandError"] == statuses["EvalscriptTimeout"] == statuses["MalformedRequestError"] == 400
    assert (statuses["UnauthorizedError"], statuses["NotFoundError"], statuses["ConflictError"]) == (401, 404, 409)
    assert (statuses["UnsupportedMediaTypeError"], statuses["SceneReadError"]) == (415, 502)
    assert statuses["ArchiveError"] == statuses["ServiceUnavailableError"] == 503
    assert statuses["CloudModelError"] == statuses["ConfigError"] == 500


def test_no_other_module_defines_an_exception_class() -> None:
    """The engine, the service and the command line raise only the classes of stats/errors.py."""
    root = Path(__file__).resolve().parents[1]
    found = []
    for package in ("stats", "service", "polyfis"):
        for path in (root / package).rglob("*.py"):
            if path.name == "errors.py" and path.parent.name == "stats":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                stripped = line.strip()
                if stripped.startswith("class ") and ("Error" in stripped or "Exception)" in stripped):
                    found.append(f"{path.relative_to(root)}:{number}: {stripped}")
    assert found == []


def test_error_codes_are_one_vocabulary_listed_in_the_readme() -> None:
    """Every error's code is its name without 'Error', and the README's table gives it with its status."""
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    listed: dict[str, int] = {}
    for codes, status in re.findall(r"^\| ((?:`\w+`(?:, )?)+) \| (\d{3}) \|", text, re.M):
        for code in re.findall(r"`(\w+)`", codes):
            listed[code] = int(status)
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, Exception) and c.__module__ == errors.__name__]
    for cls in classes:
        code = errors.error_code(cls("message"))
        assert not code.endswith("Error") and code in listed, (cls.__name__, code)
        assert listed[code] == errors.status_for(cls("message")), code
