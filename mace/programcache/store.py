"""ProgramCache: open (never raises, except for a refused explicit path), get/put binaries and
tuning records, quarantine, save (lock, re-read, merge by key, prune to the cap, atomic
replace; never raises).

A blob is handed out only when its section's fingerprint equals the device's field by field,
its record CRC held at load, its SHA-256 holds, it is not quarantined on that device, and it is
trusted: trust is decided once, at open (trust.py: a private location; signing.py: a valid
signature by a trusted key). Binaries pulled from a device (meta "origin") need a signature
even in a private file.

What is written, and what never is: only a regular file (symlinks are written through to their
target) that is ours, empty or absent; a file that is not a cache is refused, never renamed; a
damaged file of ours is moved aside to a fresh `.corrupt` name; a read-only file is left alone.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import threading
import time
from pathlib import Path

from mace import fileio
from mace.programcache import atomic, journal, settings, trust, xiaomi
from mace.programcache.decision import TrustDecision
from mace.programcache.errors import (
    DAMAGED_ENTRY,
    QUARANTINED,
    UNWRITABLE,
    CacheRefused,
    Finding,
)
from mace.programcache.fingerprint import DeviceFingerprint
from mace.programcache.format import (
    CAPS_KEY,
    CacheData,
    ProgramEntry,
    QuarantineEntry,
    TuningEntry,
    encode,
    program_record_size,
)
from mace.programcache.loading import Loading
from mace.programcache.merge import add_section, merge_into
from mace.programcache.prune import out_of_resources, prune_lru
from mace.programcache.report import LoadReport, human_bytes
from mace.programcache.section import Section

log = logging.getLogger("mace.programcache")
_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}

Key = tuple[str, str]


def program_key(name: str, build_options: list[str], source: str) -> str:
    """'<name>|<sorted unique non-empty options joined by one space>|<sha256(source)[:16]>'.

    Deterministic across processes and machines; editing the source changes the key.
    """
    if "|" in name or not name:
        raise ValueError(f"program name {name!r} must be non-empty and must not contain '|'")
    opts = " ".join(sorted({o.strip() for o in build_options if o and o.strip()}))
    return f"{name}|{opts}|{hashlib.sha256(source.encode('utf-8')).hexdigest()[:16]}"


#: called with a path before it is opened: the runtime waits there for binaries this process is
#: still saving to that file (mace/runtime/opencl/harvest.py), so every reader sees them
BEFORE_OPEN: list = []


class ProgramCache(Loading):
    """The compiled program cache of one file (or of read-only bytes)."""

    def __init__(self, path: Path | None, *, device_fp: DeviceFingerprint | None = None,
                 max_bytes: int | None = None, readonly: bool = False):
        self.path = path
        self.device_fp = device_fp
        self.max_bytes = max_bytes if max_bytes is not None else settings.max_bytes()
        self.readonly = readonly
        self.report = LoadReport(path=str(path) if path else "", source="file" if path else "bytes")
        self.header = None                       # format.Header of the file, when ours
        self.xiaomi: xiaomi.XiaomiFile | None = None
        self._data = CacheData()
        self._lock = threading.RLock()
        self._dirty = False
        self._puts: set[Key] = set()             # put in this process since the last save
        self._discards: set[Key] = set()         # dropped on purpose since the last save
        self._hits: dict[Key, int] = {}          # hits since the last save (added on merge)
        self._written_last_used: dict[Key, int] = {}
        self._warned: set[str] = set()
        self._log_findings = True
        self.location: trust.Location | None = None     # where the bytes came from, and its trust
        self.decision = TrustDecision(trust.untrusted("<none>", "not opened"), CacheData(), "")
        self._untrusted_seen: set[Key] = set()
        self._refusal: str | None = None         # why this file must never be written
        self.journal: journal.CrashJournal | None = None

    # {{{ open

    @classmethod
    def open(cls, source=None, *, device_fp: DeviceFingerprint | None = None,
             max_bytes: int | None = None, log_findings: bool = True,
             strict: bool = False, recover: bool = True) -> ProgramCache:
        """Open a cache file (path; None = default_cache_path()), read-only bytes, or
        `trust.CacheBytes` (bytes with the location they were read from, e.g. a bundle).

        Never raises: a missing, foreign, corrupt, newer or Xiaomi file gives an empty cache,
        with typed findings in `.report` (also logged, unless log_findings is False: tools
        that print the findings themselves). With `strict` (a path the user gave explicitly),
        a path that is not a regular file or not a program cache raises CacheRefused.
        `recover=False` (tools that only look) leaves a crash journal for the next start."""
        t0 = time.perf_counter()
        if isinstance(source, (bytes, bytearray, memoryview, trust.CacheBytes)):
            cache = cls(None, device_fp=device_fp, max_bytes=max_bytes, readonly=True)
            cache._log_findings = log_findings
            if isinstance(source, trust.CacheBytes):
                cache.location, source = source.location, source.data
                cache.report.path = cache.location.path
            else:
                cache.location = trust.untrusted("<bytes>", "the programs came as bytes, with no "
                                                 "file location to check")
            cache._load(bytes(source))
        else:
            path = Path(source) if source is not None else settings.default_cache_path()
            for hook in BEFORE_OPEN:
                hook(path)
            cache = cls(path, device_fp=device_fp, max_bytes=max_bytes)
            cache._log_findings = log_findings
            cache._open_path(path)
        if cache._refusal and strict:
            raise CacheRefused(cache._refusal)
        cache._decide_trust()
        if cache.path is not None and not cache._refusal and recover:
            cache._recover_journal()
        cache.report.load_seconds = time.perf_counter() - t0
        return cache

    # }}}

    # {{{ trust (decided once, at open: decision.py)

    def _decide_trust(self) -> None:
        self.location = self.location or trust.untrusted(self.name, "unknown origin")
        self.decision = TrustDecision(self.location, self._data, self.name)
        for f in self.decision.findings:
            self._find(f)
        self.report.trust = self.decision.report(self._data)
        fp = self.device_fp
        found = self.decision.device_finding(self._data, fp.id) if fp and self._section_ok(fp) else None
        if found is not None:
            self._find(found)

    def signature_state(self, fp_id: str) -> str:
        return self.decision.state(fp_id)

    def trusted(self, fp: DeviceFingerprint, key: str) -> bool:
        """Would `get_binary(fp, key)` hand the binary out, trust-wise?"""
        e = self._data.programs.get((fp.id, key))
        return e is not None and self.decision.binary(e)

    # }}}

    # {{{ the crash journal

    def _recover_journal(self) -> None:
        """Quarantine what a dead process was loading or first launching when it died."""
        known = {**self._data.sections, **({self.device_fp.id: self.device_fp} if self.device_fp else {})}
        pending = journal.recover(self.path, known)
        for fp, p, what in pending:
            self.quarantine(fp, p.key, f"CRASH: process {p.pid} died while {what} this cached binary")
            self._find(Finding(QUARANTINED, f"{self.name}: process {p.pid} died while {what} the cached "
                               f"binary of {p.key}: quarantined for this device (compiled from source "
                               f"from now on)", key=p.key))
        if pending and self.save():
            journal.remove([p.file for _, p, _ in pending])
        self.journal = journal.CrashJournal(self.path)

    def journal_guard(self, fp: DeviceFingerprint, key: str, phase: str):
        """Context: journal "about to load/launch key" around a risky driver call."""
        if self.journal is None:
            return contextlib.nullcontext()
        return self.journal.guard(fp.id, key, phase)

    # }}}

    # {{{ first run

    def first_run_message(self, n: int) -> str:
        """The line the engine logs when it compiles `n` programs because none were cached."""
        if self.report.format == "missing":
            return (f"There is no precompiled OpenCL binary at {self.name}: compiling {n} "
                    f"programs (first run)")
        return f"No usable binary for this device in program cache {self.name}: compiling {n} programs"

    # }}}

    # {{{ binaries

    def _section_ok(self, fp: DeviceFingerprint) -> bool:
        return self._data.sections.get(fp.id) == fp

    def get_binary(self, fp: DeviceFingerprint, key: str) -> bytes | None:
        """The binary of `key` for device `fp`, or None. Counts a hit."""
        with self._lock:
            k = (fp.id, key)
            if not self._section_ok(fp) or k in self._data.quarantine:
                return None
            entry = self._data.programs.get(k)
            if entry is None:
                return None
            if not self.decision.binary(entry):
                if k not in self._untrusted_seen:
                    self._untrusted_seen.add(k)
                    self.report.untrusted += 1
                return None
            if not entry.blob_ok():
                del self._data.programs[k]
                self._dirty = True
                self._find(Finding(DAMAGED_ENTRY, f"Damaged entry in {self.name}: program {key} "
                                   f"(SHA-256 mismatch): dropped, it will be rebuilt", key=key))
                return None
            entry.hit_count += 1
            entry.last_used_ns = time.time_ns()
            self._hits[k] = self._hits.get(k, 0) + 1
            return entry.blob

    def put_binary(self, fp: DeviceFingerprint, key: str, blob: bytes,
                   meta: dict | None = None) -> bool:
        """Store a binary built for `fp`. Returns False when it is not stored (quarantined key,
        or larger than the cache cap: a MACE_OUT_OF_RESOURCES finding)."""
        blob = bytes(blob)
        meta = dict(meta or {})
        json.dumps(meta)                           # TypeError now, not at save time
        if len(key.encode("utf-8")) > 0xFFFF:
            raise ValueError(f"program key of {len(key)} chars is too long")
        with self._lock:
            k = (fp.id, key)
            if k in self._data.quarantine:
                log.debug("not storing %s: quarantined for %s", key, fp.short())
                return False
            now = time.time_ns()
            entry = ProgramEntry(fp.id, key, blob, hashlib.sha256(blob).digest(), now, now, 0, meta,
                                 verified=True)
            if program_record_size(entry) + 4096 > self.max_bytes:
                self._find(out_of_resources(self.name, f"program {key} is {human_bytes(len(blob))}, "
                           f"larger than the cache cap of {human_bytes(self.max_bytes)} "
                           f"(not stored)"))
                return False
            old = self._data.programs.get(k)
            self.decision.local.add(k)
            if old is not None and old.sha256 == entry.sha256 and old.meta == meta:
                return True
            add_section(self._data, fp)
            self._data.programs[k] = entry
            self._puts.add(k)
            self._dirty = True
            return True

    def discard_binary(self, fp: DeviceFingerprint, key: str) -> None:
        """Drop a binary this process no longer wants (a variant the tuner did not keep); the
        next save removes it from the file too, even if another process wrote it meanwhile."""
        with self._lock:
            k = (fp.id, key)
            if self._data.programs.pop(k, None) is not None or k not in self._discards:
                self._discards.add(k)
                self._puts.discard(k)
                self._dirty = True

    def quarantine(self, fp: DeviceFingerprint, key: str, reason: str) -> None:
        """The driver refused this binary on `fp`: never offer it there again (kept on save)."""
        with self._lock:
            k = (fp.id, key)
            old = self._data.programs.pop(k, None)
            add_section(self._data, fp)
            self._data.quarantine[k] = QuarantineEntry(fp.id, key, reason[:4000], time.time_ns(),
                                                       old.sha256.hex() if old else "")
            self._puts.discard(k)
            self._dirty = True
            log.debug("quarantined %s on %s: %s", key, fp.short(), reason)

    def is_quarantined(self, fp: DeviceFingerprint, key: str) -> bool:
        return (fp.id, key) in self._data.quarantine

    def section(self, fp: DeviceFingerprint) -> Section:
        """This cache as seen by one device: the same calls without the fingerprint."""
        return Section(self, fp)

    def add_section(self, fp: DeviceFingerprint) -> Section:
        """Name device `fp` in the file (saved even with nothing in it yet); its view."""
        with self._lock:
            if add_section(self._data, fp):
                self._dirty = True
        return Section(self, fp)

    def program_keys(self, fp: DeviceFingerprint) -> list[str]:
        """Keys with a usable binary for `fp` (for doctor's required-programs check)."""
        if not self._section_ok(fp):
            return []
        return sorted(k for (f, k) in self._data.programs
                      if f == fp.id and (f, k) not in self._data.quarantine)

    @property
    def data(self) -> CacheData:
        return self._data

    # }}}

    # {{{ tuning records

    def get_tuning(self, fp: DeviceFingerprint, key: str) -> dict | None:
        with self._lock:
            t = self._data.tuning.get((fp.id, key)) if self._section_ok(fp) else None
            if t is None:
                self.report.tuning_misses += 1
                return None
            self.report.tuning_hits += 1
            return dict(t.record)

    def put_tuning(self, fp: DeviceFingerprint, key: str, record: dict) -> None:
        record = json.loads(json.dumps(dict(record)))   # JSON-safe copy (TypeError if not)
        if len(key.encode("utf-8")) > 0xFFFF:
            raise ValueError(f"tuning key of {len(key)} chars is too long")
        with self._lock:
            add_section(self._data, fp)
            self._data.tuning[(fp.id, key)] = TuningEntry(fp.id, key, record, time.time_ns())
            self._dirty = True

    def tuning_records(self, fp: DeviceFingerprint) -> dict[str, dict]:
        if not self._section_ok(fp):
            return {}
        return {k: dict(t.record) for (f, k), t in sorted(self._data.tuning.items()) if f == fp.id}

    # }}}

    # {{{ device capabilities and build failures (format 1.1)

    def _put_json(self, table: dict, fp: DeviceFingerprint, key: str, record: dict) -> None:
        record = json.loads(json.dumps(dict(record)))
        with self._lock:
            add_section(self._data, fp)
            table[(fp.id, key)] = TuningEntry(fp.id, key, record, time.time_ns())
            self._dirty = True

    def get_caps(self, fp: DeviceFingerprint) -> dict | None:
        """The capabilities probed for device `fp` (None: not probed yet)."""
        t = self._data.caps.get((fp.id, CAPS_KEY)) if self._section_ok(fp) else None
        return dict(t.record) if t is not None else None

    def put_caps(self, fp: DeviceFingerprint, caps: dict) -> None:
        self._put_json(self._data.caps, fp, CAPS_KEY, caps)

    def build_failure(self, fp: DeviceFingerprint, key: str) -> dict | None:
        """Why program `key` failed to build on `fp` earlier (None: it did not)."""
        t = self._data.build_failures.get((fp.id, key)) if self._section_ok(fp) else None
        return dict(t.record) if t is not None else None

    def record_build_failure(self, fp: DeviceFingerprint, key: str, info: dict) -> None:
        """Program `key` does not build (or make its kernel) on `fp`: later starts skip it."""
        self._put_json(self._data.build_failures, fp, key, info)

    def build_failures(self, fp: DeviceFingerprint) -> dict[str, dict]:
        if not self._section_ok(fp):
            return {}
        return {k: dict(t.record) for (f, k), t in sorted(self._data.build_failures.items())
                if f == fp.id}

    # }}}

    # {{{ save

    @property
    def dirty(self) -> bool:
        return self._dirty

    def _needs_write(self) -> bool:
        if self._dirty:
            return True
        now = time.time_ns()
        return any(now - self._written_last_used.get(k, 0) >= settings.TOUCH_WRITE_INTERVAL_NS
                   for k in self._hits)

    def _warn_once(self, tag: str, message: str, finding: Finding | None = None) -> None:
        if tag in self._warned:
            log.debug("%s", message)
            return
        self._warned.add(tag)
        if finding is not None:
            self.report.findings.append(finding)
        log.warning("%s", message)

    def save(self) -> bool:
        """Merge this cache into its file. Returns True when the file was written. Never raises."""
        if self.readonly or self.path is None:
            log.debug("program cache opened from bytes is read-only: save skipped")
            return False
        if self._refusal:
            self._warn_once("refused", f"{self._refusal} (save skipped)")
            return False
        with self._lock:
            if not self._needs_write():
                return False
            try:
                return self._save_locked()
            except fileio.FileRefused as exc:    # read-only, a device node, a FIFO: left alone
                msg = f"cannot write program cache {exc}"
                self._warn_once("unwritable", msg, Finding(UNWRITABLE, msg))
                return False
            except Exception as exc:     # OSError, filelock.Timeout, a full disk...: never crash
                msg = (f"cannot write program cache {self.path}: {getattr(exc, 'strerror', None) or exc}"
                       f": make the directory writable, or set MACE_PROGRAM_PATH to a writable file")
                self._warn_once("unwritable", msg, Finding(UNWRITABLE, msg))
                log.debug("save failed", exc_info=True)
                return False

    def _save_locked(self) -> bool:
        path = atomic.save_target(self.path, self._warn_once)   # None: leave the file alone
        if path is None:
            return False
        path = fileio.write_target(path)    # refused before a lock file appears beside it
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.lock_for(path, settings.LOCK_TIMEOUT_S):
            atomic.remove_stale_temps(path)
            base = atomic.read_base(path, self._warn_once)
            if base is None:
                return False
            merged = self._merge_into(base)
            dropped = prune_lru(merged, self.max_bytes)
            if dropped:
                mine = sum(1 for e in dropped if (e.fp_id, e.key) in self._puts)
                msg = out_of_resources(str(path), (
                    f"the cache would exceed its cap of {human_bytes(self.max_bytes)}: dropped "
                    f"{len(dropped)} least recently used programs ({mine} of them just built)"))
                self._warn_once("cap", msg.message, msg)
            data = encode(merged)
            fileio.write_atomic(path, data)
        self._data = merged
        self._dirty = False
        self._puts.clear()
        self._discards.clear()
        self._hits.clear()
        self._written_last_used = {k: e.last_used_ns for k, e in merged.programs.items()}
        log.debug("saved program cache %s: %d programs, %s", path, len(merged.programs),
                  human_bytes(len(data)))
        return True

    def _merge_into(self, base: CacheData) -> CacheData:
        """Our changes merged into the file's current content by the one merge policy
        (mace.programcache.merge): other processes' entries are kept, a binary put here wins
        over an older one, quarantine wins. A binary we only read from the file brings just
        the hits counted since, so hits are never counted twice."""
        ours = self._data
        incoming = dataclasses.replace(ours, programs={
            k: e if k in self._puts or k not in base.programs
            else dataclasses.replace(e, hit_count=self._hits.get(k, 0))
            for k, e in ours.programs.items()})
        merge_into(base, incoming)
        for k in self._discards:
            if k not in self._puts:
                base.programs.pop(k, None)
        for k in self._puts:                     # built here byte for byte: ours now (no origin)
            e, mine = base.programs.get(k), ours.programs.get(k)
            if e is not None and mine is not None and e.sha256 == mine.sha256 and e.meta != mine.meta:
                base.programs[k] = dataclasses.replace(e, meta=mine.meta)
        return base

    # }}}
