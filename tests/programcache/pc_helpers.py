"""Test-only helpers: synthetic fingerprints, a Xiaomi protobuf encoder, file builders."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

from mace.programcache import DeviceFingerprint

HERE = Path(__file__).resolve().parent
#: a real Xiaomi MACE cache file from a phone (a copy of shared/fixtures, kept with the tests)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEGACY_FIXTURE = FIXTURES / "mace_legacy_adreno.bin"


def make_fp(device: str = "Adreno(TM) 640", driver: str = "512.415", **over) -> DeviceFingerprint:
    fields = dict(platform_name="QUALCOMM Snapdragon(TM)", platform_vendor="QUALCOMM",
                  platform_version="OpenCL 2.0 QUALCOMM build", device_name=device,
                  device_vendor="QUALCOMM", device_version="OpenCL 2.0 " + device,
                  driver_version=driver, opencl_c_version="OpenCL C 2.0", address_bits=64,
                  extensions_hash="0123456789abcdef")
    fields.update(over)
    return DeviceFingerprint(**fields)


# {{{ a tiny protobuf encoder for Xiaomi's PairContainer (test-only)

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def ld(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def kv_pair(key: str, value: bytes = b"", uint32s: list[int] | None = None,
            packed: bool = False) -> bytes:
    body = ld(1, key.encode()) + (ld(2, value) if value else b"")
    if uint32s:
        if packed:
            body += ld(3, b"".join(varint(v) for v in uint32s))
        else:
            body += b"".join(varint(3 << 3 | 0) + varint(v) for v in uint32s)
    return body


def pb_file(pairs: list[bytes], crc: bool = True) -> bytes:
    container = b"".join(ld(1, p) for p in pairs)
    return container + struct.pack("<I", zlib.crc32(container) if crc else 0xDEADBEEF)


def legacy_file(entries: dict[str, bytes]) -> bytes:
    out = [struct.pack("<q", len(entries))]
    for k, v in entries.items():
        kb = k.encode()
        out += [struct.pack("<i", len(kb)), kb, struct.pack("<i", len(v)), v]
    return b"".join(out)

# }}}


def with_version(raw: bytes, major: int, minor: int, min_reader: int) -> bytes:
    """A copy of our file claiming another format version (header CRC fixed up)."""
    b = bytearray(raw)
    struct.pack_into("<HHH", b, 8, major, minor, min_reader)
    hlen = struct.unpack_from("<I", b, 16)[0]
    struct.pack_into("<I", b, hlen - 4, zlib.crc32(bytes(b[:hlen - 4])))
    return bytes(b)
