"""Progress of long library steps, without a terminal: the tools call `add`/`advance` (bars)
and `step` (a named phase) on whatever the caller passes; the CLI passes rich bars
(mace.cli.progress), everything else gets `NoProgress`."""
from __future__ import annotations


class NoProgress:
    """The do-nothing progress sink (also the interface the CLI's bars implement)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add(self, description: str, total: int):
        return None

    def advance(self, task, n: int = 1, item: str = "") -> None:
        return None

    def step(self, text: str) -> None:
        return None


def sink(progress) -> NoProgress:
    """`progress`, or a NoProgress when it is None or a bool."""
    return NoProgress() if progress is None or isinstance(progress, bool) else progress
