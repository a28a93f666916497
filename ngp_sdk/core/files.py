"""Small file helpers shared by the writers (images, snapshots)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["default_file_mode", "write_text_atomic"]


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 minus the process umask).

    Atomic writers create their temporary file with ``tempfile.mkstemp`` (mode 0o600) and rename it into place;
    they chmod it to this first so the result is readable like any other file the user writes.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file in the same folder, renamed into place.

    The folder is created; a failed write leaves no temporary file and the old ``path`` untouched.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p
