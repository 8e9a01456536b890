"""The program cache's environment knobs (declared in `mace.settings.KNOBS`), read at call time."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from mace import settings as _settings

log = logging.getLogger("mace.programcache")

FILE_NAME = "mace-cl-compiled-program.bin"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
LOCK_TIMEOUT_S = 60.0          # a save waits this long for another process's save
TOUCH_WRITE_INTERVAL_NS = 3600 * 10**9   # hits alone rewrite the file at most once an hour

_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgt", start=1):
    _UNITS.update({_p: 1024**_i, _p + "i": 1024**_i, _p + "ib": 1024**_i, _p + "b": 1000**_i})


def parse_size(text: str) -> int:
    """Bytes from '268435456', '256M', '256MiB' (1024-based) or '256MB' (1000-based).
    Raises ValueError."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 268435456, 256M or 256MiB)")
    return int(m.group(1)) * _UNITS[m.group(2)]


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
