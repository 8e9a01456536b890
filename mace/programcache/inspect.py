"""`mace inspect FILE`: identify a file (ours, Xiaomi legacy, Xiaomi protobuf+CRC, not a program
cache) and list everything in it, as a dict (the CLI renders it: mace.cli.render)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from mace.programcache import blobkind, xiaomi
from mace.programcache.errors import XIAOMI_FORMAT, Finding, ProgramCacheError
from mace.programcache.format import MAGIC, decode


def iso(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"@{ns}ns"


def split_key(key: str) -> tuple[str, str, str]:
    """(program, build options, source hash) of our keys; Xiaomi keys are 'name opts...'."""
    parts = key.split("|")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    name, _, opts = key.partition(" ")
    return name, opts, ""


def inspect_file(path: str | Path) -> dict:
    """Raises OSError (FileNotFoundError...) when the file cannot be read."""
    from mace.programcache.trust import location_trust
    path = Path(path)
    from mace.programcache.atomic import read_cache
    info = inspect_bytes(read_cache(path), str(path))
    loc = location_trust(path)
    info["trust"] = {"location": "trusted" if loc.trusted else "untrusted", "reason": loc.reason}
    return info


def inspect_bytes(buf: bytes, name: str = "<bytes>") -> dict:
    info: dict = {"path": name, "size": len(buf), "format": "unknown", "header": None,
                  "sections": [], "programs": [], "tuning": [], "quarantine": [], "caps": [], "build_failures": [],
                  "xiaomi": None, "findings": [], "trust": None}
    if buf[:8] == MAGIC:
        _ours(buf, name, info)
        return info
    found = xiaomi.sniff(buf, name)
    if found is None:
        from mace.programcache.format import magic_message
        info["findings"].append(Finding("MAGIC_MISMATCH", magic_message(
            name, "empty file" if not buf else "not ours, nor a Xiaomi MACE file"),
            severity="error").to_dict())
        return info
    info["format"] = found.format
    info["xiaomi"] = _xiaomi(found)
    info["findings"].append(Finding(XIAOMI_FORMAT, (
        f"{name}: Xiaomi MACE format, read-only: its binaries are not loaded (no device "
        f"fingerprint)"), severity="info").to_dict())
    if found.crc_ok is False:
        info["findings"].append(Finding(XIAOMI_FORMAT, f"CRC32 value of {name} is invalid: the "
                                        f"file is damaged", severity="error").to_dict())
    return info


def _ours(buf: bytes, name: str, info: dict) -> None:
    info["format"] = "mace"
    try:
        dec = decode(buf, name)
    except ProgramCacheError as exc:
        info["findings"].append(exc.finding("error").to_dict())
        return
    data = dec.data
    info["header"] = dec.header.to_dict()
    info["findings"] += [f.to_dict() for f in dec.findings]
    sigs = {}
    if data.signatures:
        from mace.programcache import signing
        sigs = signing.check_sections(data, signing.load_trusted_keys())
    for fp_id, fp in sorted(data.sections.items()):
        mine = [e for (f, _), e in data.programs.items() if f == fp_id]
        s = sigs.get(fp_id)
        info["sections"].append({
            "id": fp_id, "short": fp.short(), "fields": fp.to_dict(), "programs": len(mine),
            "program_bytes": sum(len(e.blob) for e in mine),
            "tuning": sum(1 for (f, _) in data.tuning if f == fp_id),
            "quarantined": sum(1 for (f, _) in data.quarantine if f == fp_id),
            "signature": s.state() if s is not None else "unsigned",
            "signed_by": list(s.signed_by) if s is not None else [],
            "signature_notes": list(s.notes) if s is not None else [],
            "signatures": [{"key_id": g.key_id, "signed": iso(g.signed_ns)}
                           for (f, _), g in sorted(data.signatures.items()) if f == fp_id]})
    for (fp_id, key), e in sorted(data.programs.items()):
        program, options, source_hash = split_key(key)
        info["programs"].append({
            "device": fp_id, "key": key, "program": program, "build_options": options,
            "source_hash": source_hash, "size": len(e.blob), "sha256": e.sha256.hex(),
            "checksum": "ok" if e.blob_ok() else "bad", "kind": blobkind.classify(e.blob),
            "created": iso(e.created_ns), "last_used": iso(e.last_used_ns), "hits": e.hit_count,
            "meta": e.meta})
    info["tuning"] = [{"device": f, "key": k, "updated": iso(t.updated_ns), "record": t.record}
                      for (f, k), t in sorted(data.tuning.items())]
    info["quarantine"] = [{"device": f, "key": k, "reason": q.reason, "time": iso(q.time_ns),
                           "sha256": q.sha256_hex} for (f, k), q in sorted(data.quarantine.items())]
    info["caps"] = [{"device": f, "updated": iso(t.updated_ns), "record": t.record}
                    for (f, _), t in sorted(data.caps.items())]
    info["build_failures"] = [{"device": f, "key": k, "stage": t.record.get("stage", ""),
                               "driver": t.record.get("driver", ""), "log": t.record.get("log", ""),
                               "time": iso(t.updated_ns)}
                              for (f, k), t in sorted(data.build_failures.items())]


def _xiaomi(found: xiaomi.XiaomiFile) -> dict:
    programs = []
    for key, blob in sorted(found.programs.items()):
        program, options, _ = split_key(key)
        programs.append({"key": key, "program": program, "build_options": options,
                         "size": len(blob), "kind": blobkind.classify(blob)})
    return {"format": found.format, "crc_ok": found.crc_ok, "entries": len(found.entries),
            "platform_info": found.platform_info, "device_name": found.device_name,
            "program_hashes": len(found.program_hashes), "programs": programs,
            "tuned_parameters": {k: v for k, v in sorted(found.uint32s.items())}}


def damaged(info: dict) -> bool:
    """True when `mace inspect` should exit 1: an error, a damaged record or a bad checksum."""
    from mace.programcache.errors import DAMAGED_ENTRY
    return (any(f["severity"] == "error" or f["code"] == DAMAGED_ENTRY for f in info["findings"])
            or any(p["checksum"] != "ok" for p in info["programs"])
            or bool(info["xiaomi"] and info["xiaomi"]["crc_ok"] is False))
