"""Harvesting binaries after the first result, off its path.

Asking PoCL for a program's binary compiles the generic work-group function of each of its
kernels: seconds per program, more than the build and the first run together. So the engine
returns its first result at once and a background thread harvests program by program, saving
the program file after each (lock, merge, atomic replace): a process killed at any moment
leaves a valid file holding the programs harvested so far, and the next start compiles only
the rest. When the harvest ends the file holds what a synchronous harvest would have written.

Consistency within the process: opening a program file (an engine, a tool) waits for the
harvests writing to it (`wait`, hooked into ProgramCache.open), `Engine.save_programs()` and `close()` wait for their own,
and at interpreter exit the harvests left get MACE_HARVEST_EXIT_SECONDS (default 60) to end;
programs not harvested by then are compiled again by the next start.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from pathlib import Path

from mace.programcache import store

log = logging.getLogger("mace.opencl")

DEFAULT_EXIT_SECONDS = 60.0
_LOCK = threading.Lock()
_LIVE: list["Harvest"] = []


class Harvest:
    """One engine's background harvest: `builder.harvest` one program at a time, then save."""

    def __init__(self, builder, cache, after=None):
        self.builder, self.cache, self.after = builder, cache, after
        self.path = _resolved(cache.path)
        self.done = threading.Event()
        self.harvested = 0
        self._thread = threading.Thread(target=self._run, name="mace-harvest", daemon=True)
        with _LOCK:
            _LIVE.append(self)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            self.cache.save()    # what init learnt (device capabilities, failures) first
            self.harvested = self.builder.harvest(each=lambda _key: self.cache.save())
            self.cache.save()
            if self.after is not None:   # e.g. contribute the section to a program store
                self.after()
            log.debug("harvested %d binaries into %s in %.2f s", self.harvested, self.cache.name,
                      time.perf_counter() - t0)
        except Exception:  # noqa: BLE001 - a background thread must not die loudly; the file stays valid
            log.warning("harvesting binaries into %s failed: later starts compile them again",
                        self.cache.name, exc_info=True)
        finally:
            self.done.set()
            with _LOCK:
                if self in _LIVE:
                    _LIVE.remove(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the harvest to end; False when `timeout` ran out first."""
        return self.done.wait(timeout)


def _resolved(path) -> Path | None:
    try:
        return Path(path).resolve() if path is not None else None
    except OSError:
        return Path(path)


def live() -> list[Harvest]:
    with _LOCK:
        return list(_LIVE)


def wait(path=None, timeout: float | None = None) -> bool:
    """Wait for the harvests writing to `path` (None: every one); False if `timeout` ran out."""
    if not live():
        return True
    want = _resolved(path) if path is not None else None
    end = None if timeout is None else time.monotonic() + timeout
    for h in live():
        if want is not None and h.path != want:
            continue
        left = None if end is None else max(0.0, end - time.monotonic())
        if not h.wait(left):
            return False
    return True


def exit_seconds() -> float:
    from mace import settings
    value = settings.get("MACE_HARVEST_EXIT_SECONDS")
    return float(value) if value is not None else DEFAULT_EXIT_SECONDS


store.BEFORE_OPEN.append(lambda path: wait(path))


def _forget_in_child() -> None:
    """A forked child has none of the parent's threads: nothing of theirs to wait for."""
    global _LOCK
    _LOCK = threading.Lock()
    _LIVE.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


@atexit.register
def finish() -> None:
    """At exit (atexit, or the CLI before its os._exit): let the harvests left end, within
    MACE_HARVEST_EXIT_SECONDS."""
    left = live()
    if not left:
        return
    bound = exit_seconds()
    from mace.runtime.opencl import events
    events.emit("saving", files=sorted({h.cache.name for h in left}))
    done = wait(timeout=bound)
    events.emit("saved", files=sorted({h.cache.name for h in left}), complete=done)
    if not done:
        names = sorted({h.cache.name for h in live()})
        log.warning("stopped waiting for compiled programs after %.0f s (MACE_HARVEST_EXIT_SECONDS): %s "
                    "holds those saved so far; the next start compiles the rest", bound, ", ".join(names))
