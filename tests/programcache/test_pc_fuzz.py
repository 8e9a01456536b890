"""Fuzzing the three parsers: any input gives a result or a typed ProgramCacheError, never
another exception, and no length field makes them allocate more than the input holds."""
from __future__ import annotations

import struct
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pc_helpers import LEGACY_FIXTURE, kv_pair, make_fp, pb_file

from mace.programcache import ProgramCache, ProgramCacheError, xiaomi
from mace.programcache import format as F
from mace.programcache.inspect import inspect_bytes

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _ours() -> bytes:
    a, b = make_fp(driver="1"), make_fp(driver="2")
    c = ProgramCache(None)
    for fp in (a, b):
        for i in range(3):
            c.put_binary(fp, f"conv|-DX={i}|ab", bytes([i + 1]) * 40)
        c.put_tuning(fp, "t", {"lws": [1, 2, 3]})
    c.quarantine(a, "conv|-DX=0|ab", "CL_INVALID_BINARY")
    return F.encode(c.data)


OURS = _ours()
PB = pb_file([kv_pair(xiaomi.PLATFORM_INFO_KEY, b"Mali, FULL_PROFILE, OpenCL 2.1, v1.1.1"),
              kv_pair("conv -DX", b"CLCC" + b"\1" * 50), kv_pair("t", uint32s=[1, 2, 3])])
LEGACY = LEGACY_FIXTURE.read_bytes()[:4000]            # a valid prefix is not needed: mutations are
SEEDS = [OURS, PB, LEGACY_FIXTURE.read_bytes()[:3000]]


def parse_all(buf: bytes) -> None:
    """Every parser and every entry point that takes untrusted bytes."""
    for parser in (F.decode, xiaomi.parse_legacy, xiaomi.parse_pb_crc, xiaomi.parse_pb):
        try:
            parser(buf)
        except ProgramCacheError:
            pass
    xiaomi.sniff(buf)
    cache = ProgramCache.open(buf, device_fp=make_fp(driver="1"))   # never raises
    assert cache.report.format in ("mace", "mace-legacy", "mace-pb-crc", "unknown", "missing")
    cache.get_binary(make_fp(driver="1"), "conv|-DX=1|ab")
    inspect_bytes(buf)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(buf):
    parse_all(buf)


@FUZZ
@given(st.binary(max_size=256))
def test_random_bytes_behind_our_magic(buf):
    parse_all(F.MAGIC + buf)
    parse_all(OURS[:46] + buf)


@st.composite
def mutated(draw):
    buf = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "big", "delete"]))
        pos = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[pos] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[pos:pos + draw(st.integers(1, 16))]
        elif op == "big":
            buf[pos:pos + 8] = struct.pack("<Q", draw(st.sampled_from(
                [2**31 - 1, 2**32 - 1, 2**40, 2**63 - 1, 2**64 - 1])))
    return bytes(buf)


@FUZZ
@given(mutated())
def test_mutations_of_valid_files(buf):
    parse_all(buf)


@FUZZ
@given(st.integers(0, len(OURS)))
def test_every_truncation_of_ours_keeps_a_prefix(cut):
    try:
        dec = F.decode(OURS[:cut])
    except ProgramCacheError:
        assert cut < 46                          # only a cut header is fatal
        return
    full = F.decode(OURS).data
    assert set(dec.data.programs) <= set(full.programs)
    assert (cut == len(OURS)) == (not dec.findings)


def _bounded(fn, buf):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn(buf)
    except ProgramCacheError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t0 < 0.5
    assert peak < len(buf) + (1 << 20), f"{fn.__name__} allocated {peak} bytes"


@pytest.mark.parametrize("fn, buf", [
    (xiaomi.parse_legacy, struct.pack("<q", 2**40) + b"\0" * 64),
    (xiaomi.parse_legacy, struct.pack("<qi", 1, 2**31 - 1) + b"k" * 64),
    (xiaomi.parse_legacy, struct.pack("<qi", 1, 3) + b"key" + struct.pack("<i", 2**31 - 1)),
    (xiaomi.parse_pb, b"\x0a" + b"\x80\x80\x80\x80\x80\x80\x80\x80\x10" + b"\0" * 64),  # 2^60
    (xiaomi.parse_pb_crc, b"\x0a\x80\x80\x80\x80\x80\x20" + b"\0" * 64),
    (F.decode, F.encode_header(2**32 - 1, 2**63) + struct.pack("<4sIQ", b"PROG", 0, 2**40)),
    (F.decode, F.encode_header(1, 100) + struct.pack("<4sIQ", b"DEVC", 0, 60)
     + struct.pack("<H", 16) + b"0" * 16 + struct.pack("<H", 65535) + b"\0" * 40),
])
def test_huge_lengths_are_rejected_quickly(fn, buf):
    _bounded(fn, buf)
    _bounded(lambda b: ProgramCache.open(b), buf)
