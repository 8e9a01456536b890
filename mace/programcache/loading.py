"""Reading a cache file into a ProgramCache: what kind of file it is, and the findings.

A mixin of `store.ProgramCache` (its open path): an empty or missing file is a first run; ours
is decoded (damaged records dropped, each said); a Xiaomi file is recognised and left alone;
anything else, and a path that is not a regular file, is refused (never loaded or written).
"""
from __future__ import annotations

import logging
from pathlib import Path

from mace import fileio
from mace.programcache import settings, trust, xiaomi
from mace.programcache.errors import (
    FOREIGN_DEVICE,
    MISSING,
    REFUSED,
    UNWRITABLE,
    VERSION_MISMATCH,
    XIAOMI_FORMAT,
    Finding,
    MagicMismatch,
    VersionMismatch,
)
from mace.programcache.format import MAGIC, decode, version_message

log = logging.getLogger("mace.programcache")
_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}


class Loading:

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "<bytes>"

    def _find(self, finding: Finding, level: int | None = None) -> None:
        self.report.findings.append(finding)
        if self._log_findings:
            log.log(level if level is not None else _LEVELS.get(finding.severity, logging.INFO),
                    "%s", finding.message)

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
