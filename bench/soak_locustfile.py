"""The load test's mix (``bench/locustfile.py``), with every failed request written as one JSON line (start time,
seconds, name, error) to the file named by ``SOAK_FAILURES``, so that ``bench/soak.py`` can tell the requests a
worker kill cut from any other failure."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from locust import events
from locustfile import Analyst

__all__ = ["Analyst"]

_LOCK = threading.Lock()


@events.request.add_listener
def _record_failure(request_type: str, name: str, response_time: float, exception: Exception | None = None,
                    start_time: float | None = None, response: Any = None, **_: Any) -> None:
    if exception is None:
        return
    status = getattr(response, "status_code", None)
    line = json.dumps({"start": start_time, "seconds": response_time / 1000, "name": name,
                       "status": status or None, "error": f"{type(exception).__name__}: {exception}"[:300]})
    with _LOCK, open(os.environ["SOAK_FAILURES"], "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
