"""The program cache through the engine: every failure case of the error table ends with
correct outputs (compared with the CPU runtime, atol 1e-4) and the file in a sane state.

One small two-program model (Conv + Relu fused, then Add) is converted once per session."""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import mace
from mace.convert import convert
from mace.programcache import DeviceFingerprint, ProgramCache
from mace.runtime.opencl import harvest
from mace.runtime.opencl.device import select_device


def _model(path: Path, seed: int, c_out: int = 8, act: str = "Relu") -> Path:
    rng = np.random.default_rng(seed)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = rng.uniform(-1, 1, (c_out, 3, 3, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, (c_out, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node(act, ["c"], ["r"]),
             helper.make_node("Add", ["r", "b"], ["y"])]
    g = helper.make_graph(nodes, "m", [x], [y], [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    convert(m, path)
    return path


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    return _model(tmp_path_factory.mktemp("cache") / "m.mace", 0)


@pytest.fixture(scope="session")
def reference(model):
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 12, 12)).astype(np.float32)
    return x, mace.Engine(model, runtime="cpu").run({"x": x})["y"]


@pytest.fixture(scope="session")
def fp():
    return DeviceFingerprint.from_cl_device(select_device())


def _run(model, reference, program, **kw):
    """An engine as a new process would start it (programs from the cache or compiled, not from
    the engines of the process), run once, its binaries then saved as by the end of a process."""
    from mace.runtime.opencl import shared
    shared.forget_programs()
    x, want = reference
    e = mace.Engine(model, runtime="gpu", program=program, **kw)
    np.testing.assert_allclose(e.run({"x": x})["y"], want, rtol=1e-4, atol=1e-4)
    harvest.wait()
    return e


def _codes(e) -> set[str]:
    return {f.code for f in e.program_cache_report.findings}


def test_first_run_then_warm_start(model, reference, tmp_path, caplog):
    prog = tmp_path / "p.bin"
    with caplog.at_level(logging.INFO, logger="mace"):
        cold = _run(model, reference, prog)
    assert f"There is no precompiled OpenCL binary at {prog}: compiling" in caplog.text
    n = cold.program_cache_report.compiled
    assert n >= 1 and cold.program_cache_report.from_cache == 0 and prog.is_file()
    warm = _run(model, reference, prog)
    r = warm.program_cache_report
    assert (r.from_cache, r.compiled, r.rejected) == (n, 0, [])
    assert warm.summary()["program_cache"]["from_cache"] == n


def test_warmup_saves_during_init(model, reference, tmp_path):
    prog = tmp_path / "p.bin"
    mace.Engine(model, runtime="gpu", program=prog, warmup=True)
    assert prog.is_file()
    assert _run(model, reference, prog).program_cache_report.compiled == 0


def test_bytes_are_read_only(model, reference, tmp_path):
    from mace.programcache.trust import CacheBytes, location_trust
    prog = tmp_path / "p.bin"
    _run(model, reference, prog)
    before = prog.read_bytes()
    e = _run(model, reference, CacheBytes(before, location_trust(prog)))
    assert e.program_cache_report.source == "bytes" and e.program_cache_report.compiled == 0
    e = _run(model, reference, before)          # bytes from nowhere: untrusted, rebuilt
    assert e.program_cache_report.from_cache == 0 and e.program_cache_report.untrusted >= 1
    assert prog.read_bytes() == before


def test_foreign_device_section_is_kept_and_never_loaded(model, reference, tmp_path, fp, caplog):
    real = tmp_path / "real.bin"
    _run(model, reference, real)
    src = ProgramCache.open(real, device_fp=fp)
    other = dataclasses.replace(fp, device_name="Adreno(TM) 640", driver_version="512.415")
    foreign = tmp_path / "foreign.bin"
    c = ProgramCache.open(foreign, device_fp=other)
    for key in src.program_keys(fp):
        c.put_binary(other, key, src.get_binary(fp, key))
    assert c.save()
    with caplog.at_level(logging.WARNING, logger="mace"):
        e = _run(model, reference, foreign)
    assert e.program_cache_report.from_cache == 0 and e.program_cache_report.compiled >= 1
    assert "FOREIGN_DEVICE" in _codes(e) and other.short() in caplog.text and fp.short() in caplog.text
    after = ProgramCache.open(foreign, device_fp=fp)
    assert {other.id, fp.id} <= set(after.data.sections)


def test_not_a_cache_as_program_is_refused(model, reference, tmp_path):
    from mace.programcache import CacheRefused
    prog = tmp_path / "p.bin"
    prog.write_bytes(b"definitely not a program cache" * 10)
    with pytest.raises(CacheRefused, match="p.bin is not a mace program cache .*refused"):
        _run(model, reference, prog)
    assert prog.read_bytes().startswith(b"definitely")
    assert not (tmp_path / "p.bin.corrupt").exists()


def test_damaged_header_is_set_aside_and_regenerated(model, reference, tmp_path, caplog):
    prog = tmp_path / "p.bin"
    _run(model, reference, prog)
    (tmp_path / "p.bin.corrupt").write_bytes(b"an earlier one")
    raw = bytearray(prog.read_bytes())
    raw[20] ^= 0xFF                              # record_count: the header CRC fails
    prog.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="mace"):
        e = _run(model, reference, prog)
    assert "Magic number mismatch" in caplog.text and "MAGIC_MISMATCH" in _codes(e)
    assert (tmp_path / "p.bin.corrupt").read_bytes() == b"an earlier one"
    assert (tmp_path / "p.bin.corrupt.1").read_bytes() == bytes(raw)
    assert _run(model, reference, prog).program_cache_report.compiled == 0


def test_damaged_entry_is_dropped_alone(model, reference, tmp_path, fp):
    prog = tmp_path / "p.bin"
    _run(model, reference, prog)
    c = ProgramCache.open(prog, device_fp=fp)
    keys = c.program_keys(fp)
    assert len(keys) >= 2
    blob = c.get_binary(fp, keys[0])
    raw = bytearray(prog.read_bytes())
    i = bytes(raw).index(blob[-64:])          # a byte inside the first entry's payload
    raw[i + 10] ^= 0xFF
    prog.write_bytes(bytes(raw))
    e = _run(model, reference, prog)
    r = e.program_cache_report
    assert "DAMAGED_ENTRY" in _codes(e)
    assert r.compiled == 1 and r.from_cache == len(keys) - 1


def test_newer_format_is_not_overwritten(model, reference, tmp_path, caplog):
    prog = tmp_path / "p.bin"
    _run(model, reference, prog)
    b = bytearray(prog.read_bytes())
    struct.pack_into("<HHH", b, 8, 9, 0, 9)
    hlen = struct.unpack_from("<I", b, 16)[0]
    struct.pack_into("<I", b, hlen - 4, zlib.crc32(bytes(b[:hlen - 4])))
    prog.write_bytes(bytes(b))
    with caplog.at_level(logging.WARNING, logger="mace"):
        e = _run(model, reference, prog)
    assert "Version mismatch" in caplog.text and "upgrade mace" in caplog.text
    assert e.program_cache_report.from_cache == 0
    assert prog.read_bytes() == bytes(b)


def test_driver_rejected_binary_is_quarantined(model, reference, tmp_path, fp):
    prog = tmp_path / "p.bin"
    _run(model, reference, prog)
    c = ProgramCache.open(prog, device_fp=fp)
    key = c.program_keys(fp)[0]
    c.put_binary(fp, key, b"\x7fELF this is not a binary the driver accepts" * 20)
    assert c.save()
    e = _run(model, reference, prog)
    r = e.program_cache_report
    assert [code for _, code, _ in r.rejected] == ["CL_INVALID_BINARY"] and r.compiled == 1
    again = _run(model, reference, prog)
    assert again.program_cache_report.rejected == []         # not retried
    assert ProgramCache.open(prog, device_fp=fp).is_quarantined(fp, key)


def test_size_cap_is_out_of_resources_and_run_goes_on(model, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("MACE_PROGRAM_CACHE_MAX_BYTES", "2048")
    e = _run(model, reference, tmp_path / "p.bin")
    assert "MACE_OUT_OF_RESOURCES" in _codes(e)
    assert any("raise MACE_PROGRAM_CACHE_MAX_BYTES" in f.message or "prune" in f.message
               for f in e.program_cache_report.findings)


def test_unwritable_location_is_one_warning(model, reference, tmp_path, caplog):
    ro = tmp_path / "ro"
    ro.mkdir()
    prog = ro / "sub" / "p.bin"
    (ro / "sub").write_text("a file where a directory should be")
    with caplog.at_level(logging.WARNING, logger="mace"):
        _run(model, reference, prog)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(prog) in warnings[0].getMessage()


def _worker(model_path: str, prog: str, q) -> None:
    try:
        e = mace.Engine(model_path, runtime="gpu", program=prog)
        e.run({"x": np.ones((1, 3, 12, 12), np.float32)})
        q.put(("ok", e.executor.builder.keys))
    except Exception as exc:  # pragma: no cover - reported to the parent
        q.put(("error", repr(exc)))


def test_processes_sharing_one_cache_end_with_the_union(tmp_path, fp):
    # different fused activations -> different build options -> different program keys
    models = [str(_model(tmp_path / f"m{i}.mace", 10 + i, act=act)) for i, act in enumerate(["Relu", "Sigmoid", "Tanh"])]
    prog = str(tmp_path / "shared.bin")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(m, prog, q)) for m in models]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(r[0] == "ok" for r in results), results
    union = set().union(*(set(r[1]) for r in results))
    assert len(union) > max(len(r[1]) for r in results)
    final = ProgramCache.open(prog, device_fp=fp)
    assert set(final.program_keys(fp)) == union
    assert not [f for f in final.report.findings if f.severity == "error"]
