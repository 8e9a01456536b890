"""Building OpenCL programs ourselves, through our program cache (never PyOpenCL's hidden one).

Order per program key: binary from the cache (only when the cache section's fingerprint equals
this device and the entry's checksum holds) -> source. A binary the driver rejects is
quarantined for this device and the program is compiled from source. Binaries of programs built
from source are harvested after the first run, because PoCL and some mobile drivers finish code
generation at the first launch; `harvest()` puts them in the cache and `save()` merges the file.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pyopencl as cl

log = logging.getLogger("mace.opencl")

OPS_DIR = Path(__file__).parent / "ops"
BASE_OPTIONS = ["-cl-mad-enable"]
_SOURCES: dict[str, str] = {}
_KEYS: dict[tuple, str] = {}


_INCLUDE = re.compile(r'^#include "(\w+\.h)"$', re.M)


def program_source(name: str) -> str:
    """The source of `ops/<name>.cl`, prefixed by `ops/common.h`, with `#include "x.h"` lines
    replaced by `ops/x.h` (so every header is part of the source hash, hence of the key)."""
    if name not in _SOURCES:
        common = (OPS_DIR / "common.h").read_text()
        body = _INCLUDE.sub(lambda m: (OPS_DIR / m.group(1)).read_text(), (OPS_DIR / f"{name}.cl").read_text())
        _SOURCES[name] = common + "\n#line 1\n" + body
    return _SOURCES[name]


class ProgramBuilder:
    """One per engine: builds each (program, options) once, from the cache when possible."""

    def __init__(self, ctx: cl.Context, device: cl.Device, cache=None, fingerprint=None,
                 force_source: set[str] | None = None):
        self.ctx, self.device = ctx, device
        # keys to rebuild from source even when cached (after tuning: binaries without the
        # work-group functions of discarded local sizes)
        self.force_source = set(force_source or ())
        self.cache, self.fingerprint = cache, fingerprint
        self._built: dict[str, cl.Program] = {}
        self._from_source: dict[str, cl.Program] = {}
        self.compile_seconds = 0.0
        self.keys: list[str] = []

    def key(self, name: str, options: list[str]) -> str:
        memo = (name, tuple(sorted(set(options))))
        if memo not in _KEYS:  # the source hash is the costly part: once per process
            from mace.programcache import program_key
            _KEYS[memo] = program_key(name, list(memo[1]) + BASE_OPTIONS, program_source(name))
        return _KEYS[memo]

    def build(self, name: str, options: list[str]) -> cl.Program:
        options = sorted(set(options))
        key = self.key(name, options)
        if key in self._built:
            return self._built[key]
        opts = options + BASE_OPTIONS
        prog = None
        t0 = time.perf_counter()
        if self.cache is not None and key not in self.force_source:
            blob = self.cache.get_binary(self.fingerprint, key)
            if blob is not None:
                try:
                    prog = cl.Program(self.ctx, [self.device], [blob]).build(options=opts)
                    self.cache.report.note_from_cache(key)
                except (cl.Error, RuntimeError) as exc:
                    code = "CL_INVALID_BINARY"
                    log.warning("the driver rejected the cached binary of %s (%s): quarantined for this "
                                "device, compiling from source", name, str(exc).splitlines()[0][:120])
                    self.cache.quarantine(self.fingerprint, key, f"{code}: {str(exc).splitlines()[0][:200]}")
                    self.cache.report.note_rejected(key, code, str(exc).splitlines()[0][:200])
                    prog = None
        if prog is None:
            prog = cl.Program(self.ctx, program_source(name))
            try:
                prog.build(options=opts, devices=[self.device], cache_dir=False)
            except cl.RuntimeError as exc:
                raise RuntimeError(f"OpenCL program {name} failed to build with {opts}: {exc}") from None
            self._from_source[key] = prog
            if self.cache is not None:
                self.cache.report.note_compiled(key)
        self.compile_seconds += time.perf_counter() - t0
        self._built[key] = prog
        self.keys.append(key)
        return prog

    @property
    def pending(self) -> int:
        """Programs compiled from source whose binaries are not yet in the cache."""
        return len(self._from_source)

    def harvest(self) -> int:
        """Put binaries of programs built from source into the cache (call after a launch)."""
        if self.cache is None:
            return 0
        n = 0
        for key, prog in list(self._from_source.items()):
            try:
                blob = prog.get_info(cl.program_info.BINARIES)[0]
            except cl.Error as exc:
                log.debug("no binary for %s: %s", key, exc)
                continue
            if blob:
                self.cache.put_binary(self.fingerprint, key, bytes(blob))
                n += 1
        self._from_source.clear()
        return n
