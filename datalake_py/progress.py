"""Progress bars for long work, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
from typing import Any


class HiddenBar:
    """Stands in for a bar off a terminal: tqdm would still be imported (about 90 ms) and would make
    a lock shared between processes for every first bar of a process."""

    def __enter__(self) -> HiddenBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        pass


def progress(**options: Any) -> Any:
    """A tqdm bar (`desc`, `total`, `unit`, ...) that leaves no line behind, on a terminal only."""
    if not sys.stderr.isatty():
        return HiddenBar()
    from tqdm.auto import tqdm

    return tqdm(leave=False, **options)
