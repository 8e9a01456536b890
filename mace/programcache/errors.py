"""Typed findings and errors of the program cache, each with its cause and its fix.

A *finding* is what a load, save, doctor or verify reports; an *error* is raised only by the
parsers (`format.decode`, `xiaomi.parse_*`) and caught by the store, which turns it into a
finding. The codes mirror the error table of ARCHITECTURE.md ("The program cache file").
"""
from __future__ import annotations

from dataclasses import dataclass

from mace.errors import MaceError

CL_INVALID_BINARY = "CL_INVALID_BINARY"
MACE_OUT_OF_RESOURCES = "MACE_OUT_OF_RESOURCES"
MAGIC_MISMATCH = "MAGIC_MISMATCH"
VERSION_MISMATCH = "VERSION_MISMATCH"
MISSING = "MISSING"
FOREIGN_DEVICE = "FOREIGN_DEVICE"
DAMAGED_ENTRY = "DAMAGED_ENTRY"
XIAOMI_FORMAT = "XIAOMI_FORMAT"
UNWRITABLE = "UNWRITABLE"
MISSING_PROGRAMS = "MISSING_PROGRAMS"
QUARANTINED = "QUARANTINED"
BUILD_FAILED = "BUILD_FAILED"
UNTRUSTED = "UNTRUSTED"
SIGNATURE_INVALID = "SIGNATURE_INVALID"
REFUSED = "REFUSED"
CRASHED = "CRASHED"


@dataclass(frozen=True)
class CodeInfo:
    code: str
    cause: str
    fix: str


CODES: dict[str, CodeInfo] = {c.code: c for c in (
    CodeInfo(CL_INVALID_BINARY, "the binary was compiled for another device or driver",
             "let the runtime rebuild it from source (it is quarantined for this device), or "
             "recompile for this device with `mace convert`/`mace tune`"),
    CodeInfo(MACE_OUT_OF_RESOURCES, "a binary or the whole cache is larger than the size cap",
             "run `mace cache prune FILE --max-bytes N`, split the model, or raise "
             "MACE_PROGRAM_CACHE_MAX_BYTES"),
    CodeInfo(MAGIC_MISMATCH, "the file is not a mace program cache, or it is corrupted",
             "regenerate it with `mace convert --config ...` or delete it"),
    CodeInfo(VERSION_MISMATCH, "the file was written by a newer mace than this one",
             "upgrade mace"),
    CodeInfo(MISSING, "no cache file yet (first run)",
             "nothing to do: programs are compiled, then saved after the first run"),
    CodeInfo(FOREIGN_DEVICE, "the file holds binaries for other devices or drivers only",
             "nothing to do: programs are compiled from source and a section for this device "
             "is added; the other sections are kept"),
    CodeInfo(DAMAGED_ENTRY, "an entry's checksum or framing is wrong (disk or copy damage)",
             "nothing to do: the entry is dropped and rebuilt; run `mace cache verify FILE` to "
             "check the rest"),
    CodeInfo(XIAOMI_FORMAT, "the file is a Xiaomi MACE cache, which has no device fingerprint",
             "point MACE_PROGRAM_PATH at a mace program cache; the Xiaomi file is read-only "
             "here (`mace inspect FILE` lists it)"),
    CodeInfo(UNWRITABLE, "the cache file or its directory cannot be written",
             "make the directory writable, or set MACE_PROGRAM_PATH to a writable file"),
    CodeInfo(MISSING_PROGRAMS, "programs the model needs are not in the cache for this device",
             "run the model once on this device (or `mace tune`) so that they are compiled and "
             "saved"),
    CodeInfo(QUARANTINED, "the driver refused these binaries on this device earlier",
             "nothing to do: they are compiled from source; a driver update starts a new "
             "section"),
    CodeInfo(BUILD_FAILED, "the device's compiler could not build these programs (or make their "
             "kernels) earlier", "nothing to do: their ops use another variant or the CPU runtime; "
             "a driver update starts a new section and tries them again"),
    CodeInfo(UNTRUSTED, "others could have written the file (its location is not private) or "
             "the binaries came from elsewhere (a bundle, a device), and no trusted key signed them",
             "keep the cache where only you can write it (chmod go-w on the file and its "
             "directories), or sign it with `mace cache sign FILE --key K` and list the public key "
             "in the trusted keys file (MACE_TRUSTED_KEYS)"),
    CodeInfo(SIGNATURE_INVALID, "a section's signature does not verify (altered after signing) or "
             "its key is not trusted", "re-sign the file with a trusted key (`mace cache sign`), "
             "or add the signer's public key to the trusted keys file"),
    CodeInfo(REFUSED, "the path is not a regular file, or not a mace program cache",
             "pass a program cache file or a new path (--program / MACE_PROGRAM_PATH)"),
    CodeInfo(CRASHED, "a process died while loading or first launching a cached binary",
             "nothing to do: the next start quarantines that binary for this device and "
             "compiles it from source"),
)}

SEVERITIES = ("error", "warning", "info")


@dataclass
class Finding:
    """One typed observation: `message` is the complete user-facing line (it names the file
    and the fix); `fix` repeats the fix alone for tables and --json."""

    code: str
    message: str
    fix: str = ""
    severity: str = "warning"
    key: str | None = None

    def __post_init__(self) -> None:
        if not self.fix and self.code in CODES:
            self.fix = CODES[self.code].fix

    @property
    def cause(self) -> str:
        return CODES[self.code].cause if self.code in CODES else self.message

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "cause": self.cause, "fix": self.fix, "key": self.key}


class ProgramCacheError(MaceError):
    """A program cache file (or part of it) cannot be used. Raised only by the parsers; the
    store turns it into a finding and falls back to an empty cache."""

    code = "PROGRAM_CACHE_ERROR"
    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix if fix is not None else (CODES[self.code].fix if self.code in CODES else "")

    def finding(self, severity: str = "warning", key: str | None = None) -> Finding:
        return Finding(self.code, self.message, self.fix, severity, key)


class MagicMismatch(ProgramCacheError):
    code = MAGIC_MISMATCH


class VersionMismatch(ProgramCacheError):
    code = VERSION_MISMATCH

    def __init__(self, message: str, *, found: tuple[int, int] = (0, 0), writer: str = "",
                 fix: str | None = None):
        super().__init__(message, fix=fix)
        self.found, self.writer = found, writer


class CacheOutOfResources(ProgramCacheError):
    code = MACE_OUT_OF_RESOURCES


class CacheRefused(ProgramCacheError):
    """A path given as the program cache is not a regular file or not one of our caches."""

    code = REFUSED
    exit_code = 2


class DamagedEntry(ProgramCacheError):
    code = DAMAGED_ENTRY


class XiaomiFormatError(ProgramCacheError):
    """A Xiaomi MACE file is malformed (bad CRC, bad framing)."""

    code = XIAOMI_FORMAT
