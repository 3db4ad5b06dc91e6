"""Names and default places of the demo archive's files, and the JSON reading and writing they share.

The folders come from the settings (:mod:`stats.settings`: ``POLYFIS_DEMO_DIR``, ``XDG_CACHE_HOME`` and
``POLYFIS_FIXTURES``), read afresh on each call so that a change of the environment is seen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from ...errors import ArchiveError
from ...settings import Settings

#: File names in ``fixtures/`` and in a generated archive root.
RECIPE_FILE: Final[str] = "demo_recipe.json"
POLYGONS_FILE: Final[str] = "demo_polygons.geojson"
GROUND_TRUTH_FILE: Final[str] = "ground_truth.json"
STAMP_FILE: Final[str] = ".polyfis-demo-stamp.json"
TRUTH_DIR: Final[str] = "truth"
LANDCOVER_FILE: Final[str] = "landcover.tif"


def default_demo_dir() -> Path:
    """Return where the demo archive is cached by default.

    Returns
    -------
    Path
        ``$POLYFIS_DEMO_DIR`` if set, else ``$XDG_CACHE_HOME/polyfis/demo`` (``~/.cache/polyfis/demo`` when
        ``XDG_CACHE_HOME`` is unset). The folder is not created.
    """
    return Settings.from_env().demo_path


def fixtures_dir() -> Path:
    """Return the folder holding the demo recipe and polygons.

    Returns
    -------
    Path
        ``$POLYFIS_FIXTURES`` if set, else the ``stats/fixtures/`` folder shipped in the package.
    """
    return Settings.from_env().fixtures_path


def load_json(path: Path, what: str) -> Any:
    """Parse a JSON file.

    Parameters
    ----------
    path
        The file.
    what
        What the file is (``"demo recipe"`` …), for the error message.

    Raises
    ------
    ArchiveError
        When the file cannot be read or is not JSON; the message names ``what`` and ``path``.
    """
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"Cannot read the {what} {str(path)!r}: {exc}") from exc


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON (indent 1, no NaN, trailing newline), the format of every JSON file of the archive."""
    with path.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, allow_nan=False)
        fh.write("\n")
