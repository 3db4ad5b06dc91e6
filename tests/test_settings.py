"""One settings object for the engine and the service: every POLYFIS_* value is checked at start-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import CRS_UTM, utm_box

import stats.datasets as datasets
from polyfis.cli import main
from service import create_app
from stats.errors import ConfigError
from stats.settings import Settings, configure, current


@pytest.fixture(autouse=True)
def _fresh_settings():
    configure(None)
    yield
    configure(None)


@pytest.mark.parametrize(("variable", "value", "match"), [
    ("POLYFIS_READ_THREADS", "0", r"POLYFIS_READ_THREADS: expected a positive integer, got 0"),
    ("POLYFIS_READ_THREADS", "two", r"POLYFIS_READ_THREADS: expected a number, got 'two'; it must be a whole number"),
    ("POLYFIS_WINDOW_CACHE_MB", "-5", r"POLYFIS_WINDOW_CACHE_MB: expected 0 or a positive integer, got -5"),
    ("POLYFIS_OPEN_DATASETS", "1.5", r"POLYFIS_OPEN_DATASETS: expected a number, got '1.5'; it must be a whole number"),
    ("POLYFIS_TOKEN_TTL", "0", r"POLYFIS_TOKEN_TTL: expected a positive integer, got 0"),
])
def test_bad_engine_and_service_values_are_refused_naming_the_variable(variable: str, value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Settings.from_env({variable: value})


def test_engine_settings_size_the_readers_and_caches() -> None:
    """The reader threads, window cache and dataset pool follow the settings in force, also when they
    change after the engine has run."""
    settings = Settings.from_env({"POLYFIS_READ_THREADS": "3", "POLYFIS_WINDOW_CACHE_MB": "7",
                                  "POLYFIS_OPEN_DATASETS": "5"})
    assert (settings.threads, settings.window_cache_mb, settings.open_datasets) == (3, 7, 5)
    configure(settings)
    assert current() is settings
    assert datasets.read_threads() == 3
    assert datasets.map_threads(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]
    assert (datasets.default_pool().size, datasets.window_cache().max_bytes) == (5, 7 * 2**20)
    configure(Settings.from_env({"POLYFIS_READ_THREADS": "2", "POLYFIS_WINDOW_CACHE_MB": "1",
                                 "POLYFIS_OPEN_DATASETS": "0"}))
    assert datasets.read_threads() == 2
    assert (datasets.default_pool().size, datasets.window_cache().max_bytes) == (0, 2**20)
    assert Settings.from_env({}).threads == (os.cpu_count() or 1)


def test_limits_come_from_the_settings() -> None:
    limits = Settings.from_env({"POLYFIS_MAX_DAYS": "30", "POLYFIS_MAX_VERTICES": "12",
                                "POLYFIS_TIME_BUDGET_S": "2.5"}).limits
    assert (limits.max_days, limits.max_vertices, limits.time_budget_s) == (30, 12, 2.5)


def test_the_app_refuses_to_start_with_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFIS_WINDOW_CACHE_MB", "lots")
    with pytest.raises(ConfigError, match=r"POLYFIS_WINDOW_CACHE_MB: expected a number, got 'lots'"):
        create_app()


def query(archive: Path, end: str) -> Result:
    ring = utm_box(6, 1, 10, 5)
    wkt = "POLYGON ((" + ", ".join(f"{x} {y}" for x, y in ring) + "))"
    return CliRunner().invoke(main, ["query", "--archive", str(archive), "--geometry", wkt, "--crs", CRS_UTM,
                                     "--from", "2023-01-01", "--to", end])


def test_a_command_stops_with_the_message_of_a_bad_value(simple_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`polyfis query` with a bad POLYFIS_* value exits 1 naming it, before reading anything."""
    monkeypatch.setenv("POLYFIS_READ_THREADS", "-1")
    result = query(simple_archive, "2023-01-31")
    assert result.exit_code == 1
    assert "POLYFIS_READ_THREADS: expected a positive integer, got -1" in result.output
    assert "Traceback" not in result.output


def test_the_command_line_limits_apply_to_queries(simple_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """POLYFIS_MAX_DAYS bounds `polyfis query` as it bounds the service."""
    monkeypatch.setenv("POLYFIS_MAX_DAYS", "10")
    result = query(simple_archive, "2023-12-31")
    assert result.exit_code == 1
    assert "more than the limit of 10" in result.output
