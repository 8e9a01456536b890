"""Where the sections of a program file came from, for deploys to boards that may be hostile.

A board is not trusted with the host's binaries, nor the host with a board's: a pulled file
may carry any section, including one with the host's own fingerprint. So

- only the device's own section (the fingerprint its run reported) is taken from a pulled file,
  and every binary and tuning record in it is marked with its origin (`meta["origin"]`, not
  covered by signatures); the program cache never hands such a binary to a driver without a
  valid signature from a trusted key, even in a private file;
- a board is sent only the sections that came from it (origin marks removed: they are its own
  binaries), never the host's or another board's; on a first deploy, none.
"""
from __future__ import annotations

import dataclasses
import time

from mace.programcache.decision import ORIGIN
from mace.programcache.format import CacheData, TuningEntry


def origin(name: str, address: str, username: str | None) -> dict:
    """The origin mark of what comes back from device `name` of device.yml."""
    return {"device": name, "address": f"{username}@{address}" if username else address,
            "pulled": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _same_device(mark, org: dict) -> bool:
    return isinstance(mark, dict) and mark.get("device") == org["device"] \
        and mark.get("address") == org["address"]


def take_section(pulled: CacheData, fp_id: str, org: dict) -> CacheData:
    """Section `fp_id` of a pulled file alone, every binary and tuning record marked with
    `org`. Everything else in the file is dropped."""
    out = CacheData()
    if fp_id not in pulled.sections:
        return out
    out.sections[fp_id] = pulled.sections[fp_id]
    for k, e in pulled.programs.items():
        if k[0] == fp_id:
            out.programs[k] = dataclasses.replace(e, meta={**e.meta, ORIGIN: dict(org)})
    for k, t in pulled.tuning.items():
        if k[0] == fp_id:
            out.tuning[k] = TuningEntry(t.fp_id, t.key, {**t.record, ORIGIN: dict(org)}, t.updated_ns)
    for table in ("quarantine", "caps", "build_failures", "signatures"):
        src, dst = getattr(pulled, table), getattr(out, table)
        dst.update({k: v for k, v in src.items() if k[0] == fp_id})
    return out


def for_device(local: CacheData, org: dict) -> CacheData:
    """What to send to the device `org` names: the sections whose binaries came from it, with
    their origin marks removed (entries of other origins left out)."""
    out = CacheData()
    mine = {f for (f, _), e in local.programs.items() if _same_device(e.meta.get(ORIGIN), org)}
    mine |= {f for (f, _), t in local.tuning.items() if _same_device(t.record.get(ORIGIN), org)}
    for fp_id in mine:
        out.sections[fp_id] = local.sections[fp_id]
    for k, e in local.programs.items():
        if k[0] in mine and _same_device(e.meta.get(ORIGIN), org):
            out.programs[k] = dataclasses.replace(e, meta={m: v for m, v in e.meta.items()
                                                           if m != ORIGIN})
    for k, t in local.tuning.items():
        if k[0] in mine and _same_device(t.record.get(ORIGIN), org):
            out.tuning[k] = TuningEntry(t.fp_id, t.key, {m: v for m, v in t.record.items()
                                                         if m != ORIGIN}, t.updated_ns)
    for table in ("quarantine", "caps", "build_failures", "signatures"):
        src, dst = getattr(local, table), getattr(out, table)
        dst.update({k: v for k, v in src.items() if k[0] in mine})
    return out


__all__ = ["origin", "take_section", "for_device"]
