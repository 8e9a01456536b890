"""ProgramCache: open (never raises), get/put binaries and tuning records, quarantine, save
(lock, re-read, merge by key, prune to the cap, atomic replace; never raises).

A blob is handed out only when its section's fingerprint equals the device's field by field,
its record CRC held at load, its SHA-256 holds and it is not quarantined on that device.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from pathlib import Path

from mace import fileio
from mace.programcache import atomic, settings, xiaomi
from mace.programcache.errors import (
    DAMAGED_ENTRY,
    FOREIGN_DEVICE,
    MISSING,
    UNWRITABLE,
    VERSION_MISMATCH,
    XIAOMI_FORMAT,
    Finding,
    MagicMismatch,
    VersionMismatch,
)
from mace.programcache.fingerprint import DeviceFingerprint
from mace.programcache.format import (
    CAPS_KEY,
    MAGIC,
    CacheData,
    ProgramEntry,
    QuarantineEntry,
    TuningEntry,
    decode,
    encode,
    magic_message,
    program_record_size,
    version_message,
)
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


class ProgramCache:
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

    # {{{ open

    @classmethod
    def open(cls, source=None, *, device_fp: DeviceFingerprint | None = None,
             max_bytes: int | None = None, log_findings: bool = True) -> ProgramCache:
        """Open a cache file (path; None = default_cache_path()) or read-only bytes.

        Never raises: a missing, foreign, corrupt, newer or Xiaomi file gives an empty cache,
        with typed findings in `.report` (also logged, unless log_findings is False: tools
        that print the findings themselves)."""
        t0 = time.perf_counter()
        if isinstance(source, (bytes, bytearray, memoryview)):
            cache = cls(None, device_fp=device_fp, max_bytes=max_bytes, readonly=True)
            cache._log_findings = log_findings
            cache._load(bytes(source))
        else:
            path = Path(source) if source is not None else settings.default_cache_path()
            cache = cls(path, device_fp=device_fp, max_bytes=max_bytes)
            cache._log_findings = log_findings
            try:
                buf = atomic.read_cache(path)
            except (FileNotFoundError, NotADirectoryError):
                cache.report.format = "missing"
                cache._find(Finding(MISSING, f"There is no precompiled OpenCL binary at {path} "
                                    f"(first run)", severity="info"), logging.DEBUG)
            except OSError as exc:
                cache.report.format = "missing"
                cache._find(Finding(UNWRITABLE, f"cannot read program cache {path}: "
                                    f"{exc.strerror or exc}: starting empty", severity="warning"))
            else:
                cache._load(buf)
        cache.report.load_seconds = time.perf_counter() - t0
        return cache

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "<bytes>"

    def _find(self, finding: Finding, level: int | None = None) -> None:
        self.report.findings.append(finding)
        if self._log_findings:
            log.log(level if level is not None else _LEVELS.get(finding.severity, logging.INFO),
                    "%s", finding.message)

    def _load(self, buf: bytes) -> None:
        self.report.bytes_read = len(buf)
        if not buf:                               # `touch`ed, or bytes of nothing: a first run
            self.report.format = "missing"
            self._find(Finding(MISSING, f"{self.name} is empty: no precompiled OpenCL binary "
                               f"(first run)", severity="info"), logging.DEBUG)
            return
        if buf[:8] == MAGIC:
            self._load_ours(buf)
            return
        found = xiaomi.sniff(buf, self.name)
        if found is not None:
            self.xiaomi = found
            self.report.format = found.format
            kind = "legacy" if found.format == xiaomi.LEGACY else "protobuf+CRC"
            crc = "" if found.crc_ok is not False else ", CRC invalid"
            self._find(Finding(XIAOMI_FORMAT, f"{self.name} is a Xiaomi MACE program cache ({kind}, "
                               f"{len(found.programs)} programs{crc}): Xiaomi MACE format, "
                               f"read-only: its binaries are not loaded (no device fingerprint); "
                               f"compiling from source, and the file is not overwritten: point "
                               f"MACE_PROGRAM_PATH at another file", severity="warning"))
            return
        self.report.format = "unknown"
        self._find(MagicMismatch(magic_message(self.name)).finding("warning"))

    def _load_ours(self, buf: bytes) -> None:
        self.report.format = "mace"
        try:
            dec = decode(buf, self.name)
        except VersionMismatch as exc:
            self._find(exc.finding("warning"))
            return
        except MagicMismatch as exc:
            self.report.format = "unknown"
            self._find(exc.finding("warning"))
            return
        self.header = dec.header
        for f in dec.findings:
            self._find(f)
        if dec.findings:
            self._dirty = True                    # the next save writes a clean file
        h = dec.header
        if h.newer_than_reader:
            self._find(Finding(VERSION_MISMATCH, version_message(self.name, h.writer,
                               h.format_major, h.format_minor) + " (read what this version "
                               "knows; the file will not be overwritten)", severity="warning"))
        self._data = dec.data
        self._written_last_used = {k: e.last_used_ns for k, e in dec.data.programs.items()}
        self._check_foreign()

    def _check_foreign(self) -> None:
        fp, sections = self.device_fp, self._data.sections
        if fp is None or not sections or sections.get(fp.id) == fp:
            return
        nearest = min(sections.values(), key=lambda s: len(fp.differences(s)))
        self._find(Finding(FOREIGN_DEVICE, (
            f"{self.name} holds binaries for {len(sections)} other device(s) "
            f"({'; '.join(s.short() for s in sections.values())}), not for this one "
            f"({fp.short()}; nearest differs in {', '.join(fp.differences(nearest))}): compiling "
            f"from source; the other sections are kept"), severity="warning"))

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
        path = fileio.write_target(self.path)    # refused before a lock file appears beside it
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.lock_for(path, settings.LOCK_TIMEOUT_S):
            atomic.remove_stale_temps(path)
            base = self._read_base(path)
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

    def _read_base(self, path: Path) -> CacheData | None:
        """The file's current content to merge into; None when it must not be overwritten."""
        disk = atomic.read_or_none(path)
        if disk is None or len(disk) == 0:
            return CacheData()
        if disk[:8] == MAGIC:
            try:
                dec = decode(disk, str(path))
            except VersionMismatch as exc:
                self._warn_once("newer", f"{exc.message} (not overwritten: save skipped)")
                return None
            except MagicMismatch:
                pass
            else:
                if dec.header.newer_than_reader:
                    self._warn_once("newer", version_message(
                        str(path), dec.header.writer, dec.header.format_major,
                        dec.header.format_minor) + " (not overwritten: save skipped)")
                    return None
                return dec.data
        elif xiaomi.sniff(disk, str(path)) is not None:
            self._warn_once("xiaomi", f"{path} is a Xiaomi MACE program cache (read-only here): "
                            f"not overwritten, save skipped: set MACE_PROGRAM_PATH to another file")
            return None
        aside = atomic.move_aside(path)
        log.warning("%s is not a mace program cache or is corrupted: moved aside to %s, writing a "
                    "fresh one", path, aside)
        return CacheData()

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
        return base

    # }}}
