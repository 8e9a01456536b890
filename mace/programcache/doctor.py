"""`mace doctor FILE`: will this cache file serve this device (and these programs)?

Each finding has a code, its cause and its fix; `ok` is True when nothing is an error, i.e.
the engine would take binaries from this file on this device. The cache package knows no
driver: to check a model against the file, the caller passes `init_model`, a callable that
initializes the model read-only against the file's bytes (a `trust.CacheBytes`: the bytes with
the location they were read from, so they are trusted as the file is; the CLI builds an Engine).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mace.programcache import blobkind, journal, settings
from mace.programcache.errors import (
    BUILD_FAILED,
    DAMAGED_ENTRY,
    FOREIGN_DEVICE,
    MACE_OUT_OF_RESOURCES,
    MISSING,
    MISSING_PROGRAMS,
    QUARANTINED,
    UNTRUSTED,
    UNWRITABLE,
    VERSION_MISMATCH,
    Finding,
)
from mace.programcache.fingerprint import DeviceFingerprint
from mace.programcache.report import human_bytes
from mace.programcache.store import ProgramCache
from mace.programcache.trust import CacheBytes

# load findings that make the file unusable on the device
_FATAL = {"MAGIC_MISMATCH", "XIAOMI_FORMAT", FOREIGN_DEVICE, MISSING, UNWRITABLE}


@dataclass
class DoctorResult:
    path: str
    device: dict | None
    findings: list[Finding] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "device": self.device, "stats": self.stats,
                "findings": [f.to_dict() for f in self.findings]}


@dataclass
class ModelInit:
    """What initializing a model against a cache file gave: the program keys it needs, how many
    binaries came from the file or were compiled, and (key, code, message) of each binary the
    driver rejected."""
    keys: list[str]
    from_cache: int = 0
    compiled: int = 0
    rejected: list[tuple[str, str, str]] = field(default_factory=list)


def doctor(path: str | Path, device_fp: DeviceFingerprint | None = None,
           required_keys: list[str] | None = None,
           init_model: Callable[[CacheBytes], ModelInit] | None = None) -> DoctorResult:
    """Check `path` for `device_fp` (None: structure only) and, when given, that every key of
    `required_keys` (or of the model `init_model` initializes from the file's bytes) has a
    usable binary there. `init_model` may raise; a MaceError from it is the caller's to report."""
    path = Path(path)
    cache = ProgramCache.open(path, device_fp=device_fp, log_findings=False, recover=False)
    res = DoctorResult(str(path), device_fp.to_dict() if device_fp else None)
    if init_model is not None:
        required_keys = _check_model(path, init_model, res)
    if device_fp is not None:
        res.device["id"] = device_fp.id
    for f in cache.report.findings:
        severity = f.severity
        if f.code in _FATAL or (f.code == VERSION_MISMATCH and cache.header is None):
            severity = "error"
        if f.code == UNTRUSTED and "cached binaries for this device" in f.message \
                and not _any_trusted(cache, device_fp):
            severity = "error"              # not one binary would reach the driver
        res.findings.append(Finding(f.code, f.message, f.fix, severity, f.key))
    res.stats["trust"] = cache.report.trust
    res.findings += journal.crash_findings(path)
    if cache.header is None:            # nothing of ours could be read
        return res
    data = cache.data
    res.stats.update(format=f"{cache.header.format_major}.{cache.header.format_minor}",
                     writer=cache.header.writer, sections=len(data.sections),
                     programs=len(data.programs), bytes=cache.report.bytes_read)
    if device_fp is not None:
        _check_device(cache, device_fp, res)
    if required_keys is not None and device_fp is not None:
        _check_required(cache, device_fp, list(required_keys), res)
    _check_size_and_access(cache, path, res)
    return res


def _check_model(path: Path, init_model: Callable[[CacheBytes], ModelInit], res: DoctorResult) -> list[str]:
    """Initialize the model against the file's bytes; the driver's rejections become findings.
    Returns the program keys the model needs."""
    from mace.programcache.trust import read_checked
    data, location = read_checked(path, settings.read_limit())
    load = init_model(CacheBytes(data, location))     # trusted as the file is
    res.stats["model_init"] = {"from_cache": load.from_cache, "compiled": load.compiled,
                               "rejected": [list(r) for r in load.rejected]}
    for key, code, message in load.rejected:
        res.findings.append(Finding(code, f"{path}: the driver rejected the binary of {key}: "
                                    f"{message}", severity="error", key=key))
    return list(load.keys)


def _any_trusted(cache: ProgramCache, fp: DeviceFingerprint | None) -> bool:
    return fp is not None and any(cache.trusted(fp, k) for (f, k) in cache.data.programs
                                  if f == fp.id)


def _check_device(cache: ProgramCache, fp: DeviceFingerprint, res: DoctorResult) -> None:
    data = cache.data
    if not data.sections:
        res.findings.append(Finding(MISSING_PROGRAMS, f"{cache.name} holds no programs yet: the "
                                    f"engine compiles everything on this device", severity="error"))
        return
    if data.sections.get(fp.id) != fp:
        return                           # FOREIGN_DEVICE already reported by the load
    mine = {k: e for (f, k), e in data.programs.items() if f == fp.id}
    bad = [k for k, e in mine.items() if not e.blob_ok()]
    for k in bad:
        res.findings.append(Finding(DAMAGED_ENTRY, f"Damaged entry in {cache.name}: program {k} "
                                    f"(SHA-256 mismatch): it will be dropped and rebuilt", key=k))
    kinds = sorted({blobkind.classify(e.blob) for e in mine.values()})
    quarantined = sorted(k for (f, k) in data.quarantine if f == fp.id)
    if quarantined:
        res.findings.append(Finding(QUARANTINED, f"{len(quarantined)} program(s) quarantined on "
                                    f"this device (compiled from source each start): "
                                    f"{', '.join(quarantined[:5])}", severity="info"))
    failures = cache.build_failures(fp)
    if failures:
        res.findings.append(Finding(BUILD_FAILED, f"{len(failures)} program(s) failed to build on this "
                                    f"device and are skipped (their ops use another variant or the CPU "
                                    f"runtime): " + "; ".join(f"{k.split('|')[0]}: {r.get('log', '')[:80]}"
                                                               for k, r in list(failures.items())[:3]),
                                    severity="info"))
    caps = cache.get_caps(fp)
    res.stats["device_caps"] = caps
    res.stats["build_failures"] = failures
    usable = [k for k, e in mine.items() if k not in bad and k not in quarantined]
    res.stats.update(device_programs=len(usable), device_tuning_records=sum(
        1 for (f, _) in data.tuning if f == fp.id), blob_kinds=kinds, quarantined=len(quarantined),
        trusted_programs=sum(1 for k in usable if cache.trusted(fp, k)),
        signature=cache.signature_state(fp.id))
    if not usable:
        why = "every one of them is damaged or quarantined" if mine else "its section holds none"
        res.findings.append(Finding(MISSING_PROGRAMS, f"{cache.name} has no usable program for this "
                                    f"device ({why}): the engine compiles everything from source",
                                    severity="error"))


def _check_required(cache: ProgramCache, fp: DeviceFingerprint, keys: list[str],
                    res: DoctorResult) -> None:
    have = set(cache.program_keys(fp))
    missing = [k for k in keys if k not in have]
    res.stats.update(required=len(keys), required_missing=missing)
    if missing:
        res.findings.append(Finding(MISSING_PROGRAMS, (
            f"{len(missing)} of the {len(keys)} programs the model needs are not in {cache.name} "
            f"for this device (e.g. {missing[0]}): they will be compiled at init"),
            severity="error"))


def _check_size_and_access(cache: ProgramCache, path: Path, res: DoctorResult) -> None:
    size, cap = cache.report.bytes_read, settings.max_bytes()
    if size > cap:
        res.findings.append(Finding(MACE_OUT_OF_RESOURCES, (
            f"MACE_OUT_OF_RESOURCES: {path} is {human_bytes(size)}, over the cap of "
            f"{human_bytes(cap)}: the next save drops least recently used programs; run `mace "
            f"cache prune {path} --max-bytes N` or raise MACE_PROGRAM_CACHE_MAX_BYTES"),
            severity="warning"))
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        res.findings.append(Finding(UNWRITABLE, f"{path} cannot be rewritten by this user: new "
                                    f"programs will not be saved", severity="warning"))
