"""Read-only readers for Xiaomi MACE's `mace_cl_compiled_program.bin` (mace-reference.md 1.7).

- legacy (MACE <= v1.0.4): i64 count, then count x (i32 key_len, key, i32 value_len, value), LE,
  no magic, no checksum;
- v1.1+: protobuf PairContainer {repeated KVPair pairs = 1}, KVPair {string key = 1;
  bytes bytes_value = 2; repeated uint32 uint32s_value = 3}, then the LE CRC-32 (zlib.crc32)
  of the preceding bytes.

The protobuf wire format is parsed by hand (varints and length-delimited fields only need a few
lines) with every length checked against the bytes that remain. Parsers return a `XiaomiFile`
or raise `XiaomiFormatError`; nothing else escapes them. Their binaries are never loaded: the
files carry no device fingerprint we could check.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from mace.programcache.errors import XiaomiFormatError
from mace.programcache.reader import Reader, Truncated

PLATFORM_INFO_KEY = "mace_opencl_precompiled_platform_info_key"
DEVICE_NAME_KEY = "mace_opencl_precompiled_device_name_key"
PROGRAM_HASH_PREFIX = "program_hash_ "
LEGACY, PB_CRC = "mace-legacy", "mace-pb-crc"


@dataclass
class XiaomiFile:
    format: str                                   # LEGACY or PB_CRC
    entries: dict[str, bytes] = field(default_factory=dict)
    uint32s: dict[str, list[int]] = field(default_factory=dict)   # tuned-parameter files
    crc_ok: bool | None = None                    # None for the legacy format (no CRC)

    def _text(self, key: str) -> str | None:
        raw = self.entries.get(key)
        return None if raw is None else raw.decode("utf-8", "replace")

    @property
    def platform_info(self) -> str | None:
        """'<platform name>, <profile>, <CL_PLATFORM_VERSION>, <MACE version>' of the writer."""
        return self._text(PLATFORM_INFO_KEY)

    @property
    def device_name(self) -> str | None:
        return self._text(DEVICE_NAME_KEY)

    @property
    def programs(self) -> dict[str, bytes]:
        """Program key -> binary, without the special keys and the source-hash entries."""
        return {k: v for k, v in self.entries.items()
                if k not in (PLATFORM_INFO_KEY, DEVICE_NAME_KEY)
                and not k.startswith(PROGRAM_HASH_PREFIX)}

    @property
    def program_hashes(self) -> dict[str, str]:
        n = len(PROGRAM_HASH_PREFIX)
        return {k[n:]: v.decode("utf-8", "replace") for k, v in self.entries.items()
                if k.startswith(PROGRAM_HASH_PREFIX)}


# {{{ legacy layout

def parse_legacy(buf: bytes | memoryview, name: str = "<bytes>") -> XiaomiFile:
    """The parse must consume the file exactly: that is the only evidence this layout has."""
    r = Reader(memoryview(buf))
    out = XiaomiFile(LEGACY)
    try:
        count = r.i64()
        if count < 0 or count * 8 > r.remaining:
            raise XiaomiFormatError(f"{name}: legacy entry count {count} cannot fit in "
                                    f"{r.remaining} bytes")
        for _ in range(count):
            key = r.take(_length(r.i32(), name)).decode("utf-8", "replace")
            out.entries[key] = r.take(_length(r.i32(), name))
    except Truncated as exc:
        raise XiaomiFormatError(f"{name}: not a Xiaomi MACE legacy file ({exc})") from None
    if r.remaining:
        raise XiaomiFormatError(f"{name}: {r.remaining} bytes after the last legacy entry")
    return out


def _length(n: int, name: str) -> int:
    if n < 0:
        raise XiaomiFormatError(f"{name}: negative length {n}")
    return n

# }}}


# {{{ protobuf + CRC layout

def _varint(r: Reader) -> int:
    value = 0
    for shift in range(0, 70, 7):
        byte = r.take(1)[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >> 64:
                raise XiaomiFormatError("varint larger than 64 bits")
            return value
    raise XiaomiFormatError("varint longer than 10 bytes")


def _fields(r: Reader):
    """Yield (field number, wire type, int | bytes) until the reader's end."""
    while r.remaining:
        tag = _varint(r)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise XiaomiFormatError("protobuf field number 0")
        if wire == 0:
            yield number, wire, _varint(r)
        elif wire == 1:
            yield number, wire, r.u64()
        elif wire == 2:
            yield number, wire, r.take(_varint(r))   # bounded by Reader.take
        elif wire == 5:
            yield number, wire, r.u32()
        else:
            raise XiaomiFormatError(f"protobuf wire type {wire} (groups are not used by MACE)")


def _pair(raw: bytes, out: XiaomiFile) -> None:
    key, value, ints = None, b"", []
    for number, wire, val in _fields(Reader(raw)):
        if number == 1 and wire == 2:
            key = val.decode("utf-8", "replace")
        elif number == 2 and wire == 2:
            value = val
        elif number == 3 and wire == 0:
            ints.append(val & 0xFFFFFFFF)
        elif number == 3 and wire == 2:            # packed, in case a writer packs them
            packed = Reader(val)
            while packed.remaining:
                ints.append(_varint(packed) & 0xFFFFFFFF)
    if key is None:
        raise XiaomiFormatError("KVPair without a key")
    out.entries[key] = value
    if ints:
        out.uint32s[key] = ints


def parse_pb(buf: bytes | memoryview, name: str = "<bytes>") -> XiaomiFile:
    """The PairContainer alone (no trailing CRC)."""
    out = XiaomiFile(PB_CRC)
    try:
        for number, wire, val in _fields(Reader(memoryview(buf))):
            if number == 1 and wire == 2:
                _pair(val, out)
    except Truncated as exc:
        raise XiaomiFormatError(f"{name}: not a Xiaomi MACE protobuf file ({exc})") from None
    except XiaomiFormatError as exc:
        raise XiaomiFormatError(f"{name}: not a Xiaomi MACE protobuf file ({exc.message})") from None
    return out


def parse_pb_crc(buf: bytes | memoryview, name: str = "<bytes>", check_crc: bool = True) -> XiaomiFile:
    """PairContainer + LE CRC-32. A bad CRC raises XiaomiFormatError (as MACE refuses the file)
    unless check_crc is False, when the result says crc_ok=False."""
    mv = memoryview(buf)
    if len(mv) < 4:
        raise XiaomiFormatError(f"{name}: {len(mv)} bytes cannot hold a CRC-32")
    crc_ok = zlib.crc32(mv[:-4]) == struct.unpack_from("<I", mv, len(mv) - 4)[0]
    if check_crc and not crc_ok:
        raise XiaomiFormatError(f"CRC32 value of {name} is invalid: the file is damaged")
    out = parse_pb(mv[:-4], name)
    out.crc_ok = crc_ok
    return out

# }}}


def sniff(buf: bytes | memoryview, name: str = "<bytes>") -> XiaomiFile | None:
    """Recognize either Xiaomi layout; None when it is neither. A protobuf file with a bad CRC
    is recognized (crc_ok=False) when its pairs parse and carry printable keys."""
    mv = memoryview(buf)
    if len(mv) >= 4 and zlib.crc32(mv[:-4]) == struct.unpack_from("<I", mv, len(mv) - 4)[0]:
        try:
            return parse_pb_crc(mv, name)
        except XiaomiFormatError:
            pass
    try:
        return parse_legacy(mv, name)
    except XiaomiFormatError:
        pass
    try:
        found = parse_pb_crc(mv, name, check_crc=False)
    except XiaomiFormatError:
        return None
    if found.entries and all(k and k.isprintable() and "\ufffd" not in k for k in found.entries):
        return found
    return None
