"""Device fingerprints: what a compiled binary is valid for, as named fields.

Named fields (not one joined string, as Xiaomi MACE stores) so that a mismatch can say which
field differs. The id is a short digest over all fields; sections of the cache file are keyed
by it, and a section matches a device only when every field is equal.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields

FIELDS = ("platform_name", "platform_vendor", "platform_version", "device_name",
          "device_vendor", "device_version", "driver_version", "opencl_c_version",
          "address_bits", "extensions_hash")


def extensions_hash(extensions: str) -> str:
    """First 16 hex chars of the SHA-256 of the sorted, space-joined extension names."""
    return hashlib.sha256(" ".join(sorted(set(extensions.split()))).encode()).hexdigest()[:16]


def fingerprint_id(values: dict[str, str]) -> str:
    """First 16 hex chars of the SHA-256 of the canonical JSON of all fields (as strings)."""
    canon = json.dumps({k: str(v) for k, v in values.items()}, sort_keys=True,
                       separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class DeviceFingerprint:
    """The identity of an OpenCL device + driver for which a binary is valid."""

    platform_name: str = ""
    platform_vendor: str = ""
    platform_version: str = ""
    device_name: str = ""
    device_vendor: str = ""
    device_version: str = ""
    driver_version: str = ""
    opencl_c_version: str = ""
    address_bits: int = 0
    extensions_hash: str = ""
    # fields written by a newer mace that this one does not know: kept, and part of the id
    extra: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_cl_device(cls, dev) -> DeviceFingerprint:
        """Fingerprint of a pyopencl Device (cheap clGetPlatformInfo/clGetDeviceInfo queries)."""
        plat = dev.platform

        def q(obj, attr: str) -> str:
            try:
                return str(getattr(obj, attr)).strip()
            except Exception:  # an OpenCL 1.0 driver lacks some queries: keep the field empty
                return ""
        try:
            bits = int(dev.address_bits)
        except Exception:
            bits = 0
        return cls(platform_name=q(plat, "name"), platform_vendor=q(plat, "vendor"),
                   platform_version=q(plat, "version"), device_name=q(dev, "name"),
                   device_vendor=q(dev, "vendor"), device_version=q(dev, "version"),
                   driver_version=q(dev, "driver_version"),
                   opencl_c_version=q(dev, "opencl_c_version"), address_bits=bits,
                   extensions_hash=extensions_hash(q(dev, "extensions")))

    def to_dict(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {name: getattr(self, name) for name in FIELDS}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> DeviceFingerprint:
        """Inverse of to_dict; values may all be strings (as stored). Unknown names go to
        `extra`. Raises ValueError for a non-integer address_bits."""
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: str(v) for k, v in values.items() if k in known}
        kwargs["address_bits"] = int(values.get("address_bits", 0) or 0)
        extra = tuple(sorted((str(k), str(v)) for k, v in values.items() if k not in known))
        return cls(**kwargs, extra=extra)

    @property
    def id(self) -> str:
        return fingerprint_id(self.to_dict())

    def short(self) -> str:
        """Human one-liner, e.g. 'pthread-Intel(R) Xeon(R) Processor, PoCL 3.0 driver 3.0-rc2 [1a2b3c4d]'."""
        return (f"{self.device_name or '?'}, {self.platform_name or '?'} "
                f"driver {self.driver_version or '?'} [{self.id[:8]}]")

    def differences(self, other: DeviceFingerprint) -> list[str]:
        """Names of the fields whose values differ (for 'which field changed?' messages)."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in dict.fromkeys([*a, *b]) if str(a.get(k, "")) != str(b.get(k, ""))]
