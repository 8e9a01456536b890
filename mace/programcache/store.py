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

import dataclasses
import contextlib
import hashlib
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path

from mace import fileio
from mace.programcache import atomic, journal, settings, trust, xiaomi
from mace.programcache.errors import (
    DAMAGED_ENTRY,
    FOREIGN_DEVICE,
    MISSING,
    QUARANTINED,
    REFUSED,
    SIGNATURE_INVALID,
    UNTRUSTED,
    UNWRITABLE,
    VERSION_MISMATCH,
    XIAOMI_FORMAT,
    CacheRefused,
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
ORIGIN = "origin"        # meta field of a binary that was not built on this machine (a pull)


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
        self.location: trust.Location | None = None     # where the bytes came from, and its trust
        self._sigs: dict = {}                    # fp_id -> signing.SectionSignatures
        self._local: set[Key] = set()            # built by this process: trusted
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

    def _open_path(self, path: Path) -> None:
        try:
            buf, self.location = trust.read_checked(path, settings.read_limit())
        except (FileNotFoundError, NotADirectoryError):
            self.location = trust.location_trust(path)
            self.report.format = "missing"
            self._find(Finding(MISSING, f"There is no precompiled OpenCL binary at {path} "
                               f"(first run)", severity="info"), logging.DEBUG)
        except fileio.FileRefused as exc:
            self.location = trust.untrusted(str(path), "refused")
            self.report.format = "missing"
            self._refusal = str(exc)
            self._find(Finding(REFUSED, str(exc), severity="warning"))
        except OSError as exc:
            self.location = trust.location_trust(path)
            self.report.format = "missing"
            self._find(Finding(UNWRITABLE, f"cannot read program cache {path}: "
                               f"{exc.strerror or exc}: starting empty", severity="warning"))
        else:
            self._load(buf)

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
        self._refusal = (f"{self.name} is not a mace program cache (nor a Xiaomi MACE one): "
                         f"refused: it is neither loaded nor overwritten: pass a program cache "
                         f"file or a new path (--program / MACE_PROGRAM_PATH)")
        self._find(Finding(REFUSED, self._refusal, severity="warning"))

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

    # }}}

    # {{{ trust (decided once, at open)

    def _decide_trust(self) -> None:
        loc = self.location or trust.untrusted(self.name, "unknown origin")
        self.location = loc
        if self._data.signatures:
            from mace.programcache import signing
            keys = signing.load_trusted_keys()
            for problem in keys.problems:
                self._find(Finding(UNTRUSTED, problem, severity="warning"))
            self._sigs = signing.check_sections(self._data, keys)
            for fp_id, s in sorted(self._sigs.items()):
                if s.notes and not s.signed_by:
                    self._find(Finding(SIGNATURE_INVALID, f"{self.name}: section {fp_id}: "
                                       + "; ".join(s.notes), severity="warning"))
        self.report.trust = {"location": "trusted" if loc.trusted else "untrusted",
                             "reason": loc.reason,
                             "sections": {f: self.signature_state(f) for f in sorted(self._data.sections)}}
        fp = self.device_fp
        if fp is None or not self._section_ok(fp):
            return
        mine = [e for (f, _), e in self._data.programs.items() if f == fp.id]
        bad = [e for e in mine if not self._binary_trusted(e)]
        if not bad:
            return
        pulled = sum(1 for e in bad if ORIGIN in e.meta)
        why = [] if loc.trusted else [f"not trusted by location: {loc.reason}"]
        if pulled:
            why.append(f"{pulled} came from elsewhere ({bad[0].meta.get(ORIGIN, 'another device')})")
        self._find(Finding(UNTRUSTED, (
            f"{self.name}: {len(bad)} of the {len(mine)} cached binaries for this device are not "
            f"trusted ({'; '.join(why)}) and carry no valid signature from a trusted key: they are "
            f"rebuilt from source (tuning records are still used after range checks): keep the "
            f"cache where only you can write it, or sign it (`mace cache sign`)"),
            severity="warning"))

    def signature_state(self, fp_id: str) -> str:
        """'signed' (by a trusted key), 'unknown-key', 'bad-signature' or 'unsigned'."""
        s = self._sigs.get(fp_id)
        return s.state() if s is not None else "unsigned"

    def _binary_trusted(self, entry: ProgramEntry) -> bool:
        k = (entry.fp_id, entry.key)
        if k in self._local:
            return True
        s = self._sigs.get(entry.fp_id)
        if s is not None and f"{entry.key}:{entry.sha256.hex()}" in s.covered["programs"]:
            return True
        return bool(self.location and self.location.trusted) and ORIGIN not in entry.meta

    def trusted(self, fp: DeviceFingerprint, key: str) -> bool:
        """Would `get_binary(fp, key)` hand the binary out, trust-wise?"""
        e = self._data.programs.get((fp.id, key))
        return e is not None and self._binary_trusted(e)

    # }}}

    # {{{ the crash journal

    def _recover_journal(self) -> None:
        """Quarantine what a dead process was loading or first launching when it died."""
        try:
            pending, empty = journal.scan(self.path)
        except OSError:
            pending, empty = [], []
        journal.remove(empty)
        if pending:
            for p in pending:
                fp = self._data.sections.get(p.fp_id)
                if fp is None and self.device_fp is not None and self.device_fp.id == p.fp_id:
                    fp = self.device_fp
                if fp is None:
                    continue
                what = "loading" if p.phase == "load" else "first launching"
                reason = f"CRASH: process {p.pid} died while {what} this cached binary"
                self.quarantine(fp, p.key, reason)
                self._find(Finding(QUARANTINED, f"{self.name}: process {p.pid} died while {what} "
                                   f"the cached binary of {p.key}: quarantined for this device "
                                   f"(compiled from source from now on)", key=p.key))
            if self.save():
                journal.remove([p.file for p in pending])
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
            if not self._binary_trusted(entry):
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
            self._local.add(k)
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

    def _writable_target(self) -> Path | None:
        """The file to replace (a symlink's target: written through), or None with one message
        when it must be left alone (not a regular file; read-only)."""
        path = Path(os.path.realpath(self.path))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return path
        if not stat.S_ISREG(st.st_mode):
            self._warn_once("refused", trust.not_regular_message(str(self.path), st.st_mode)
                            + " (save skipped)")
            return None
        if not st.st_mode & 0o222:
            msg = (f"program cache {self.path} is read-only (mode {stat.S_IMODE(st.st_mode):04o}): "
                   f"left as it is, new programs are not saved: `chmod u+w {self.path}` to let "
                   f"mace update it")
            self._warn_once("readonly", msg, Finding(UNWRITABLE, msg))
            return None
        return path

    def _save_locked(self) -> bool:
        path = self._writable_target()
        if path is None:
            return False
        path = fileio.write_target(path)    # refused before a lock file appears beside it
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
        try:
            disk, _ = trust.read_checked(path, settings.read_limit())
        except FileNotFoundError:
            disk = None
        except fileio.FileRefused as exc:
            self._warn_once("refused", f"{exc} (save skipped)")
            return None
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
        else:
            self._warn_once("refused", f"{path} is not a mace program cache (nor a Xiaomi MACE "
                            f"one): left untouched, save skipped: delete it or point "
                            f"MACE_PROGRAM_PATH / --program at another file")
            return None
        aside = atomic.move_aside(path)          # ours (our magic), but its header is damaged
        log.warning("%s is a damaged mace program cache: moved aside to %s, writing a fresh one",
                    path, aside)
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
        for k in self._puts:                     # built here byte for byte: ours now (no origin)
            e, mine = base.programs.get(k), ours.programs.get(k)
            if e is not None and mine is not None and e.sha256 == mine.sha256 and e.meta != mine.meta:
                base.programs[k] = dataclasses.replace(e, meta=mine.meta)
        return base

    # }}}
