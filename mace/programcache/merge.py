"""The one merge policy of program caches, used by the store's save, `mace cache merge`, deploy
and build (the file-level merge is `maintenance.merge_files`).

`merge_into(base, incoming)` is a union by key over every record dictionary of `CacheData`
(sections, programs, tuning, quarantine, and any kind the format grows): a record kind without
its own rule below keeps the newer record (its `*_ns` time), so a new kind merges by key
without a change here.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from mace.programcache.format import CacheData, ProgramEntry


def _stamp(entry) -> tuple:
    """A record's times, in field order (the newest record wins a key)."""
    if dataclasses.is_dataclass(entry):
        return tuple(getattr(entry, f.name) for f in dataclasses.fields(entry)
                     if f.name.endswith("_ns"))
    return ()


def _newest(old, new):
    """Default rule: the newer record wins; a tie (or no time at all) goes to the incoming one."""
    return new if _stamp(new) >= _stamp(old) else old


def _program(old: ProgramEntry, new: ProgramEntry) -> ProgramEntry:
    """The same binary: one entry, hit counts added, last use the later. Different binaries of
    one key (one source, one device): the more recently built wins."""
    if old.sha256 == new.sha256:
        return dataclasses.replace(old, hit_count=old.hit_count + new.hit_count,
                                   last_used_ns=max(old.last_used_ns, new.last_used_ns))
    return new if new.created_ns >= old.created_ns else old


_RULES = {"programs": _program}


def record_tables(data: CacheData) -> dict[str, dict]:
    """Every record dictionary of `data` by field name (sections included)."""
    return {f.name: getattr(data, f.name) for f in dataclasses.fields(data)
            if isinstance(getattr(data, f.name), dict)}


def merge_into(base: CacheData, incoming: CacheData, sections: Iterable[str] | None = None) -> CacheData:
    """Union by key of `incoming` into `base` (modified and returned). `sections` limits what
    is taken from `incoming` to those device fingerprint ids. A quarantined key drops its
    binary whichever side it came from."""
    keep = None if sections is None else set(sections)
    for name, theirs in record_tables(incoming).items():
        mine = getattr(base, name)
        rule = _RULES.get(name, _newest)
        for key, rec in theirs.items():
            fp_id = key if name == "sections" else key[0]
            if keep is not None and fp_id not in keep:
                continue
            old = mine.get(key)
            mine[key] = rec if old is None or name == "sections" else rule(old, rec)
    for key in base.quarantine:
        base.programs.pop(key, None)
    return base


def add_section(data: CacheData, fp) -> bool:
    """Name device `fp` (a DeviceFingerprint) in `data`, the one way a section is added.
    Returns True when it was not there."""
    if data.sections.get(fp.id) == fp:
        return False
    data.sections[fp.id] = fp
    return True


def merged(*caches: CacheData) -> CacheData:
    """A new cache holding the union of `caches` (later ones win ties)."""
    out = CacheData()
    for c in caches:
        merge_into(out, c)
    return out
