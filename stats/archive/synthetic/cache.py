"""The demo archive as a cache: its digest and stamp, and the atomic install of a freshly built archive."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Final

from .files import GROUND_TRUTH_FILE, STAMP_FILE

#: Bump when a change of this package changes the generated archive; cached archives are then rebuilt.
GENERATOR_VERSION: Final[str] = "3"


def recipe_digest(recipe_path: Path, polygons_path: Path) -> str:
    """SHA-256 (hex) of :data:`GENERATOR_VERSION`, the recipe bytes and the polygon bytes: the cache key."""
    sha = hashlib.sha256()
    sha.update(f"polyfis-synthetic/{GENERATOR_VERSION}\n".encode())
    sha.update(recipe_path.read_bytes())
    sha.update(b"\n")
    sha.update(polygons_path.read_bytes())
    return sha.hexdigest()


def stamp_matches(root: Path, digest: str) -> bool:
    """Whether ``root`` holds a complete archive generated with ``digest``."""
    try:
        with (root / STAMP_FILE).open(encoding="utf-8") as fh:
            stamp = json.load(fh)
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("digest") == digest
        and (root / "collection.json").is_file()
        and (root / GROUND_TRUTH_FILE).is_file()
    )


def replaceable(root: Path) -> bool:
    """Whether the folder ``root`` may be replaced by a demo archive: it is empty or holds a demo stamp."""
    if not root.is_dir():
        return False
    return (root / STAMP_FILE).is_file() or not any(root.iterdir())


def install(work: Path, target: Path, digest: str) -> None:
    """Move the finished ``work`` folder to ``target``, replacing an old demo archive there.

    When another process installed an archive of the same ``digest`` meanwhile, that one is kept and
    ``work`` removed.
    """
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".polyfis-demo-old-{uuid.uuid4().hex[:8]}")
        try:
            target.rename(old)
        except OSError:
            old = None
    try:
        work.rename(target)
    except OSError:
        # Another process installed an archive meanwhile: keep it if it is the same recipe.
        if stamp_matches(target, digest):
            shutil.rmtree(work, ignore_errors=True)
        else:
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
