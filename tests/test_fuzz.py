"""API fuzzing: schemathesis generates requests from openapi.yaml against a live server (bounded examples).
No request may get a 5xx, and every response must conform to the schema of its route and status."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

from conftest import S2_BANDS, band_array, band_transform
from werkzeug.serving import make_server

from service import create_app
from stats.archive.catalog import ArchiveWriter


def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    """`schemathesis run` over every route of openapi.yaml (deterministic, 25 examples per operation)."""
    root = tmp_path / "archive"
    with ArchiveWriter(root) as writer:
        writer.add("T1", dt.datetime(2023, 1, 5, 10, tzinfo=dt.UTC), "EPSG:32633",
                   {b: (band_array(b), band_transform(b)) for b in S2_BANDS})
    app = create_app({"archive": str(root), "time_budget_s": 5.0})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/openapi.yaml"
        run = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "run", url,
             "--checks", "not_a_server_error,response_schema_conformance",
             "--max-examples", "25", "--generation-deterministic", "--request-timeout", "60",
             "--phases", "examples,fuzzing", "--suppress-health-check", "all", "--no-color"],
            capture_output=True, text=True, timeout=900, check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
