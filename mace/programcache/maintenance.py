"""`mace cache verify|merge|prune`: whole-file checks and rewrites (always under the file lock,
always by atomic replace)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mace import fileio
from mace.programcache import atomic, journal, settings, xiaomi
from mace.programcache.errors import (
    DAMAGED_ENTRY,
    MACE_OUT_OF_RESOURCES,
    QUARANTINED,
    SIGNATURE_INVALID,
    UNTRUSTED,
    XIAOMI_FORMAT,
    Finding,
    MagicMismatch,
    ProgramCacheError,
    XiaomiFormatError,
)
from mace.programcache.fingerprint import DeviceFingerprint
from mace.programcache.format import MAGIC, CacheData, decode, encode, encoded_size
from mace.programcache.merge import add_section, merge_into
from mace.programcache.merge import merged as merge_data
from mace.programcache.prune import prune_lru
from mace.programcache.report import human_bytes


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
    findings += trust_findings(path, dec.data)
    findings += journal.crash_findings(path)
    cap = max_bytes if max_bytes is not None else settings.max_bytes()
    if len(buf) > cap:
        findings.append(Finding(MACE_OUT_OF_RESOURCES, f"MACE_OUT_OF_RESOURCES: {name} is "
                                f"{human_bytes(len(buf))}, over the cap of {human_bytes(cap)}: run "
                                f"`mace cache prune {name} --max-bytes N` or raise "
                                f"MACE_PROGRAM_CACHE_MAX_BYTES", severity="warning"))
    return findings


def trust_findings(path: Path, data: CacheData) -> list[Finding]:
    """The signature state of every section, and whether the location alone is trusted."""
    from mace.programcache import signing, trust
    loc = trust.location_trust(path)
    sigs = signing.check_sections(data, signing.load_trusted_keys()) if data.signatures else {}
    out = []
    for fp_id in sorted(data.sections):
        s = sigs.get(fp_id)
        state = s.state() if s is not None else "unsigned"
        if state == "signed":
            out.append(Finding("SIGNATURE", f"{path}: section {fp_id} signed by trusted key(s) "
                               f"{', '.join(s.signed_by)}", severity="info"))
            loose = sorted(k for (f, k), e in data.programs.items() if f == fp_id
                           and f"{k}:{e.sha256.hex()}" not in s.covered["programs"])
            if loose:
                out.append(Finding(SIGNATURE_INVALID, (
                    f"{path}: {len(loose)} program(s) of section {fp_id} are not covered by its "
                    f"signature (added or altered after signing, e.g. {loose[0]})"
                    + ("" if loc.trusted else ": they would be rebuilt from source")),
                    severity="info" if loc.trusted else "error", key=loose[0]))
        elif state == "bad-signature":
            out.append(Finding(SIGNATURE_INVALID, f"{path}: section {fp_id}: " + "; ".join(s.notes),
                               severity="error"))
        elif not loc.trusted:
            why = "; ".join(s.notes) if s is not None and s.notes else "unsigned"
            out.append(Finding(UNTRUSTED, f"{path}: section {fp_id} is {why}, and the file is not "
                               f"trusted by location ({loc.reason}): its binaries would be rebuilt "
                               f"from source", severity="warning"))
        else:
            why = "; ".join(s.notes) if s is not None and s.notes else "unsigned"
            out.append(Finding("SIGNATURE", f"{path}: section {fp_id} is {why}; the file is trusted "
                               f"by location", severity="info"))
    return out


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


def load(path: str | Path, missing_ok: bool = False) -> tuple[CacheData, list[Finding]]:
    """A mace program cache's content (damaged records dropped, with findings). A missing or
    empty file is an empty cache when `missing_ok`, else FileNotFoundError / MagicMismatch.
    Raises OSError, or ProgramCacheError
    for a file that is not ours (a Xiaomi file is a XiaomiFormatError: it has no fingerprints)."""
    path = Path(path)
    try:
        buf = atomic.read_cache(path)
    except FileNotFoundError:
        if missing_ok:
            return CacheData(), []
        raise
    if not buf and missing_ok:
        return CacheData(), []
    if buf[:8] != MAGIC and xiaomi.sniff(buf, str(path)) is not None:
        raise XiaomiFormatError(f"{path} is a Xiaomi MACE program cache: it has no device "
                                f"fingerprint, so it cannot be merged or pruned")
    dec = decode(buf, str(path))
    return dec.data, dec.findings


def check_output(path: str | Path) -> Path:
    """The file a merge may replace: absent, empty, or one of our caches (our magic). Anything else
    (a model, a mace.yml, a Xiaomi file) raises MagicMismatch and is left alone. Returns the
    path to write (a symlink's target)."""
    target = fileio.write_target(path)
    try:
        with fileio.open_regular(target) as f:
            head = f.read(len(MAGIC))
    except FileNotFoundError:
        return target
    if head and head != MAGIC:
        raise MagicMismatch(f"{path} exists and is not a mace program cache: not overwritten: "
                            f"give an output path that is absent or a program cache")
    return target


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
                        tuning=len(data.tuning), bytes=len(blob), dropped=[e.key for e in dropped])


def _mark_unvouched(path: Path, data: CacheData, out) -> list[Finding]:
    """Never launder an untrusted file's binaries: those of an input in an untrusted location
    that no trusted signature covers keep an origin mark in the output (signing.py)."""
    from mace.programcache import signing, trust
    loc = trust.location_trust(path)
    n = signing.mark_unvouched(data, loc, str(path))
    if not n:
        return []
    return [Finding(UNTRUSTED, f"{path} is not trusted ({loc.reason}): its {n} unsigned binaries "
                    f"keep an origin mark in {out} and are loaded only with a trusted signature "
                    f"(`mace cache sign`)", severity="info")]


def merge_files(out: str | Path, inputs: Iterable[str | Path], *, missing_ok: bool = False,
                sections: Iterable[str] | None = None, add_sections: Iterable[DeviceFingerprint] = (),
                max_bytes: int | None = None) -> Result:
    """Write the union (mace.programcache.merge) of the cache files `inputs`, which may include
    `out`, to `out`. `out`'s lock is taken before any input is read, so a program a concurrent
    save writes is never lost; `out` is replaced only when absent or one of our caches.
    `sections` limits the second and later inputs to those fingerprint ids; `missing_ok` reads
    a missing input as empty; `add_sections` are device sections the result always names.
    Raises OSError (FileRefused) or ProgramCacheError."""
    inputs = [Path(p) for p in inputs]
    target = check_output(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    result = Result(str(out))
    with atomic.lock_for(target, settings.LOCK_TIMEOUT_S):
        atomic.remove_stale_temps(target)
        check_output(out)                          # it may have changed while we waited
        data = CacheData()
        counts = {}
        for i, p in enumerate(inputs):
            d, found = load(p, missing_ok)
            result.findings += found
            result.findings += _mark_unvouched(p, d, out)
            counts[str(p)] = len(d.programs)
            merge_into(data, d, sections if i else None)
        for fp in add_sections:
            add_section(data, fp)
        _write(target, data, result, max_bytes if max_bytes is not None else settings.max_bytes())
    result.stats["inputs"] = counts
    return result


def merge(a: str | Path, b: str | Path, out: str | Path, max_bytes: int | None = None) -> Result:
    """`mace cache merge A B -o OUT`: the union of caches `a` and `b` into `out` (which may be
    `a` or `b`; anything else there that is not a program cache is refused)."""
    return merge_files(out, [a, b], max_bytes=max_bytes)


def prune(path: str | Path, max_bytes: int) -> Result:
    """Drop least-recently-used programs until the file fits `max_bytes` (rewrites only when
    something is dropped). Raises OSError or ProgramCacheError."""
    path = Path(path)
    with atomic.lock_for(fileio.write_target(path), settings.LOCK_TIMEOUT_S):   # a link's target's lock
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


__all__ = ["verify", "merge", "merge_files", "check_output", "prune", "merge_data", "load", "Result"]
