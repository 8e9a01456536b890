"""Encode and decode `mace-cl-compiled-program.bin` (docs/program-cache-format.md is the spec).

`decode` either returns a `Decoded` (with findings for every record it dropped) or raises a
typed `ProgramCacheError` (`MagicMismatch`, `VersionMismatch`); nothing else escapes it, and no
length field is trusted before it is checked against the bytes that remain.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field

from mace.programcache.errors import DAMAGED_ENTRY, Finding, MagicMismatch, ProgramCacheError, VersionMismatch
from mace.programcache.fingerprint import DeviceFingerprint, fingerprint_id
from mace.programcache.reader import Reader, Truncated

MAGIC = b"MACECLPC"
FORMAT_MAJOR = 1
FORMAT_MINOR = 2                          # 1.1: device capabilities, build failures; 1.2: SIGN
MIN_READER_MAJOR = 1
MAX_WRITER_LEN = 255
MAX_HEADER_LEN = 65536
_FIXED = struct.Struct("<8sHHHHIIQ")      # magic .. body_len: 32 bytes
HEADER_MIN = _FIXED.size + 4              # + header CRC
_FRAME = struct.Struct("<4sIQ")           # tag, crc32(payload), payload_len
TAG_DEVICE, TAG_PROGRAM, TAG_TUNING, TAG_QUARANTINE = b"DEVC", b"PROG", b"TUNE", b"QUAR"
TAG_CAPS, TAG_BUILD_FAILURE = b"CAPS", b"BFAI"
#: the key of a section's one capabilities record
CAPS_KEY = "device-caps"
#: the keyed JSON record kinds of a section, in file order: (tag, CacheData attribute)
_JSON_TABLES = ((TAG_TUNING, "tuning"), (TAG_CAPS, "caps"), (TAG_BUILD_FAILURE, "build_failures"))
TAG_SIGNATURE = b"SIGN"
SIGNATURE_LEN = 64                        # Ed25519


# {{{ the in-memory model

@dataclass
class ProgramEntry:
    fp_id: str
    key: str
    blob: bytes
    sha256: bytes
    created_ns: int
    last_used_ns: int
    hit_count: int = 0
    meta: dict = field(default_factory=dict)
    verified: bool = False       # SHA-256 checked in this process (not stored)

    def blob_ok(self) -> bool:
        if not self.verified:
            self.verified = hashlib.sha256(self.blob).digest() == self.sha256
        return self.verified


@dataclass
class TuningEntry:
    """A JSON record keyed within a device section: a tuning record, the section's device
    capabilities (key CAPS_KEY) or a build failure (key: the program key)."""
    fp_id: str
    key: str
    record: dict
    updated_ns: int


@dataclass
class QuarantineEntry:
    fp_id: str
    key: str
    reason: str
    time_ns: int
    sha256_hex: str = ""


@dataclass
class SignatureEntry:
    """An Ed25519 signature of one device section by one key (mace/programcache/signing.py
    builds and checks the manifest; here it is only bytes)."""

    fp_id: str
    key_id: str                  # 16 hex chars of sha256(raw public key)
    manifest: str                # canonical JSON: device fields, program and tuning digests
    signature: bytes             # 64 bytes over signing.MESSAGE_PREFIX + manifest
    signed_ns: int

    @property
    def key(self) -> str:        # decode() names records by their key
        return self.key_id


@dataclass
class CacheData:
    sections: dict[str, DeviceFingerprint] = field(default_factory=dict)
    programs: dict[tuple[str, str], ProgramEntry] = field(default_factory=dict)
    tuning: dict[tuple[str, str], TuningEntry] = field(default_factory=dict)
    quarantine: dict[tuple[str, str], QuarantineEntry] = field(default_factory=dict)
    #: what the device can do, probed once per fingerprint (mace/runtime/opencl/caps.py)
    caps: dict[tuple[str, str], TuningEntry] = field(default_factory=dict)
    #: programs that failed to build or to create a kernel on a device: not tried again there
    build_failures: dict[tuple[str, str], TuningEntry] = field(default_factory=dict)
    signatures: dict[tuple[str, str], SignatureEntry] = field(default_factory=dict)  # (fp_id, key_id)


@dataclass
class Header:
    format_major: int
    format_minor: int
    min_reader_major: int
    writer: str
    header_len: int
    record_count: int
    body_len: int

    @property
    def newer_than_reader(self) -> bool:
        return (self.format_major, self.format_minor) > (FORMAT_MAJOR, FORMAT_MINOR)

    def to_dict(self) -> dict:
        return {"format": f"{self.format_major}.{self.format_minor}",
                "min_reader_major": self.min_reader_major, "writer": self.writer,
                "header_len": self.header_len, "record_count": self.record_count,
                "body_len": self.body_len}


@dataclass
class Decoded:
    header: Header
    data: CacheData
    findings: list[Finding] = field(default_factory=list)
    records: int = 0
    skipped_unknown: int = 0

# }}}


# {{{ encoding

def _s16(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError(f"string of {len(raw)} bytes does not fit a str16 field: {text[:60]}...")
    return struct.pack("<H", len(raw)) + raw


def _s32(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def _json(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _frame(tag: bytes, parts: list[bytes]) -> list[bytes]:
    crc, size = 0, 0
    for p in parts:
        crc, size = zlib.crc32(p, crc), size + len(p)
    return [_FRAME.pack(tag, crc, size), *parts]


def device_record(fp: DeviceFingerprint) -> list[bytes]:
    items = [(k, str(v)) for k, v in fp.to_dict().items()]
    body = [_s16(fp.id), struct.pack("<H", len(items))]
    body += [_s16(k) + _s16(v) for k, v in items]
    return _frame(TAG_DEVICE, body)


def program_record(e: ProgramEntry) -> list[bytes]:
    head = (_s16(e.fp_id) + _s16(e.key) + struct.pack("<QQQ", e.created_ns, e.last_used_ns,
            e.hit_count) + _s32(_json(e.meta)) + e.sha256 + struct.pack("<Q", len(e.blob)))
    return _frame(TAG_PROGRAM, [head, e.blob])


def tuning_record(t: TuningEntry, tag: bytes = TAG_TUNING) -> list[bytes]:
    """A keyed JSON record: tuning (TUNE), capabilities (CAPS) or a build failure (BFAI)."""
    return _frame(tag, [_s16(t.fp_id) + _s16(t.key) + struct.pack("<Q", t.updated_ns)
                        + _s32(_json(t.record))])


def quarantine_record(q: QuarantineEntry) -> list[bytes]:
    return _frame(TAG_QUARANTINE, [_s16(q.fp_id) + _s16(q.key) + struct.pack("<Q", q.time_ns)
                                   + _s16(q.sha256_hex) + _s32(q.reason)])


def signature_record(g: SignatureEntry) -> list[bytes]:
    return _frame(TAG_SIGNATURE, [_s16(g.fp_id) + _s16(g.key_id) + struct.pack("<Q", g.signed_ns)
                                  + _s32(g.manifest) + g.signature])


def record_size(parts: list[bytes]) -> int:
    return sum(len(p) for p in parts)


def program_record_size(e: ProgramEntry) -> int:
    """Bytes the entry takes in the file, without building it."""
    return (_FRAME.size + 2 + len(e.fp_id.encode()) + 2 + len(e.key.encode()) + 24 + 4
            + len(_json(e.meta).encode()) + 32 + 8 + len(e.blob))


def default_writer() -> str:
    from mace import __version__
    return f"mace {__version__}"


def encode_header(record_count: int, body_len: int, writer: str | None = None) -> bytes:
    raw = (writer if writer is not None else default_writer()).encode("utf-8")[:MAX_WRITER_LEN]
    fixed = _FIXED.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, MIN_READER_MAJOR, len(raw),
                        HEADER_MIN + len(raw), record_count, body_len)
    head = fixed + raw
    return head + struct.pack("<I", zlib.crc32(head))


def encode(data: CacheData, writer: str | None = None) -> bytes:
    """The whole file. Sections sorted by fingerprint id, each followed by its programs, tuning
    records and signatures sorted by key; the quarantine list last. Entries whose section is
    absent are not written."""
    by_section: dict[str, list[list[bytes]]] = {fp_id: [] for fp_id in data.sections}
    for (f, _), e in sorted(data.programs.items()):
        if f in by_section:
            by_section[f].append(program_record(e))
    for tag, table in _JSON_TABLES:
        for (f, _), t in sorted(getattr(data, table).items()):
            if f in by_section:
                by_section[f].append(tuning_record(t, tag))
    for (f, _), g in sorted(data.signatures.items()):
        if f in by_section:
            by_section[f].append(signature_record(g))
    records: list[list[bytes]] = []
    for fp_id in sorted(data.sections):
        records += [device_record(data.sections[fp_id]), *by_section[fp_id]]
    records += [quarantine_record(q) for (f, _), q in sorted(data.quarantine.items())
                if f in data.sections]
    body_len = sum(record_size(r) for r in records)
    return b"".join([encode_header(len(records), body_len, writer), *(p for r in records for p in r)])

def encoded_size(data: CacheData, writer: str | None = None) -> int:
    """len(encode(data, writer)), without building the file."""
    raw = (writer if writer is not None else default_writer()).encode("utf-8")[:MAX_WRITER_LEN]
    size = HEADER_MIN + len(raw)
    size += sum(record_size(device_record(fp)) for fp in data.sections.values())
    size += sum(program_record_size(e) for (f, _), e in data.programs.items() if f in data.sections)
    size += sum(record_size(tuning_record(t, tag)) for tag, table in _JSON_TABLES
                for (f, _), t in getattr(data, table).items() if f in data.sections)
    size += sum(record_size(quarantine_record(q)) for (f, _), q in data.quarantine.items()
                if f in data.sections)
    size += sum(record_size(signature_record(g)) for (f, _), g in data.signatures.items()
                if f in data.sections)
    return size


# }}}


# {{{ decoding

def magic_message(name: str, detail: str = "") -> str:
    what = f" ({detail})" if detail else ""
    return (f"Magic number mismatch: {name} is not a mace program cache or is corrupted{what}: "
            f"regenerate it with `mace convert --config ...` or delete it")


def version_message(name: str, writer: str, major: int, minor: int) -> str:
    return (f"Version mismatch: {name} was written by {writer or 'an unknown mace'} "
            f"(format {major}.{minor}); this mace reads format {FORMAT_MAJOR}: upgrade mace")


def decode_header(buf: bytes | memoryview, name: str = "<bytes>") -> Header:
    """Raises MagicMismatch or VersionMismatch; checks the version before the CRC, since only
    bytes 0..13 are frozen across versions."""
    mv = memoryview(buf)
    if len(mv) < 8 or bytes(mv[:8]) != MAGIC:
        raise MagicMismatch(magic_message(name, "empty file" if len(mv) == 0 else ""))
    if len(mv) < 14:
        raise MagicMismatch(magic_message(name, "header truncated"))
    major, minor, min_reader = struct.unpack_from("<HHH", mv, 8)
    if min_reader > FORMAT_MAJOR:
        writer = ""
        if len(mv) >= _FIXED.size:
            wlen = struct.unpack_from("<H", mv, 14)[0]
            writer = bytes(mv[_FIXED.size:_FIXED.size + min(wlen, MAX_WRITER_LEN)]).decode(
                "utf-8", "replace")
        raise VersionMismatch(version_message(name, writer, major, minor), found=(major, minor),
                              writer=writer)
    if len(mv) < HEADER_MIN:
        raise MagicMismatch(magic_message(name, "header truncated"))
    _, _, _, _, wlen, hlen, count, body_len = _FIXED.unpack_from(mv, 0)
    if wlen > MAX_WRITER_LEN or not HEADER_MIN + wlen <= hlen <= min(len(mv), MAX_HEADER_LEN):
        raise MagicMismatch(magic_message(name, "bad header lengths"))
    if zlib.crc32(mv[:hlen - 4]) != struct.unpack_from("<I", mv, hlen - 4)[0]:
        raise MagicMismatch(magic_message(name, "header checksum fails"))
    writer = bytes(mv[_FIXED.size:_FIXED.size + wlen]).decode("utf-8", "replace")
    return Header(major, minor, min_reader, writer, hlen, count, body_len)


def _damaged(name: str, what: str, why: str, key: str | None = None) -> Finding:
    return Finding(DAMAGED_ENTRY, f"Damaged entry in {name}: {what} ({why}): dropped, it will be "
                   f"rebuilt", severity="warning", key=key)


def _peek_key(payload: memoryview) -> str | None:
    """Best effort: the fingerprint id and key at the start of a damaged record."""
    try:
        r = Reader(payload)
        r.skip(r.u16())
        return r.take(r.u16()).decode("utf-8", "replace")
    except Truncated:
        return None


def _json_dict(text: str) -> dict:
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError("JSON value is not an object")
    return obj


def _parse_device(r: Reader) -> DeviceFingerprint:
    fp_id = r.str16()
    count = r.u16()
    if count * 4 > r.remaining:
        raise Truncated(f"{count} fields cannot fit in {r.remaining} bytes")
    values = {}
    for _ in range(count):
        k = r.str16()
        values[k] = r.str16()
    if fingerprint_id(values) != fp_id:
        raise ValueError(f"fingerprint id {fp_id} does not match its fields")
    return DeviceFingerprint.from_dict(values)


def _parse_program(r: Reader) -> ProgramEntry:
    fp_id, key = r.str16(), r.str16()
    created, last_used, hits = r.u64(), r.u64(), r.u64()
    meta = _json_dict(r.str32())
    sha = r.take(32)
    blob = r.blob64()
    return ProgramEntry(fp_id, key, blob, sha, created, last_used, hits, meta)


def _parse_tuning(r: Reader) -> TuningEntry:
    fp_id, key, updated = r.str16(), r.str16(), r.u64()
    return TuningEntry(fp_id, key, _json_dict(r.str32()), updated)


def _parse_quarantine(r: Reader) -> QuarantineEntry:
    fp_id, key, when = r.str16(), r.str16(), r.u64()
    sha_hex = r.str16()
    return QuarantineEntry(fp_id, key, r.str32(), when, sha_hex)


def _parse_signature(r: Reader) -> SignatureEntry:
    fp_id, key_id, when = r.str16(), r.str16(), r.u64()
    manifest = r.str32()
    return SignatureEntry(fp_id, key_id, manifest, r.take(SIGNATURE_LEN), when)


_PARSERS = {TAG_DEVICE: _parse_device, TAG_PROGRAM: _parse_program, TAG_TUNING: _parse_tuning,
            TAG_QUARANTINE: _parse_quarantine, TAG_CAPS: _parse_tuning,
            TAG_BUILD_FAILURE: _parse_tuning, TAG_SIGNATURE: _parse_signature}
_WHAT = {TAG_DEVICE: "device section", TAG_PROGRAM: "program", TAG_TUNING: "tuning record",
         TAG_QUARANTINE: "quarantine record", TAG_CAPS: "device capabilities",
         TAG_BUILD_FAILURE: "build failure record", TAG_SIGNATURE: "signature"}


def decode(buf: bytes | bytearray | memoryview, name: str = "<bytes>") -> Decoded:
    """Parse a whole file. Raises MagicMismatch / VersionMismatch for an unusable header;
    every damaged or orphaned record is dropped alone with a DAMAGED_ENTRY finding."""
    mv = memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)
    header = decode_header(mv, name)
    out = Decoded(header, CacheData())
    body_end = header.header_len + header.body_len
    if body_end > len(mv):
        out.findings.append(_damaged(name, "the file", f"truncated: {len(mv)} of {body_end} "
                                     f"bytes present; the records before the cut are kept"))
    elif body_end < len(mv):
        out.findings.append(Finding(DAMAGED_ENTRY, f"{name} has {len(mv) - body_end} bytes after "
                                    f"its last record: ignored", severity="info"))
    r = Reader(mv, header.header_len, min(body_end, len(mv)))
    parsed: list[tuple[bytes, object]] = []
    while r.remaining:
        start = r.pos
        try:
            tag, crc, plen = r.take(4), r.u32(), r.u64()
            payload = mv[r.pos:r.pos + plen] if plen <= r.remaining else None
            if payload is None:
                raise Truncated(f"record at offset {start} claims {plen} bytes, "
                                f"{r.remaining} left")
            r.skip(plen)
        except Truncated as exc:
            out.findings.append(_damaged(name, f"the records from offset {start} on", str(exc)))
            break
        out.records += 1
        if tag not in _PARSERS:
            out.skipped_unknown += 1
            continue
        key = _peek_key(payload) if tag != TAG_DEVICE else None
        what = f"{_WHAT[tag]} {key}" if key else _WHAT[tag]
        if zlib.crc32(payload) != crc:
            out.findings.append(_damaged(name, what, "checksum mismatch", key))
            continue
        try:
            sub = Reader(payload)
            obj = _PARSERS[tag](sub)
            if sub.remaining:
                raise ValueError(f"{sub.remaining} stray bytes")
            parsed.append((tag, obj))
        except (Truncated, ValueError, RecursionError) as exc:  # Unicode and JSON errors too
            out.findings.append(_damaged(name, what, f"bad framing: {exc}", key))
    if out.records < header.record_count and body_end <= len(mv):
        out.findings.append(_damaged(name, "the file", f"{header.record_count - out.records} of "
                                     f"{header.record_count} records missing"))
    _assemble(out, parsed, name)
    return out


def _assemble(out: Decoded, parsed: list[tuple[bytes, object]], name: str) -> None:
    data = out.data
    for tag, obj in parsed:
        if tag == TAG_DEVICE:
            data.sections[obj.id] = obj
    for tag, obj in parsed:
        if tag == TAG_DEVICE:
            continue
        if obj.fp_id not in data.sections:
            out.findings.append(_damaged(name, f"{_WHAT[tag]} {obj.key}",
                                         f"its device section {obj.fp_id} is missing", obj.key))
            continue
        target = {TAG_PROGRAM: data.programs, TAG_TUNING: data.tuning,
                  TAG_QUARANTINE: data.quarantine, TAG_CAPS: data.caps,
                  TAG_BUILD_FAILURE: data.build_failures, TAG_SIGNATURE: data.signatures}[tag]
        target[(obj.fp_id, obj.key)] = obj


def try_decode(buf: bytes, name: str = "<bytes>") -> tuple[Decoded | None, ProgramCacheError | None]:
    try:
        return decode(buf, name), None
    except ProgramCacheError as exc:
        return None, exc

# }}}
