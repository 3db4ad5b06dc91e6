"""Mixed load for polyfis: native time series, FIS and Statistical API requests over the demo polygons.

Used by ``bench/load.py``; it only ever targets the host it is given (127.0.0.1 there).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from locust import HttpUser, between, task

POLYGONS = [f["geometry"] for f in json.loads(
    (Path(__file__).resolve().parents[1] / "stats" / "fixtures" / "demo_polygons.geojson").read_text())["features"]
    if f["properties"]["kind"] in ("field", "forest", "urban", "bare")]

NDVI = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "dataMask"]}], output: [{id: "ndvi", bands: 1}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(s) { return {ndvi: [(s.B08 - s.B04) / (s.B08 + s.B04)], dataMask: [s.dataMask]}; }"""


def _wkt_latlon(geometry: dict) -> str:
    ring = geometry["coordinates"][0]
    return "POLYGON ((" + ", ".join(f"{lat} {lon}" for lon, lat in ring) + "))"


class Analyst(HttpUser):
    """One user: mostly time series, some FIS and Statistical requests, over random demo polygons."""

    wait_time = between(0.1, 0.5)

    @task(5)
    def timeseries(self) -> None:
        self.client.post("/api/v1/timeseries", name="timeseries", json={
            "geometry": random.choice(POLYGONS), "time": {"from": "2023-01-01", "to": "2023-12-31"},
            "bands": ["B04", "B08"], "indices": ["NDVI"]})

    @task(3)
    def fis(self) -> None:
        self.client.get("/ogc/fis", name="fis", params={
            "LAYER": random.choice(["NDVI", "TRUE_COLOR", "CLOUD_PROBABILITY"]), "CRS": "EPSG:4326",
            "TIME": "2023-04-01/2023-09-30", "GEOMETRY": _wkt_latlon(random.choice(POLYGONS)), "RESOLUTION": "10m",
            "BINS": "5"})

    @task(2)
    def statistics(self) -> None:
        self.client.post("/api/v1/statistics", name="statistics", json={
            "input": {"bounds": {"geometry": random.choice(POLYGONS)}, "data": [{"type": "sentinel-2-l1c"}]},
            "aggregation": {"timeRange": {"from": "2023-05-01T00:00:00Z", "to": "2023-08-31T23:59:59Z"},
                            "aggregationInterval": {"of": "P1D"}, "resx": 0.00013, "resy": 0.00009,
                            "evalscript": NDVI}})
