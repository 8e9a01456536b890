"""The trust decision of one opened cache: which of its binaries may reach a driver.

Taken once, when the store opens a file (or bytes): the location (trust.py) and the section
signatures (signing.py) are checked then, and every later question is a lookup. A binary is
trusted when this process built it, when a valid signature by a trusted key lists its digest,
or when the location is trusted and the binary carries no origin mark (`meta["origin"]`: it
was pulled from a board or merged from an untrusted file).
"""
from __future__ import annotations

from mace.programcache.errors import SIGNATURE_INVALID, UNTRUSTED, Finding
from mace.programcache.format import CacheData, ProgramEntry
from mace.programcache.trust import Location

ORIGIN = "origin"        # meta field of a binary that was not built on this machine


class TrustDecision:
    def __init__(self, location: Location, data: CacheData, name: str):
        self.location, self.name = location, name
        self.local: set[tuple[str, str]] = set()     # built by this process
        self.findings: list[Finding] = []
        self.sigs: dict = {}                          # fp_id -> signing.SectionSignatures
        if data.signatures:                           # cryptography is imported only then
            from mace.programcache import signing
            keys = signing.load_trusted_keys()
            self.findings += [Finding(UNTRUSTED, p, severity="warning") for p in keys.problems]
            self.sigs = signing.check_sections(data, keys)
            for fp_id, s in sorted(self.sigs.items()):
                if s.notes and not s.signed_by:
                    self.findings.append(Finding(SIGNATURE_INVALID, f"{name}: section {fp_id}: "
                                                 + "; ".join(s.notes), severity="warning"))

    def state(self, fp_id: str) -> str:
        """'signed' (by a trusted key), 'unknown-key', 'bad-signature' or 'unsigned'."""
        s = self.sigs.get(fp_id)
        return s.state() if s is not None else "unsigned"

    def binary(self, e: ProgramEntry) -> bool:
        if (e.fp_id, e.key) in self.local:
            return True
        s = self.sigs.get(e.fp_id)
        if s is not None and f"{e.key}:{e.sha256.hex()}" in s.covered["programs"]:
            return True
        return self.location.trusted and ORIGIN not in e.meta

    def report(self, data: CacheData) -> dict:
        loc = self.location
        return {"location": "trusted" if loc.trusted else "untrusted", "reason": loc.reason,
                "sections": {f: self.state(f) for f in sorted(data.sections)}}

    def device_finding(self, data: CacheData, fp_id: str) -> Finding | None:
        """The one line saying why binaries of section `fp_id` will be rebuilt, if any are."""
        mine = [e for (f, _), e in data.programs.items() if f == fp_id]
        bad = [e for e in mine if not self.binary(e)]
        if not bad:
            return None
        pulled = [e for e in bad if ORIGIN in e.meta]
        why = [] if self.location.trusted else [f"not trusted by location: {self.location.reason}"]
        if pulled:
            why.append(f"{len(pulled)} came from elsewhere ({pulled[0].meta[ORIGIN]})")
        return Finding(UNTRUSTED, (
            f"{self.name}: {len(bad)} of the {len(mine)} cached binaries for this device are not "
            f"trusted ({'; '.join(why)}) and carry no valid signature from a trusted key: they are "
            f"rebuilt from source (tuning records are still used after range checks): keep the "
            f"cache where only you can write it, or sign it (`mace cache sign`)"), severity="warning")


__all__ = ["TrustDecision", "ORIGIN"]
