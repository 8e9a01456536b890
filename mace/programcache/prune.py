"""The size cap: least-recently-used programs go first (the MACE_OUT_OF_RESOURCES case)."""
from __future__ import annotations

from mace.programcache.errors import CacheOutOfResources, Finding
from mace.programcache.format import CacheData, ProgramEntry, encoded_size, program_record_size


def prune_lru(data: CacheData, max_bytes: int, writer: str | None = None) -> list[ProgramEntry]:
    """Drop least-recently-used programs (any device) until the file fits `max_bytes`.
    Returns the dropped entries."""
    size = encoded_size(data, writer)
    dropped: list[ProgramEntry] = []
    if size <= max_bytes:
        return dropped
    for k, e in sorted(data.programs.items(), key=lambda kv: (kv[1].last_used_ns,
                                                              kv[1].created_ns, kv[0])):
        if size <= max_bytes:
            break
        del data.programs[k]
        size -= program_record_size(e)
        dropped.append(e)
    used = {f for f, _ in (*data.programs, *data.tuning, *data.quarantine)}
    for fp_id in [f for f in data.sections if f not in used]:
        del data.sections[fp_id]                 # a section left empty (e.g. an old driver)
    return dropped


def out_of_resources(name: str, detail: str) -> Finding:
    return CacheOutOfResources(
        f"MACE_OUT_OF_RESOURCES: {detail} in {name}: run `mace cache prune {name} --max-bytes N`, "
        f"split the model, or raise MACE_PROGRAM_CACHE_MAX_BYTES").finding("warning")
