"""The load report: what one engine init got from the program cache, as an object and one line."""
from __future__ import annotations

from dataclasses import dataclass, field

from mace.programcache.errors import Finding


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


@dataclass
class LoadReport:
    path: str = ""
    source: str = "none"          # "file" | "bytes" | "none"
    format: str = "missing"       # "mace" | "mace-legacy" | "mace-pb-crc" | "unknown" | "missing"
    from_cache: int = 0
    compiled: int = 0
    shared: int = 0               # built earlier in this process (another engine): not built again
    rejected: list[tuple[str, str, str]] = field(default_factory=list)   # (key, code, message)
    findings: list[Finding] = field(default_factory=list)
    bytes_read: int = 0
    load_seconds: float = 0.0
    tuning_hits: int = 0
    tuning_misses: int = 0
    untrusted: int = 0            # cached binaries not handed to the driver: not trusted
    trust: dict = field(default_factory=dict)   # location and signature state (trust decision)

    # the engine counts what it did with each program
    def note_from_cache(self, key: str) -> None:
        self.from_cache += 1

    def note_compiled(self, key: str) -> None:
        self.compiled += 1

    def note_shared(self, key: str) -> None:
        self.shared += 1

    def note_rejected(self, key: str, code: str, message: str) -> None:
        """A cached binary the driver refused; the engine then compiles it (note_compiled)."""
        self.rejected.append((key, code, message))

    def summary_line(self) -> str:
        """e.g. 'program cache /p/x.bin: 38/40 programs from cache, 2 compiled, 0 rejected
        (1.2 MB read in 3 ms)'."""
        where = self.path if self.source == "file" else f"<{self.source}>"
        total = self.from_cache + self.compiled
        line = (f"program cache {where}: {self.from_cache}/{total} programs from cache, "
                f"{self.compiled} compiled, {len(self.rejected)} rejected"
                + (f", {self.untrusted} untrusted" if self.untrusted else "") + " "
                + (f"({self.shared} more shared with engines of this process) " if self.shared else "")
                + f"({human_bytes(self.bytes_read)} read in {self.load_seconds * 1e3:.0f} ms)")
        if self.tuning_hits or self.tuning_misses:
            line += (f"; tuning {self.tuning_hits}/{self.tuning_hits + self.tuning_misses} "
                     f"launches from records")
        problems = [f.code for f in self.findings if f.severity in ("error", "warning")]
        if problems:
            line += "; " + ", ".join(sorted(set(problems)))
        return line

    def to_dict(self) -> dict:
        return {"path": self.path, "source": self.source, "format": self.format,
                "from_cache": self.from_cache, "compiled": self.compiled, "shared": self.shared,
                "rejected": [{"key": k, "code": c, "message": m} for k, c, m in self.rejected],
                "findings": [f.to_dict() for f in self.findings],
                "bytes_read": self.bytes_read, "load_seconds": self.load_seconds,
                "tuning_hits": self.tuning_hits, "tuning_misses": self.tuning_misses,
                "untrusted": self.untrusted, "trust": self.trust}
