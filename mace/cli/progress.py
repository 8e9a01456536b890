"""Progress on stderr: rich bars (`Bars`) and a spinner naming the current step (`Steps`) when
stderr is a terminal; off a terminal (CI logs, a pipe), plain lines (`Lines`): each phase as it
starts and, every PERIOD_S seconds while one runs, how far it got, so a long step is never
silent. `--json` turns both off only on a terminal: the lines go to stderr, never stdout.
All implement mace.tools.progress.NoProgress's interface, which the tools call."""
from __future__ import annotations

import sys
import threading
import time

from mace.tools.progress import NoProgress

PERIOD_S = 15.0


class Lines(NoProgress):
    """Plain progress lines on stderr: each phase when it starts, then its state every PERIOD_S."""

    def __init__(self, period: float | None = None):
        self.period = PERIOD_S if period is None else period
        self.tasks: dict = {}
        self.current = None
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    def _say(self, text: str) -> None:
        print(f"mace progress [{time.monotonic() - self.t0:.0f} s]: {text}", file=sys.stderr, flush=True)

    def __enter__(self):
        self._thread = threading.Thread(target=self._beat, name="mace-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.period):
            with self._lock:
                state = self._state()
            if state:
                self._say(state + " (still running)")

    def _state(self) -> str | None:
        if self.current is None:
            return None
        desc, done, total, item = self.tasks[self.current]
        count = f" {done}/{total}" if total else ""
        return f"{desc}{count}" + (f", {item}" if item else "")

    def add(self, description: str, total: int):
        with self._lock:
            key = len(self.tasks)
            self.tasks[key] = [description, 0, total, ""]
            self.current = key
        self._say(f"{description} (0/{total})" if total else description)
        return key

    def advance(self, task, n: int = 1, item: str = "") -> None:
        if task is None or task not in self.tasks:
            return
        with self._lock:
            self.tasks[task][1] += n
            self.tasks[task][3] = item
            self.current = task

    def step(self, text: str) -> None:
        self.add(text, 0)


def for_stderr(enabled: bool, transient: bool = True, steps: bool = False) -> NoProgress:
    """Rich bars (or a spinner, `steps`) on a terminal, plain lines off one; nothing when
    `enabled` is false on a terminal (--json)."""
    if sys.stderr.isatty():
        if not enabled:
            return NoProgress()
        return Steps(True) if steps else Bars(True, transient)
    return Lines()


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


class BuildLine:
    """One line on a terminal (stderr) while a cold start compiles OpenCL programs, and while
    the process waits at exit for their binaries to be saved; erased when done. Log records
    erase it first so they never share its line."""

    def __init__(self, stream=None, width: int | None = None):
        self.stream = stream or sys.stderr
        self.width = width        # None: the terminal's
        self.shown = False
        self._lock = threading.Lock()

    def __call__(self, event: str, info: dict) -> None:
        if event == "compile":
            where = f"later starts load them from {info['file']}" if info.get("file") else "no program file"
            why = "first run" if info.get("first", True) else "not in the program file yet"
            self._show(f"compiling OpenCL programs: {info['count']} ({info['name']}) for {info['device']} "
                       f"({why}; {where})")
        elif event in ("built", "saved"):
            self._clear()
        elif event == "saving":
            files = ", ".join(info["files"])
            self._show(f"saving the compiled programs to {files} (later starts load them from there)")

    def _show(self, text: str) -> None:
        import shutil
        width = self.width or max(20, shutil.get_terminal_size().columns - 1)
        with self._lock:
            self.stream.write("\r\x1b[2K" + text[:width])
            self.stream.flush()
            self.shown = True

    def _clear(self) -> None:
        with self._lock:
            if self.shown:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
                self.shown = False

    def filter(self, record) -> bool:
        """A logging filter: erase the line before a record is written."""
        self._clear()
        return True


def show_builds(enabled: bool) -> BuildLine | None:
    """Subscribe a BuildLine to the runtime's build events when stderr is a terminal and
    `enabled` (not --json, not -q); mace's log handlers erase it before writing."""
    if not enabled or not sys.stderr.isatty():
        return None
    import logging

    from mace.runtime.opencl import events
    line = BuildLine()
    events.subscribe(line)
    for h in logging.getLogger("mace").handlers:
        h.addFilter(line)
    return line
