"""Where band files live: local paths, http(s) URLs and ``s3://`` objects, as GDAL opens them.

:func:`gdal_path` turns an asset href into the path GDAL reads: ``s3://bucket/key`` becomes
``/vsis3/bucket/key`` and ``http(s)://…`` becomes ``/vsicurl/http(s)://…``; a local path stays as it is.

GDAL's S3 access takes its settings from the usual environment variables: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), or ``AWS_PROFILE``; ``AWS_REGION``;
``AWS_NO_SIGN_REQUEST=YES`` for a public bucket read without credentials; ``AWS_REQUEST_PAYER=requester``
for a requester-pays bucket (Earth Search's ``sentinel-s2-l1c``); ``AWS_S3_ENDPOINT`` (host[:port]),
``AWS_HTTPS`` and ``AWS_VIRTUAL_HOSTING`` for another S3-compatible service (the Copernicus Data Space's
``eodata.dataspace.copernicus.eu``, MinIO, …). ``AWS_ENDPOINT_URL`` (the AWS command line's name, a full
URL) is also understood: when ``AWS_S3_ENDPOINT`` is not set, it gives GDAL the endpoint, ``AWS_HTTPS``
from its scheme and path-style addressing (:func:`endpoint_options`).

A file that cannot be opened is explained by :func:`open_failure`: GDAL reports a refused S3 or HTTP read
only as a file it cannot recognise, so the open is tried once more with GDAL's debug messages on, and the
HTTP status GDAL logged (403, 404, …) names what to set.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

import rasterio

#: hrefs GDAL reads over the network, and the prefix of each.
VSI_PREFIXES = {"s3://": "/vsis3/", "http://": "/vsicurl/http://", "https://": "/vsicurl/https://"}

_STATUS = re.compile(r"response_code=(\d{3})")
_APPLIED: dict[str, str] = {}
_APPLIED_LOCK = threading.Lock()
_DIAGNOSIS_LOCK = threading.Lock()


def endpoint_options(environ: Mapping[str, str]) -> dict[str, str]:
    """The GDAL options ``AWS_ENDPOINT_URL`` stands for, when ``AWS_S3_ENDPOINT`` is not set.

    >>> endpoint_options({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    {'AWS_S3_ENDPOINT': '127.0.0.1:9000', 'AWS_HTTPS': 'NO', 'AWS_VIRTUAL_HOSTING': 'FALSE'}
    >>> endpoint_options({"AWS_ENDPOINT_URL": "https://x.example", "AWS_S3_ENDPOINT": "y.example"})
    {}
    """
    url = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if not url or environ.get("AWS_S3_ENDPOINT"):
        return {}
    parts = urlsplit(url if "://" in url else f"https://{url}")
    options = {"AWS_S3_ENDPOINT": parts.netloc + parts.path.rstrip("/"),
               "AWS_HTTPS": "NO" if parts.scheme == "http" else "YES"}
    options["AWS_VIRTUAL_HOSTING"] = environ.get("AWS_VIRTUAL_HOSTING", "FALSE")
    return options


def _apply_endpoint() -> None:
    """Give GDAL the endpoint options ``AWS_ENDPOINT_URL`` stands for, as environment variables (which GDAL
    reads in every thread); those set before are updated or removed when ``AWS_ENDPOINT_URL`` changed."""
    with _APPLIED_LOCK:
        ours = {key: value for key, value in _APPLIED.items() if os.environ.get(key) == value}
        options = endpoint_options({k: v for k, v in os.environ.items() if k not in ours})
        if options == ours:
            return
        for key in set(ours) - set(options):
            os.environ.pop(key, None)
        os.environ.update(options)
        _APPLIED.clear()
        _APPLIED.update(options)


def gdal_path(href: str) -> str:
    """The path GDAL opens for an asset href (see the module docstring).

    >>> gdal_path("s3://sentinel-s2-l1c/tiles/33/T/WL/2023/1/5/0/B02.jp2")
    '/vsis3/sentinel-s2-l1c/tiles/33/T/WL/2023/1/5/0/B02.jp2'
    >>> gdal_path("https://example.org/B02.tif"), gdal_path("/data/B02.tif")
    ('/vsicurl/https://example.org/B02.tif', '/data/B02.tif')
    """
    for scheme, prefix in VSI_PREFIXES.items():
        if href.startswith(scheme):
            if scheme == "s3://":
                _apply_endpoint()
            return prefix + href[len(scheme):]
    return href


def href_of(path: str) -> str:
    """The asset href a GDAL path stands for (the inverse of :func:`gdal_path`), for messages.

    >>> href_of("/vsis3/bucket/key.tif"), href_of("/vsicurl/https://h/k.tif")
    ('s3://bucket/key.tif', 'https://h/k.tif')
    """
    if path.startswith("/vsis3/"):
        return "s3://" + path[len("/vsis3/"):]
    return path.removeprefix("/vsicurl/")


class _StatusHandler(logging.Handler):
    """Collects the HTTP statuses GDAL logs from one thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.statuses: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            found = _STATUS.search(record.getMessage())
            if found:
                self.statuses.append(int(found.group(1)))


def http_status(path: str) -> int | None:
    """The last error status (4xx/5xx) GDAL met opening a remote ``path``, or None (a local path, or none
    logged): the open is tried again with ``CPL_DEBUG`` on and GDAL's log read."""
    if not path.startswith(("/vsis3/", "/vsicurl/")):
        return None
    logger = logging.getLogger("rasterio._env")
    handler = _StatusHandler()
    with _DIAGNOSIS_LOCK:  # one at a time: the logger's level is raised for the diagnosis and put back after
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            with rasterio.Env(CPL_DEBUG=True), rasterio.open(path):
                pass
        except rasterio.errors.RasterioError:
            pass
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
    errors = [status for status in handler.statuses if status >= 400]
    return errors[-1] if errors else None


def open_failure(path: str, message: str = "") -> str:
    """Why ``path`` could not be opened, in words naming what to set: ``access denied (HTTP 403)`` with the
    requester-pays and credential variables, ``not found (HTTP 404)``, another HTTP status, or ``missing or
    not a raster GDAL reads`` when no status was logged (and for a local file, whose path is not shown).
    ``message`` is GDAL's own: a file its listing of the folder lacks is ``not found`` without any status."""
    if not path.startswith(("/vsis3/", "/vsicurl/")):
        return "missing or not a raster GDAL reads"  # a local path is not shown to clients
    status = http_status(path)
    href = href_of(path)
    if status == 403 and path.startswith("/vsis3/"):
        return (f"{href}: access denied (HTTP 403); for a requester-pays bucket (such as Earth Search's "
                "sentinel-s2-l1c) set AWS_REQUEST_PAYER=requester, and set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to credentials allowed to read it")
    if status in (401, 403):
        return f"{href}: access denied (HTTP {status}); the server needs credentials for this URL"
    if status == 404:
        return f"{href}: not found (HTTP 404)"
    if status is not None:
        return f"{href}: the server answered HTTP {status}"
    if "does not exist in the file system" in message:
        return f"{href}: not found"
    return f"{href}: missing or not a raster GDAL reads"
