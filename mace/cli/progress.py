"""Progress on the terminal: rich bars (`Bars`) and a spinner naming the current step (`Steps`)
on stderr when it is a terminal, otherwise nothing (so `--json` output and logs stay clean).
Both implement mace.tools.progress.NoProgress's interface, which the tools call."""
from __future__ import annotations

import sys

from mace.tools.progress import NoProgress


class Bars(NoProgress):
    def __init__(self, enabled: bool, transient: bool = True):
        self.enabled = bool(enabled) and sys.stderr.isatty()
        self.transient = transient
        self.p = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[item]}"), TimeElapsedColumn(),
                              console=Console(stderr=True), transient=self.transient)
            self.p.__enter__()
        return self

    def __exit__(self, *exc):
        if self.p is not None:
            self.p.__exit__(*exc)

    def add(self, description: str, total: int):
        return self.p.add_task(description, total=total, item="") if self.p is not None else None

    def advance(self, task, n: int = 1, item: str = "") -> None:
        if self.p is not None and task is not None:
            self.p.update(task, advance=n, item=item)


class Steps(NoProgress):
    """A rich spinner with the current step's name."""

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled) and sys.stderr.isatty()
        self.p = None
        self.task = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
            self.p = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                              console=Console(stderr=True), transient=True)
            self.p.__enter__()
            self.task = self.p.add_task("report", total=None)
        return self

    def __exit__(self, *exc):
        if self.p is not None:
            self.p.__exit__(*exc)

    def step(self, text: str) -> None:
        if self.p is not None:
            self.p.update(self.task, description=text)
