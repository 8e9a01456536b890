"""What a cold start tells a progress display: programs being compiled, binaries being saved.

The runtime prints nothing; a caller that shows progress (the CLI's one line on a terminal)
subscribes with `listening(fn)`, and `fn(event, info)` is called with:
- "compile": a program is compiled from source (info: device, file, name, count so far);
- "built": the engine's programs are ready (info: device, file, compiled, seconds);
- "saving": the process waits at exit for binaries still being saved (info: files);
- "saved": that wait ended (info: files, complete: False when MACE_HARVEST_EXIT_SECONDS ran out).
No pyopencl import here: the CLI subscribes before it knows whether a device is used.
"""
from __future__ import annotations

import contextlib
import logging

log = logging.getLogger("mace.opencl")

_LISTENERS: list = []


def emit(event: str, **info) -> None:
    for fn in list(_LISTENERS):
        try:
            fn(event, info)
        except Exception:  # noqa: BLE001 - a display must never break a build
            log.debug("progress listener failed on %s", event, exc_info=True)


@contextlib.contextmanager
def listening(fn):
    """Call `fn(event, info)` for every event inside the block."""
    _LISTENERS.append(fn)
    try:
        yield fn
    finally:
        _LISTENERS.remove(fn)


def subscribe(fn) -> None:
    """Call `fn` for the rest of the process (the CLI: until its exit)."""
    _LISTENERS.append(fn)
