"""Small file helpers shared by the writers (images, snapshots)."""

from __future__ import annotations

import os

__all__ = ["default_file_mode"]


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 minus the process umask).

    Atomic writers create their temporary file with ``tempfile.mkstemp`` (mode 0o600) and rename it into place;
    they chmod it to this first so the result is readable like any other file the user writes.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
