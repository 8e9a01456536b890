"""One device's section of a program cache as a file of its own, and the checks a pulled
section passes before it joins a local program file."""
from __future__ import annotations

import hashlib

from mace.programcache.format import CacheData, decode, encode
from mace.programcache.merge import merge_into
from mace.store.errors import StoreRefused


def split(data: CacheData, fp_id: str) -> CacheData:
    """A new cache holding only section `fp_id` of `data` (records and signatures)."""
    return merge_into(CacheData(), data, sections=[fp_id])


def normalized(data: CacheData, fp_id: str) -> CacheData:
    """Section `fp_id` as published: use counters reset and the signatures' times set from the
    content, so the same programs and records always give the same bytes (one content address)."""
    import dataclasses
    out = split(data, fp_id)
    for k, e in out.programs.items():
        out.programs[k] = dataclasses.replace(e, hit_count=0, last_used_ns=e.created_ns)
    stamp = max([e.created_ns for e in out.programs.values()] + [t.updated_ns for t in out.tuning.values()]
                + [0])
    for k, g in out.signatures.items():
        out.signatures[k] = dataclasses.replace(g, signed_ns=stamp)
    return out


def entry(blob: bytes, data: CacheData, fp_id: str, publisher: str, path: str) -> dict:
    """The index entry of section file `blob` (content-addressed at `path`)."""
    import time
    return {"path": path, "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob),
            "device": data.sections[fp_id].to_dict(), "short": data.sections[fp_id].short(),
            "programs": sum(1 for f, _ in data.programs if f == fp_id),
            "tuning": sum(1 for f, _ in data.tuning if f == fp_id),
            "published_ns": time.time_ns(), "publisher": publisher}


def check(blob: bytes, ent: dict, fp_id: str, where: str, trusted=None) -> CacheData:
    """The section bytes of device `fp_id` fetched from `where`, checked: their SHA-256 is the
    index's, they decode, they hold that device, and its section signature is valid by a
    trusted key. Raises StoreRefused."""
    from mace.programcache import signing
    if hashlib.sha256(blob).hexdigest() != ent.get("sha256"):
        raise StoreRefused(f"{where}: section of device {fp_id} does not match the signed index "
                           f"(SHA-256 differs: altered or truncated): refused: republish it")
    try:
        dec = decode(blob, where)
    except Exception as exc:          # noqa: BLE001 - any decoding failure is a refusal
        raise StoreRefused(f"{where}: section of device {fp_id} is not a program cache ({exc}): "
                           f"refused: republish it") from None
    data = dec.data
    if fp_id not in data.sections:
        raise StoreRefused(f"{where}: section file holds no section for device {fp_id}: refused: republish it")
    trusted = trusted if trusted is not None else signing.load_trusted_keys()
    state = signing.check_sections(data, trusted).get(fp_id)
    if state is None or not state.signed_by:
        why = "; ".join(state.notes) if state is not None and state.notes else "unsigned"
        raise StoreRefused(f"{where}: section of device {fp_id} refused ({why}): publish it signed "
                           f"by a key listed in {trusted.source}")
    return split(data, fp_id)


def to_bytes(data: CacheData) -> bytes:
    return encode(data)


__all__ = ["split", "normalized", "entry", "check", "to_bytes"]
