"""Where a Batch Statistical job reads its GeoPackage and writes its outputs: S3-compatible storage or a local folder.

A location is given as Sentinel Hub gives it, ``{"s3": {"url": "s3://bucket/key", "accessKey", "secretAccessKey",
"region"}}``, or, on a server with a local root (``POLYFIS_BATCH_STATISTICAL_ROOT``), as ``{"local": {"path":
"fields/parcels.gpkg"}}``: a path relative to that root. A local path never leaves the root (no absolute paths, no
``..``, no symbolic link out of it); a server without a root refuses local locations.

S3 is reached with boto3: the location's own keys when it has them, else, for the buckets the operator lists
(``POLYFIS_BATCH_STATISTICAL_BUCKETS``) and only those, the server's credentials (the usual ``AWS_*`` variables,
profiles or instance roles), at the endpoint of ``AWS_ENDPOINT_URL`` (MinIO, Ceph, ...) when set,
else AWS's. Errors never carry a server path or a key: they name the location as the client gave it.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InvalidRequestError, StorageError
from ..fields import known_fields

#: Members of an ``s3`` location.
S3_FIELDS = frozenset({"url", "accessKey", "secretAccessKey", "iamRoleARN", "region"})
#: Members an S3 location keeps when it is shown back to a client.
PUBLIC_S3_FIELDS = ("url", "region")


@dataclass(frozen=True)
class Location:
    """A parsed location: an S3 ``bucket`` and ``key`` (with optional credentials and region) or a ``path`` inside
    the local root. ``given`` is how the client wrote it (``s3://...`` or the relative path)."""

    given: str
    bucket: str | None = None
    key: str = ""
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    path: Path | None = None
    root: Path | None = None

    @property
    def is_s3(self) -> bool:
        """Whether this is an S3 location."""
        return self.bucket is not None

    def substituted(self, replacements: dict[str, str]) -> Location:
        """This location with each placeholder (``<ID>``...) of its key or path replaced."""
        given = self.given
        for placeholder, value in replacements.items():
            given = given.replace(placeholder, value)
        if self.is_s3:
            key = given[len(f"s3://{self.bucket}/"):]
            return Location(given, self.bucket, key, self.access_key, self.secret_key, self.region)
        assert self.root is not None
        return Location(given, path=_inside(self.root, self.root / given, given), root=self.root)

    def child(self, relative: str) -> Location:
        """The location ``relative`` (``a/b.json``) below this one (an S3 key or a path inside the local root)."""
        if self.is_s3:
            key = f"{self.key.rstrip('/')}/{relative}" if self.key.strip("/") else relative
            return Location(f"s3://{self.bucket}/{key}", self.bucket, key, self.access_key, self.secret_key,
                            self.region)
        assert self.path is not None and self.root is not None
        return Location(f"{self.given.rstrip('/')}/{relative}", path=_inside(self.root, self.path / relative,
                                                                               f"{self.given}/{relative}"),
                        root=self.root)


def parse_location(value: Any, name: str, root: Path | None, buckets: frozenset[str] = frozenset()) -> Location:
    """Parse ``{"s3": {...}}`` or ``{"local": {"path"}}`` (``name`` is the field, for messages); ``buckets`` are
    those an S3 location without keys may use the server's credentials for.

    :raises InvalidRequestError: naming the field, what was received and what was expected.
    """
    expected = ("expected {'s3': {'url': 's3://bucket/key', 'accessKey', 'secretAccessKey'}} or, on a server with a "
                "local root, {'local': {'path': 'relative/path'}}")
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"s3", "local"}:
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise InvalidRequestError(f"{name}: got {got!r:.80}; {expected}")
    if "local" in value:
        return _local(value["local"], f"{name}.local", root)
    spec = value["s3"]
    if not isinstance(spec, dict):
        raise InvalidRequestError(f"{name}.s3: got {type(spec).__name__}; {expected}")
    known_fields(spec, S3_FIELDS, f"{name}.s3")
    url = spec.get("url")
    if not isinstance(url, str) or not url.startswith("s3://") or len(url) > 2048:
        raise InvalidRequestError(f"{name}.s3.url: got {url!r:.80}; expected an S3 URL 's3://bucket/key'")
    bucket, _, key = url[len("s3://"):].partition("/")
    if not bucket or "\\" in bucket:
        raise InvalidRequestError(f"{name}.s3.url: got {url!r:.80}; the URL names no bucket")
    if spec.get("iamRoleARN"):
        raise InvalidRequestError(f"{name}.s3.iamRoleARN: polyfis does not assume IAM roles; give 'accessKey' and "
                                  "'secretAccessKey', or leave them out to use the server's credentials")
    keys = {f: spec.get(f) for f in ("accessKey", "secretAccessKey", "region")}
    for field, text in keys.items():
        if text is not None and not isinstance(text, str):
            raise InvalidRequestError(f"{name}.s3.{field}: got {type(text).__name__}; expected a string")
    access, secret = keys["accessKey"] or None, keys["secretAccessKey"] or None
    if (access is None) != (secret is None):
        raise InvalidRequestError(f"{name}.s3: 'accessKey' and 'secretAccessKey' go together; give both, or "
                                  "neither to use the server's credentials")
    if access is None and bucket not in buckets:
        raise InvalidRequestError(f"{name}.s3: no 'accessKey' and 'secretAccessKey', and the server lends its own "
                                  f"credentials to no bucket {bucket!r:.80} (POLYFIS_BATCH_STATISTICAL_BUCKETS); give "
                                  "the keys of the bucket")
    return Location(url, bucket, key, access, secret, keys["region"] or None)


def public_location(value: dict[str, Any]) -> dict[str, Any]:
    """A location as a client may see it again: without its secret key."""
    if "s3" in value and isinstance(value["s3"], dict):
        return {"s3": {k: v for k, v in value["s3"].items() if k in (*PUBLIC_S3_FIELDS, "accessKey")}}
    return value


def _local(spec: Any, name: str, root: Path | None) -> Location:
    if root is None:
        raise InvalidRequestError(f"{name}: this server has no local folder for batch statistical inputs and outputs "
                                  "(POLYFIS_BATCH_STATISTICAL_ROOT is not set); use an 's3' location")
    path = spec.get("path") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or set(spec) != {"path"} or not isinstance(path, str) or not path.strip():
        raise InvalidRequestError(f"{name}: got {spec!r:.80}; expected {{'path': 'relative/path'}}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path or "\x00" in path or len(path) > 1024:
        raise InvalidRequestError(f"{name}.path: got {path!r:.80}; expected a path relative to the server's batch "
                                  "statistical folder, without '..'")
    return Location(path, path=_inside(root, root / pure, path), root=root)


def _inside(root: Path, path: Path, given: str) -> Path:
    """``path`` resolved, when it stays inside ``root`` (symbolic links followed)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise InvalidRequestError(f"path {given!r:.80}: it leads out of the server's batch statistical folder; "
                                  "expected a path inside it")
    return resolved


def _client(location: Location) -> Any:
    return _cached_client(location.access_key, location.secret_key, location.region)


@functools.lru_cache(maxsize=32)
def _cached_client(access_key: str | None, secret_key: str | None, region: str | None) -> Any:
    """An S3 client of these credentials (boto3 clients are thread-safe; making one costs tens of milliseconds)."""
    import boto3

    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                    region_name=region)
    return session.client("s3")


def _failure(action: str, location: Location, exc: Exception) -> StorageError:
    """A :class:`StorageError` naming what failed and the S3 error code (never the library's text)."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    reason = {"NoSuchKey": "no such object", "404": "no such object", "NoSuchBucket": "no such bucket",
              "AccessDenied": "access denied", "403": "access denied", "InvalidAccessKeyId": "unknown access key",
              "SignatureDoesNotMatch": "the secret key does not match the access key"}.get(str(code))
    if reason is None:
        reason = f"S3 error {code}" if code else ("not found" if isinstance(exc, FileNotFoundError)
                                                  else "the storage cannot be reached or refused the request")
    return StorageError(f"cannot {action} {location.given}: {reason}")


def download(location: Location, target: Path) -> None:
    """Copy the object or file at ``location`` to ``target`` (a local file).

    :raises StorageError: when it cannot be read.
    """
    if not location.is_s3:
        assert location.path is not None
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            shutil.copyfile(location.path, tmp)
        except OSError as exc:
            raise _failure("read", location, exc) from exc
        os.replace(tmp, target)
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _client(location).download_file(location.bucket, location.key, str(target))
    except (BotoCoreError, ClientError) as exc:
        raise _failure("read", location, exc) from exc


def write(location: Location, data: bytes, content_type: str = "application/json") -> None:
    """Write ``data`` to ``location`` (an S3 object, or a file inside the local root, its folders made).

    :raises StorageError: when it cannot be written.
    """
    if not location.is_s3:
        assert location.path is not None
        try:
            location.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = location.path.with_name(f".{location.path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, location.path)
        except OSError as exc:
            raise _failure("write", location, exc) from exc
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _client(location).put_object(Bucket=location.bucket, Key=location.key, Body=data, ContentType=content_type)
    except (BotoCoreError, ClientError) as exc:
        raise _failure("write", location, exc) from exc
