"""Progress bars that read like a person's, shared by training loops and demos."""

from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(*, steps: int | None = None, seconds: float | None = None, desc: str | None = None):
    """A tqdm bar (on stderr) that reads like a person's: ``37/60 s`` for a time budget (advance it by seconds),
    ``120/500 steps`` for a step count; the postfix (``set_postfix_str``) follows after a comma."""
    from tqdm import tqdm

    prefix = "{desc}: " if desc else ""

    if steps is not None:
        return tqdm(total=steps, unit="step", dynamic_ncols=True, leave=False, desc=desc,
                    bar_format=prefix + "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps "
                               "[{elapsed}<{remaining}{postfix}]")
    total = float(seconds)
    width = 0 if total == int(total) else 1
    n_total = "{n:." + str(width) + "f}/{total:." + str(width) + "f}"
    return tqdm(total=total, dynamic_ncols=True, leave=False, desc=desc,
                bar_format=prefix + "{percentage:3.0f}%|{bar}| " + n_total + " s{postfix}")
