"""Xiaomi MACE's two layouts: the real legacy fixture, a synthesized protobuf+CRC file."""
from __future__ import annotations

import pytest
from pc_helpers import LEGACY_FIXTURE, kv_pair, legacy_file, pb_file

from mace.programcache import XiaomiFormatError, blobkind, xiaomi

PLATFORM = ("QUALCOMM Snapdragon(TM), FULL_PROFILE, OpenCL 2.0 QUALCOMM build: commit #559e78c "
            "changeid #Ib9d997268a Date: 10/13/20 Tue Local Branch:  Remote Branch: , "
            "v0.12.0-0-ga610d50")


def test_legacy_fixture_parses():
    f = xiaomi.parse_legacy(LEGACY_FIXTURE.read_bytes())
    assert f.format == xiaomi.LEGACY and f.crc_ok is None
    assert len(f.entries) == 26 and len(f.programs) == 25
    assert f.platform_info == PLATFORM
    assert f.device_name is None and f.program_hashes == {}
    key = ("conv_2d_1x1 -DBIAS -DCMD_DATA_TYPE=f -DDATA_TYPE=float -DNON_UNIFORM_WORK_GROUP "
           "-DUSE_RELU -Dconv_2d_1x1=c44CimyloKq")
    assert len(f.programs[key]) == 6196
    assert {blobkind.classify(b) for b in f.programs.values()} == {blobkind.ADRENO}
    assert sum(1 for k in f.programs if "  " in k) == 2       # empty options kept (v0.x)
    assert xiaomi.sniff(LEGACY_FIXTURE.read_bytes()).format == xiaomi.LEGACY


def test_legacy_truncated_or_padded_is_rejected():
    raw = LEGACY_FIXTURE.read_bytes()
    for bad in (raw[:-1], raw + b"\0", raw[:7], b"\xff" * 8 + raw[8:]):
        with pytest.raises(XiaomiFormatError):
            xiaomi.parse_legacy(bad)


def test_legacy_round_trip_of_a_synthesized_file():
    entries = {xiaomi.PLATFORM_INFO_KEY: b"Mali-G76, FULL_PROFILE, OpenCL 2.1, v0.13.0",
               "reduce -DNON_QUALCOMM_ADRENO": b"CLCC" + b"\0" * 20}
    f = xiaomi.parse_legacy(legacy_file(entries))
    assert f.entries == entries and f.platform_info.startswith("Mali-G76")
    assert blobkind.classify(f.programs["reduce -DNON_QUALCOMM_ADRENO"]) == blobkind.MALI


def _pb_sample(crc=True, packed=False):
    return pb_file([
        kv_pair(xiaomi.PLATFORM_INFO_KEY, b"QUALCOMM Snapdragon(TM), FULL_PROFILE, OpenCL 2.0, v1.1.1"),
        kv_pair(xiaomi.DEVICE_NAME_KEY, b"Adreno(TM) 640"),
        kv_pair("conv_2d_1x1 -DBIAS", b"\x20\0\0\0\x0a\0\0\0\x02\0\0\0\x02\0\0\0" + b"\x99" * 300),
        kv_pair("program_hash_ conv_2d_1x1 -DBIAS", b"0123456789abcdef0123"),
        kv_pair("tuned_conv_1_2", uint32s=[4, 8, 1, 0, 2**32 - 1], packed=packed),
    ], crc=crc)


@pytest.mark.parametrize("packed", [False, True])
def test_protobuf_crc_round_trip(packed):
    f = xiaomi.parse_pb_crc(_pb_sample(packed=packed))
    assert f.format == xiaomi.PB_CRC and f.crc_ok is True
    assert f.device_name == "Adreno(TM) 640" and f.platform_info.endswith("v1.1.1")
    assert list(f.programs) == ["conv_2d_1x1 -DBIAS", "tuned_conv_1_2"]
    assert f.program_hashes == {"conv_2d_1x1 -DBIAS": "0123456789abcdef0123"}
    assert f.uint32s == {"tuned_conv_1_2": [4, 8, 1, 0, 2**32 - 1]}
    assert blobkind.classify(f.programs["conv_2d_1x1 -DBIAS"]) == blobkind.ADRENO
    assert xiaomi.sniff(_pb_sample(packed=packed)).crc_ok is True


def test_bad_crc_is_detected():
    raw = _pb_sample(crc=False)
    with pytest.raises(XiaomiFormatError, match="CRC32 value of .* is invalid"):
        xiaomi.parse_pb_crc(raw, "/p/mace_cl_compiled_program.bin")
    found = xiaomi.sniff(raw)
    assert found is not None and found.crc_ok is False and len(found.programs) == 2
    flipped = bytearray(_pb_sample())
    flipped[40] ^= 1
    with pytest.raises(XiaomiFormatError):
        xiaomi.parse_pb_crc(bytes(flipped))


def test_protobuf_framing_errors_are_typed():
    for bad in (b"\x0a\xff\xff\xff\xff\x0f",          # length 2^32-1 with nothing behind it
                b"\x0a" + b"\xff" * 11,                # varint too long
                b"\x0b\x00",                           # wire type 3 (group)
                b"\x00\x01",                           # field number 0
                b"\x0a\x02\x12\x00"):                  # KVPair without a key
        with pytest.raises(XiaomiFormatError):
            xiaomi.parse_pb(bad)


def test_not_xiaomi():
    assert xiaomi.sniff(b"MACECLPC" + b"\0" * 60) is None
    assert xiaomi.sniff(b"hello world, certainly not a cache") is None
    assert xiaomi.sniff(b"") is None
