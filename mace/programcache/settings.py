"""The program cache's environment knobs (declared in `mace.settings.KNOBS`), read at call time."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from mace import settings as _settings
from mace.settings import parse_size  # noqa: F401  (the cache's sizes are parsed there)

log = logging.getLogger("mace.programcache")

FILE_NAME = "mace-cl-compiled-program.bin"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
LOCK_TIMEOUT_S = 60.0          # a save waits this long for another process's save
TOUCH_WRITE_INTERVAL_NS = 3600 * 10**9   # hits alone rewrite the file at most once an hour

def max_bytes() -> int:
    """MACE_PROGRAM_CACHE_MAX_BYTES, default 256 MiB; a bad value is a warning and the default."""
    raw = _settings.get("MACE_PROGRAM_CACHE_MAX_BYTES")
    if raw is None:
        return DEFAULT_MAX_BYTES
    try:
        value = parse_size(raw)
        if value <= 0:
            raise ValueError("must be positive")
        return value
    except ValueError as exc:
        log.warning("MACE_PROGRAM_CACHE_MAX_BYTES=%r is not a size (%s): using %d bytes",
                    raw, exc, DEFAULT_MAX_BYTES)
        return DEFAULT_MAX_BYTES


def read_limit() -> int:
    """The most bytes a cache file may hold to be read at all: four times the cap, so an
    oversized file can still be inspected and pruned, while a huge one is refused unread."""
    return 4 * max_bytes() + (1 << 20)


def default_cache_path() -> Path:
    """$MACE_PROGRAM_PATH, else <user cache dir>/mace/mace-cl-compiled-program.bin."""
    raw = _settings.get("MACE_PROGRAM_PATH")
    if raw:
        return Path(os.path.expanduser(raw))
    import platformdirs
    return Path(platformdirs.user_cache_dir("mace")) / FILE_NAME
