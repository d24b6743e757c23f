"""Files that ship with monitor: the seed corpus, the seeded watchlist and the migrations.

In a clone they sit at the top of the repository; in an installed wheel they are copied inside the
package (see ``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """The folder ``name`` (``seeds`` or ``migrations``) from the wheel or from the clone."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"monitor is installed without its {name}/ folder")


def seeds_dir() -> Path:
    return shipped("seeds")


def migrations_dir() -> Path:
    return shipped("migrations")
