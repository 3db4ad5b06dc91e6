"""`polyfis query` and `polyfis batch` take every request field of POST /api/v1/timeseries, with one meaning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from polyfis.cli import batch, main, query
from polyfis.options import FIELDS, option_names, request_options
from service import create_app

SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "service" / "openapi.yaml").read_text())


def request_fields() -> set[str]:
    """The option fields of the request schema: top-level properties, and the members of its objects."""
    properties = SPEC["components"]["schemas"]["TimeSeriesRequest"]["properties"]
    out = set()
    for name, schema in properties.items():
        if name in ("geometry", "crs", "time"):
            continue
        variants = schema.get("oneOf", [schema])
        members = [v["properties"] for v in variants if v.get("type") == "object" and "properties" in v]
        if members:
            out |= {f"{name}.{member}" for member in members[0]}
        else:
            out.add(name)
    return out


def test_every_request_field_has_an_option_in_both_commands() -> None:
    assert set(FIELDS) == request_fields()
    for command in (query, batch):
        assert set(FIELDS.values()) <= option_names(command), command.name


def test_options_become_the_request_fields() -> None:
    given: dict[str, Any] = {"bands": "B04, B08", "resolution": "20", "harmonize": False, "exact": True,
                             "cloud_mode": "both", "threshold": 0.3, "water": "otsu", "water_threshold": 0.1,
                             "histogram_bins": 5, "include_empty": None}
    assert request_options(given) == {
        "bands": ["B04", "B08"], "resolution": 20, "harmonize": False, "exact": True,
        "cloud": {"mode": "both", "threshold": 0.3}, "water": {"method": "otsu", "threshold": 0.1},
        "histogram": {"bins": 5}}


@pytest.mark.parametrize("args, body", [
    (["--exact", "--statistics", "count,mean"], {"exact": True, "statistics": ["count", "mean"]}),
    (["--include-empty", "--no-harmonize", "--max-cloud-cover", "50"],
     {"include_empty": True, "harmonize": False, "max_cloud_cover": 50}),
    (["--cloud-mode", "pixel", "--cloud-resolution", "80", "--average-over", "1", "--dilation-size", "1",
      "--mask-clouds", "--water", "threshold", "--water-index", "NDWI"],
     {"cloud": {"mode": "pixel", "resolution": 80, "average_over": 1, "dilation_size": 1, "mask": True},
      "water": {"method": "threshold", "index": "NDWI"}}),
])
def test_the_command_line_answers_as_the_http_route(demo_root: Path, args: list[str], body: dict) -> None:
    ring = "POLYGON ((15.02733 46.03805, 15.02733 46.03616, 15.03056 46.03615, 15.03056 46.03804, 15.02733 46.03805))"
    time = ["--from", "2023-06-01", "--to", "2023-07-31"]
    result = CliRunner().invoke(main, ["query", "--archive", str(demo_root), "--geometry", ring, "--bands", "B04",
                                       *time, "--format", "csv", *args])
    assert result.exit_code == 0, result.output
    client = create_app({"archive": str(demo_root)}).test_client()
    http = client.post("/api/v1/timeseries?format=csv", json={
        "geometry": ring, "time": {"from": "2023-06-01", "to": "2023-07-31"}, "bands": ["B04"], **body})
    assert http.status_code == 200, http.get_data(as_text=True)
    assert result.stdout == http.get_data(as_text=True)
