"""One device's view of a program cache: `cache.section(fp)` binds the fingerprint once, so it
stops travelling beside the cache in every call. Only this device's records are seen; the
other sections of the file are kept untouched on save."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mace.programcache.fingerprint import DeviceFingerprint
    from mace.programcache.store import ProgramCache


class Section:
    __slots__ = ("cache", "fp")

    def __init__(self, cache: ProgramCache, fp: DeviceFingerprint):
        self.cache = cache
        self.fp = fp

    @property
    def id(self) -> str:
        return self.fp.id

    @property
    def report(self):
        """The cache's report of this process (counts of loads, compiles, findings)."""
        return self.cache.report

    @property
    def present(self) -> bool:
        """Whether the file names this device (with exactly this fingerprint)."""
        return self.cache.data.sections.get(self.fp.id) == self.fp

    # binaries
    def get_binary(self, key: str) -> bytes | None:
        return self.cache.get_binary(self.fp, key)

    def put_binary(self, key: str, blob: bytes, meta: dict | None = None) -> bool:
        return self.cache.put_binary(self.fp, key, blob, meta)

    def discard_binary(self, key: str) -> None:
        self.cache.discard_binary(self.fp, key)

    def quarantine(self, key: str, reason: str) -> None:
        self.cache.quarantine(self.fp, key, reason)

    def is_quarantined(self, key: str) -> bool:
        return self.cache.is_quarantined(self.fp, key)

    def program_keys(self) -> list[str]:
        return self.cache.program_keys(self.fp)

    def journal_guard(self, key: str, phase: str):
        """Context around loading or first launching a cached binary (see `journal`)."""
        return self.cache.journal_guard(self.fp, key, phase)

    # tuning records
    def get_tuning(self, key: str) -> dict | None:
        return self.cache.get_tuning(self.fp, key)

    def put_tuning(self, key: str, record: dict) -> None:
        self.cache.put_tuning(self.fp, key, record)

    def tuning_records(self) -> dict[str, dict]:
        return self.cache.tuning_records(self.fp)

    # device capabilities and build failures
    def get_caps(self) -> dict | None:
        return self.cache.get_caps(self.fp)

    def put_caps(self, caps: dict) -> None:
        self.cache.put_caps(self.fp, caps)

    def build_failure(self, key: str) -> dict | None:
        return self.cache.build_failure(self.fp, key)

    def record_build_failure(self, key: str, info: dict) -> None:
        self.cache.record_build_failure(self.fp, key, info)

    def build_failures(self) -> dict[str, dict]:
        return self.cache.build_failures(self.fp)
