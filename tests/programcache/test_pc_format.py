"""The byte layout: golden header, round trip, and every way a file can be damaged."""
from __future__ import annotations

import hashlib
import struct
import zlib

import pytest
from pc_helpers import make_fp, with_version

from mace.programcache import MagicMismatch, VersionMismatch
from mace.programcache import format as F

GOLDEN_EMPTY = bytes.fromhex(
    "4d414345434c5043"      # magic MACECLPC
    "0100" "0200" "0100"    # format 1.2, min reader 1
    "0a00"                  # writer_len 10
    "2e000000"              # header_len 46
    "00000000"              # record_count 0
    "0000000000000000"      # body_len 0
    "6d61636520302e312e30"  # "mace 0.1.0"
    "5b1812f8")             # header CRC-32


def test_golden_empty_header():
    """Changing the header layout must come with a format version bump (and a new golden)."""
    assert (F.FORMAT_MAJOR, F.FORMAT_MINOR, F.MIN_READER_MAJOR) == (1, 2, 1)
    assert F.encode(F.CacheData(), writer="mace 0.1.0") == GOLDEN_EMPTY
    dec = F.decode(GOLDEN_EMPTY)
    assert dec.header.writer == "mace 0.1.0" and dec.findings == [] and dec.records == 0


def test_golden_header_is_documented():
    from pc_helpers import HERE
    doc = (HERE.parents[1] / "docs" / "program-cache-format.md").read_text()
    dump = "4d41 4345 434c 5043 0100 0200 0100 0a00"
    assert dump in doc and "5b18 12f8" in doc


def entry(fp, key, blob=b"\x01\x02", t=1_000, hits=0):
    return F.ProgramEntry(fp.id, key, blob, hashlib.sha256(blob).digest(), t, t, hits, {"log": "x"})


def sample_data():
    a, b = make_fp(driver="1"), make_fp(driver="2")
    d = F.CacheData()
    d.sections = {a.id: a, b.id: b}
    for fp in (a, b):
        for i in range(3):
            e = entry(fp, f"conv|-DX={i}|abcd", bytes([i]) * (100 + i), t=10 + i, hits=i)
            d.programs[(fp.id, e.key)] = e
    d.tuning[(a.id, "conv_1x1_8_8")] = F.TuningEntry(a.id, "conv_1x1_8_8", {"lws": [4, 4, 1],
                                                     "median_s": 1e-4, "samples": 9}, 123)
    d.quarantine[(b.id, "pool||ff")] = F.QuarantineEntry(b.id, "pool||ff", "CL_INVALID_BINARY", 7, "ab")
    return d


def test_round_trip():
    d = sample_data()
    raw = F.encode(d)
    assert len(raw) == F.encoded_size(d)
    dec = F.decode(raw)
    assert dec.findings == []
    assert dec.data.sections == d.sections
    assert set(dec.data.programs) == set(d.programs)
    for k, e in d.programs.items():
        got = dec.data.programs[k]
        assert (got.blob, got.sha256, got.created_ns, got.last_used_ns, got.hit_count, got.meta) == \
               (e.blob, e.sha256, e.created_ns, e.last_used_ns, e.hit_count, e.meta)
        assert got.blob_ok()
    assert dec.data.tuning == d.tuning
    assert dec.data.quarantine == d.quarantine
    assert F.encode(dec.data) == raw          # deterministic


def test_fingerprint_extra_fields_survive_and_count_in_id():
    fp = make_fp()
    newer = type(fp).from_dict({**fp.to_dict(), "compute_units": "6"})
    assert newer.id != fp.id and newer.extra == (("compute_units", "6"),)
    d = F.CacheData(sections={newer.id: newer})
    assert F.decode(F.encode(d)).data.sections[newer.id] == newer


def _records(raw):
    """(offset, tag, payload_len) of each record."""
    h = F.decode_header(raw)
    pos, out = h.header_len, []
    while pos < len(raw):
        tag, _, plen = struct.unpack_from("<4sIQ", raw, pos)
        out.append((pos, tag, plen))
        pos += 16 + plen
    return out


def test_damaged_program_is_dropped_alone():
    d = sample_data()
    raw = bytearray(F.encode(d))
    progs = [r for r in _records(bytes(raw)) if r[1] == b"PROG"]
    off, _, plen = progs[1]
    raw[off + 16 + plen - 1] ^= 0xFF        # flip the last blob byte of the 2nd program
    dec = F.decode(bytes(raw))
    assert len(dec.data.programs) == len(d.programs) - 1
    [finding] = dec.findings
    assert finding.code == "DAMAGED_ENTRY" and finding.key == "conv|-DX=1|abcd"
    assert "conv|-DX=1|abcd" in finding.message and "checksum" in finding.message


def test_damaged_section_orphans_its_entries_only():
    d = sample_data()
    raw = bytearray(F.encode(d))
    off, _, plen = [r for r in _records(bytes(raw)) if r[1] == b"DEVC"][0]
    raw[off + 16 + 5] ^= 0x01
    dec = F.decode(bytes(raw))
    assert len(dec.data.sections) == 1
    assert all(k[0] in dec.data.sections for k in dec.data.programs)
    assert len(dec.data.programs) == 3
    assert {f.code for f in dec.findings} == {"DAMAGED_ENTRY"}


def test_truncated_file_keeps_records_before_the_cut():
    raw = F.encode(sample_data())
    cut = _records(raw)[3][0] + 20
    dec = F.decode(raw[:cut])
    assert len(dec.data.programs) == 2       # DEVC, PROG, PROG intact, the 3rd cut
    assert any("truncated" in f.message for f in dec.findings)


def test_truncated_exactly_at_a_record_boundary_is_noticed():
    raw = F.encode(sample_data())
    dec = F.decode(raw[:_records(raw)[3][0]])
    assert any(f.code == "DAMAGED_ENTRY" for f in dec.findings)


def test_unknown_record_tag_is_skipped():
    payload = b"future"
    rec = struct.pack("<4sIQ", b"ZZZZ", zlib.crc32(payload), len(payload)) + payload
    d = sample_data()
    raw = F.encode(d)
    h = F.decode_header(raw)
    body = raw[h.header_len:] + rec
    raw2 = F.encode_header(h.record_count + 1, len(body)) + body
    dec = F.decode(raw2)
    assert dec.skipped_unknown == 1 and dec.findings == [] and len(dec.data.programs) == 6


def test_newer_unreadable_major_raises_version_mismatch():
    raw = with_version(F.encode(sample_data(), writer="mace 9.0.0"), 2, 0, 2)
    with pytest.raises(VersionMismatch) as exc:
        F.decode(raw, "/p/x.bin")
    msg = str(exc.value)
    assert msg.startswith("Version mismatch: /p/x.bin was written by mace 9.0.0 (format 2.0)")
    assert msg.endswith("this mace reads format 1: upgrade mace")


def test_newer_minor_is_readable():
    dec = F.decode(with_version(F.encode(sample_data()), 1, 3, 1))
    assert dec.header.newer_than_reader and len(dec.data.programs) == 6


@pytest.mark.parametrize("mutate, detail", [
    (lambda b: b"NOTACACH" + b[8:], ""),
    (lambda b: b[:10], "header truncated"),
    (lambda b: b[:30], "header truncated"),
    (lambda b: b[:20] + b"\xff" + b[21:], "header checksum fails"),
    (lambda b: b"", "empty file"),
])
def test_bad_header_is_magic_mismatch(mutate, detail):
    raw = mutate(F.encode(sample_data()))
    if raw[:8] != F.MAGIC:
        with pytest.raises(MagicMismatch):
            F.decode(raw)
        return
    with pytest.raises(MagicMismatch) as exc:
        F.decode(raw, "/p/x.bin")
    assert str(exc.value).startswith("Magic number mismatch: /p/x.bin is not a mace program cache")
    assert detail in str(exc.value)
    assert "`mace convert --config ...` or delete it" in str(exc.value)


def test_huge_length_is_rejected_without_allocating():
    import time
    import tracemalloc
    d = F.CacheData(sections={(fp := make_fp()).id: fp})
    raw = bytearray(F.encode(d))
    h = F.decode_header(bytes(raw))
    rec = struct.pack("<4sIQ", b"PROG", 0, 1 << 40) + b"x" * 32
    body = bytes(raw[h.header_len:]) + rec
    bad = F.encode_header(h.record_count + 1, 1 << 40) + body
    tracemalloc.start()
    t0 = time.perf_counter()
    dec = F.decode(bad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t0 < 0.5 and peak < 1 << 20
    assert len(dec.data.sections) == 1 and dec.findings
