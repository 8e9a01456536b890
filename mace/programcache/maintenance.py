"""`mace cache verify|merge|prune`: whole-file checks and rewrites (always under the file lock,
always by atomic replace)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mace import fileio
from mace.programcache import atomic, settings, xiaomi
from mace.programcache.errors import (
    DAMAGED_ENTRY,
    MACE_OUT_OF_RESOURCES,
    QUARANTINED,
    XIAOMI_FORMAT,
    Finding,
    ProgramCacheError,
    XiaomiFormatError,
)
from mace.programcache.format import MAGIC, CacheData, decode, encode, encoded_size
from mace.programcache.report import human_bytes
from mace.programcache.store import prune_lru


@dataclass
class Result:
    """What merge and prune did: `ok` is False when a finding is a warning or an error."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(f.severity in ("error", "warning") for f in self.findings)

    def to_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "stats": self.stats,
                "findings": [f.to_dict() for f in self.findings]}


def verify(path: str | Path, max_bytes: int | None = None) -> list[Finding]:
    """Every check there is: header, each record's CRC and framing, each blob's SHA-256, the size
    cap. An empty list means the file is intact. Raises OSError (e.g. FileNotFoundError) when
    the file cannot be read."""
    path = Path(path)
    buf = atomic.read_cache(path)
    name = str(path)
    if buf[:8] != MAGIC:
        return _verify_foreign(buf, name)
    try:
        dec = decode(buf, name)
    except ProgramCacheError as exc:
        return [exc.finding("error")]
    findings = [Finding(f.code, f.message, f.fix, "error" if f.severity == "warning" else f.severity,
                        f.key) for f in dec.findings]
    for (_, key), e in sorted(dec.data.programs.items()):
        if not e.blob_ok():
            findings.append(Finding(DAMAGED_ENTRY, f"Damaged entry in {name}: program {key} "
                                    f"(SHA-256 mismatch): it would be dropped and rebuilt",
                                    severity="error", key=key))
    if dec.data.quarantine:
        findings.append(Finding(QUARANTINED, f"{name}: {len(dec.data.quarantine)} program(s) "
                                f"quarantined (a driver refused their binaries)", severity="info"))
    cap = max_bytes if max_bytes is not None else settings.max_bytes()
    if len(buf) > cap:
        findings.append(Finding(MACE_OUT_OF_RESOURCES, f"MACE_OUT_OF_RESOURCES: {name} is "
                                f"{human_bytes(len(buf))}, over the cap of {human_bytes(cap)}: run "
                                f"`mace cache prune {name} --max-bytes N` or raise "
                                f"MACE_PROGRAM_CACHE_MAX_BYTES", severity="warning"))
    return findings


def _verify_foreign(buf: bytes, name: str) -> list[Finding]:
    found = xiaomi.sniff(buf, name)
    if found is None:
        from mace.programcache.format import magic_message
        return [Finding("MAGIC_MISMATCH", magic_message(name), severity="error")]
    kind = "legacy, no checksum" if found.format == xiaomi.LEGACY else "protobuf+CRC"
    out = [Finding(XIAOMI_FORMAT, f"{name} is a Xiaomi MACE program cache ({kind}, "
                   f"{len(found.programs)} programs): read-only here", severity="info")]
    if found.crc_ok is False:
        out.append(XiaomiFormatError(f"CRC32 value of {name} is invalid: the file is damaged")
                   .finding("error"))
    return out


def load(path: str | Path) -> tuple[CacheData, list[Finding]]:
    """A mace program cache's content (damaged records dropped, with findings). Raises OSError
    or ProgramCacheError (a Xiaomi file is a XiaomiFormatError: it has no fingerprints)."""
    path = Path(path)
    buf = atomic.read_cache(path)
    if buf[:8] != MAGIC and xiaomi.sniff(buf, str(path)) is not None:
        raise XiaomiFormatError(f"{path} is a Xiaomi MACE program cache: it has no device "
                                f"fingerprint, so it cannot be merged or pruned")
    dec = decode(buf, str(path))
    return dec.data, dec.findings


def merge_data(a: CacheData, b: CacheData) -> CacheData:
    """Union by key of two caches: all sections; for a program in both, the entry used more
    recently wins (hit counts add up when both hold the same binary); the newer tuning record
    wins; quarantines are united and drop the binaries they name."""
    out = CacheData(sections={**a.sections, **b.sections}, programs=dict(a.programs),
                    tuning=dict(a.tuning), quarantine=dict(a.quarantine), caps=dict(a.caps),
                    build_failures=dict(a.build_failures))
    for k, e in b.programs.items():
        old = out.programs.get(k)
        if old is None:
            out.programs[k] = e
            continue
        winner = e if (e.last_used_ns, e.created_ns) > (old.last_used_ns, old.created_ns) else old
        if old.sha256 == e.sha256:
            winner.hit_count = old.hit_count + e.hit_count
        out.programs[k] = winner
    for table in ("tuning", "caps", "build_failures"):
        mine = getattr(out, table)
        for k, t in getattr(b, table).items():
            if k not in mine or t.updated_ns > mine[k].updated_ns:
                mine[k] = t
    for k, q in b.quarantine.items():
        if k not in out.quarantine or q.time_ns > out.quarantine[k].time_ns:
            out.quarantine[k] = q
    for k in out.quarantine:
        out.programs.pop(k, None)
    return out


def _write(path: Path, data: CacheData, result: Result, max_bytes: int) -> None:
    dropped = prune_lru(data, max_bytes)
    if dropped:
        result.findings.append(Finding(MACE_OUT_OF_RESOURCES, (
            f"MACE_OUT_OF_RESOURCES: {path} would exceed the cap of {human_bytes(max_bytes)}: "
            f"dropped {len(dropped)} least recently used programs: split the model or raise "
            f"MACE_PROGRAM_CACHE_MAX_BYTES"), severity="warning"))
    blob = encode(data)
    fileio.write_atomic(path, blob)
    result.stats.update(programs=len(data.programs), sections=len(data.sections),
                        bytes=len(blob), dropped=[e.key for e in dropped])


def merge(a: str | Path, b: str | Path, out: str | Path, max_bytes: int | None = None) -> Result:
    """Write the union of caches `a` and `b` to `out` (which may be `a` or `b`). Raises OSError
    or ProgramCacheError for an input that is not a readable mace program cache."""
    out = Path(out)
    data_a, found_a = load(a)
    data_b, found_b = load(b)
    result = Result(str(out), findings=[*found_a, *found_b])
    merged = merge_data(data_a, data_b)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.lock_for(out, settings.LOCK_TIMEOUT_S):
        _write(out, merged, result, max_bytes if max_bytes is not None else settings.max_bytes())
    result.stats["inputs"] = {str(a): len(data_a.programs), str(b): len(data_b.programs)}
    return result


def prune(path: str | Path, max_bytes: int) -> Result:
    """Drop least-recently-used programs until the file fits `max_bytes` (rewrites only when
    something is dropped). Raises OSError or ProgramCacheError."""
    path = Path(path)
    with atomic.lock_for(path, settings.LOCK_TIMEOUT_S):
        data, found = load(path)
        result = Result(str(path), findings=found)
        before = path.stat().st_size
        result.stats.update(bytes_before=before, max_bytes=max_bytes)
        dropped = prune_lru(data, max_bytes)
        if dropped or found:
            fileio.write_atomic(path, encode(data))
        after = encoded_size(data)
        result.stats.update(bytes_after=after, programs=len(data.programs),
                            dropped=[e.key for e in dropped])
        if after > max_bytes:
            result.findings.append(Finding(MACE_OUT_OF_RESOURCES, (
                f"MACE_OUT_OF_RESOURCES: {path} is still {human_bytes(after)} with no program "
                f"left to drop (tuning records and sections remain): choose a larger --max-bytes"),
                severity="warning"))
    return result


__all__ = ["verify", "merge", "prune", "merge_data", "load", "Result"]
