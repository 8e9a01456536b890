"""--embed: one-file bundles and importable modules; Engine.from_bundle gives the plain model's outputs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import mace
from mace import bundle
from mace.errors import ModelFileError


def _from_bundle(source, **kw):
    return mace.Engine.from_bundle(source, **kw)


def test_bundle_same_outputs(built, rng):
    cfg, doc = built
    lib = cfg.parent / "build" / "digits"
    b = doc["bundles"][0]
    path, module_path = Path(b["bundle"]), Path(b["module"])
    assert path == lib / "digits_cnn.mace-bundle" and path.is_file() and module_path.is_file()
    merged = Path(doc["merged"]["file"]).read_bytes()
    decoded = bundle.load(path)
    assert decoded.model == (lib / "model" / "digits_cnn.mace").read_bytes()
    assert decoded.program == merged and decoded.header["name"] == "digits_cnn"

    spec = importlib.util.spec_from_file_location("digits_cnn_mace_bundle_test", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.BUNDLE == path.read_bytes() and module.bundle_size() == len(module.BUNDLE)

    x = rng.uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
    plain_cpu = mace.Engine(lib / "model" / "digits_cnn.mace", runtime="cpu").run({"input": x})["output"]
    plain_gpu = mace.Engine(lib / "model" / "digits_cnn.mace", runtime="gpu",
                            program=merged).run({"input": x})["output"]
    n = doc["targets"][0]["models"]["digits_cnn"]["compiled"]
    for source in (path, str(path), module, path.read_bytes()):
        e = _from_bundle(source, runtime="gpu")
        np.testing.assert_array_equal(e.run({"input": x})["output"], plain_gpu)
        rep = e.program_cache_report
        assert rep.source == "bytes"
        if isinstance(source, bytes):        # no file to judge: unsigned programs are rebuilt
            assert rep.from_cache == 0 and rep.untrusted == n and rep.compiled == n
        else:                                # the bundle's own file is in a private directory
            assert rep.compiled == 0 and rep.from_cache == n
    e = _from_bundle(path, runtime="cpu")
    np.testing.assert_array_equal(e.run({"input": x})["output"], plain_cpu)


def test_damaged_bundle_is_a_clear_error(built, tmp_path):
    _, doc = built
    data = bytearray(Path(doc["bundles"][0]["bundle"]).read_bytes())
    data[100] ^= 0xFF
    bad = tmp_path / "bad.mace-bundle"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum mismatch.*mace convert --config mace.yml --embed"):
        bundle.load(bad)
    with pytest.raises(ModelFileError, match="not a mace bundle"):
        bundle.load(b"MACEMODL" + bytes(100))
    with pytest.raises(ModelFileError, match="truncated"):
        bundle.load(bytes(data[:-10]))
    with pytest.raises(ModelFileError, match="no such bundle"):
        bundle.load(tmp_path / "missing.mace-bundle")


def test_bundle_roundtrip_without_programs():
    from mace.convert import convert
    from mace.ir import modelfile
    g = convert(Path(mace.__file__).parent / "examples" / "digits" / "digits_cnn.onnx")
    raw = modelfile.encode(g)
    b = bundle.decode(bundle.encode(raw, None, name="x"))
    assert b.model == raw and b.program == b"" and b.header["program_sha256"] is None
