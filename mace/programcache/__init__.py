"""The compiled program cache file `mace-cl-compiled-program.bin` (docs/program-cache-format.md).

    fp = DeviceFingerprint.from_cl_device(device)
    cache = ProgramCache.open(path_or_bytes_or_None, device_fp=fp)   # never raises
    blob = cache.get_binary(fp, program_key(name, options, source))
    ...
    cache.put_binary(fp, key, blob); cache.save()                     # never raises
"""
from __future__ import annotations

from mace.programcache.errors import (
                                      CacheOutOfResources,
                                      DamagedEntry,
                                      Finding,
                                      MagicMismatch,
                                      ProgramCacheError,
                                      VersionMismatch,
                                      XiaomiFormatError,
)
from mace.programcache.fingerprint import DeviceFingerprint
from mace.programcache.report import LoadReport
from mace.programcache.settings import default_cache_path
from mace.programcache.store import ProgramCache, program_key

__all__ = ["ProgramCache", "DeviceFingerprint", "program_key", "LoadReport", "Finding",
           "ProgramCacheError", "MagicMismatch", "VersionMismatch", "CacheOutOfResources",
           "DamagedEntry", "XiaomiFormatError", "default_cache_path"]
