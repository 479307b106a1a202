"""Where msgops finds its built-in data, from a source checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE.parent


def _data_dir(name: str) -> Path:
    # An installed wheel carries the folder as msgops/_data/<name>; a checkout has it at the root.
    for candidate in (_PACKAGE / "_data" / name, _REPO_ROOT / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"msgops data folder {name!r} not found; reinstall msgops")


def checklists_dir() -> Path:
    return _data_dir("checklists")


def loadtests_dir() -> Path:
    return _data_dir("loadtests")

