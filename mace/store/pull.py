"""Pulling one device's section from a store into a local program file.

A local copy of the store's index and of this device's section is kept in
<user cache dir>/mace/store/<url key>/ (or MACE_PROGRAM_STORE_COPY): the index is read again
only when its version (ETag, else size and time) changed, the section only when the index
names other bytes (content hash), and the program file is merged into only when it has not
taken these bytes yet. Everything read is checked again (signatures, hashes) before use.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from mace import fileio
from mace.store import index as _index
from mace.store import sections as _sections
from mace.store.backend import MAX_INDEX_BYTES, Store, url_key

log = logging.getLogger("mace.store")
STATE_FILE = "state.json"
MAX_SECTION_BYTES = 1 << 30


@dataclass
class PullResult:
    """What one pull did, for reports and --json."""

    store: str
    fp_id: str
    status: str = "miss"          # fetched | reused | miss | timeout | failed
    downloads: list[str] = field(default_factory=list)       # relative paths read from the store
    merged: bool = False
    programs: int = 0
    tuning: int = 0
    seconds: float = 0.0
    error: str = ""
    copy: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def copy_dir(url: str) -> Path:
    """Where the local copy of store `url` lives."""
    from mace import settings
    root = settings.get("MACE_PROGRAM_STORE_COPY")
    if root:
        base = Path(os.path.expanduser(root))
    else:
        import platformdirs
        base = Path(platformdirs.user_cache_dir("mace")) / "store"
    return base / url_key(url)


def _state(d: Path) -> dict:
    raw = fileio.read_or_none(d / STATE_FILE, 1 << 20)
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        doc = {}
    return doc if isinstance(doc, dict) else {}


def _save_state(d: Path, state: dict) -> None:
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    fileio.write_atomic(d / STATE_FILE, json.dumps(state, sort_keys=True))


def read_index(store: Store, d: Path, result: PullResult, state: dict) -> _index.Index:
    """The store's index, checked; from the local copy when the store's version is unchanged."""
    version = store.version(_index.INDEX_FILE)
    if version is None:
        from mace.store.errors import StoreUnavailable
        raise StoreUnavailable(f"program store {store.url}: no {_index.INDEX_FILE} there: publish to "
                               f"it first (`mace cache publish FILE {store.url} --key KEY`)")
    local = d / _index.INDEX_FILE
    blob = fileio.read_or_none(local, MAX_INDEX_BYTES) if state.get("index_version") == version else None
    if blob is None:
        blob = store.read(_index.INDEX_FILE, MAX_INDEX_BYTES)
        result.downloads.append(_index.INDEX_FILE)
        idx = _index.decode(blob, f"{store.url}/{_index.INDEX_FILE}")
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        fileio.write_atomic(local, blob)
        state["index_version"] = version
        return idx
    return _index.decode(blob, f"{store.url}/{_index.INDEX_FILE} (local copy {local})")


def fetch(url: str, fp_id: str, timeout: float = 30.0, store: Store | None = None) -> tuple[PullResult, Path | None]:
    """Bring the local copy of device `fp_id`'s section up to date. Returns the result and the
    path of the checked section copy (None on a miss). Raises StoreError subclasses."""
    t0 = time.perf_counter()
    result = PullResult(str(url), fp_id)
    store = store or Store(url, timeout)
    d = copy_dir(url)
    result.copy = str(d)
    state = _state(d)
    idx = read_index(store, d, result, state)
    ent = idx.sections.get(fp_id)
    if not isinstance(ent, dict):
        _save_state(d, state)
        result.seconds = time.perf_counter() - t0
        return result, None
    local = d / f"{fp_id}.bin"
    where = f"{store.url}/{ent.get('path')}"
    blob = fileio.read_or_none(local, MAX_SECTION_BYTES)
    if blob is not None and state.get("sections", {}).get(fp_id) == ent.get("sha256"):
        data = _sections.check(blob, ent, fp_id, f"{where} (local copy {local})")
        result.status = "reused"
    else:
        blob = store.read(str(ent.get("path")), MAX_SECTION_BYTES)
        result.downloads.append(str(ent.get("path")))
        data = _sections.check(blob, ent, fp_id, where)
        fileio.write_atomic(local, blob)
        state.setdefault("sections", {})[fp_id] = ent.get("sha256")
        result.status = "fetched"
    result.programs, result.tuning = len(data.programs), len(data.tuning)
    _save_state(d, state)
    result.seconds = time.perf_counter() - t0
    return result, local


def pull_into(url: str, fp_id: str, program: str | os.PathLike, timeout: float = 30.0) -> PullResult:
    """Fetch device `fp_id`'s section and merge it into program file `program` (once per
    section version). Raises StoreError subclasses, OSError or ProgramCacheError."""
    from mace.programcache.maintenance import merge_files
    result, local = fetch(url, fp_id, timeout)
    if local is None:
        return result
    d = Path(result.copy)
    state = _state(d)
    sha = state.get("sections", {}).get(fp_id)
    key = str(Path(program).resolve())
    if state.get("merged", {}).get(key) != sha or not Path(program).exists():
        merge_files(program, [program, local], missing_ok=True, sections=[fp_id])
        state.setdefault("merged", {})[key] = sha
        _save_state(d, state)
        result.merged = True
    return result


__all__ = ["fetch", "pull_into", "PullResult", "copy_dir"]
