"""The compiled program cache file `mace-cl-compiled-program.bin` (docs/program-cache-format.md).

    fp = DeviceFingerprint.from_cl_device(device)
    cache = ProgramCache.open(path_or_bytes_or_None, device_fp=fp)   # never raises
    mine = cache.section(fp)                                          # this device's view
    blob = mine.get_binary(program_key(name, options, source))
    ...
    mine.put_binary(key, blob); cache.save()                          # never raises

Caches are merged by one policy (merge.py), files by `maintenance.merge_files`.
"""
from __future__ import annotations

from mace.programcache.errors import (
                                      CacheOutOfResources,
                                      CacheRefused,
                                      DamagedEntry,
                                      Finding,
                                      MagicMismatch,
                                      ProgramCacheError,
                                      VersionMismatch,
                                      XiaomiFormatError,
)
from mace.programcache.fingerprint import DeviceFingerprint
from mace.programcache.report import LoadReport
from mace.programcache.section import Section
from mace.programcache.settings import default_cache_path
from mace.programcache.store import ProgramCache, program_key

__all__ = ["ProgramCache", "Section", "DeviceFingerprint", "program_key", "LoadReport", "Finding",
           "ProgramCacheError", "CacheRefused", "MagicMismatch", "VersionMismatch", "CacheOutOfResources",
           "DamagedEntry", "XiaomiFormatError", "default_cache_path"]
