"""`obfuscate: true`: no layer, tensor or weight name survives in the shipped file; results unchanged."""
from __future__ import annotations

import re

import numpy as np
from wf_helpers import EXAMPLE, copy_example, invoke_json

import mace
from mace.convert import convert
from mace.convert.obfuscate import obfuscate
from mace.ir import modelfile

HEX8 = re.compile(r"^[0-9a-f]{8,}$")


def _names(g) -> set[str]:
    names = {n.name for n in g.nodes} | set(g.shapes) | set(g.weights)
    names |= {v for n in g.nodes for v in n.inputs + n.outputs if v}
    return names - set(g.inputs) - set(g.outputs)


def test_obfuscated_model_file(tmp_path, rng):
    plain_cfg = copy_example(tmp_path / "plain")
    obf_cfg = copy_example(tmp_path / "obf", obfuscate=True)
    invoke_json(["convert", "--config", plain_cfg, "--json"])
    doc = invoke_json(["convert", "--config", obf_cfg, "--json"])
    assert doc["models"][0]["obfuscated"] is True
    plain = plain_cfg.parent / "build" / "digits" / "model" / "digits_cnn.mace"
    obf = obf_cfg.parent / "build" / "digits" / "model" / "digits_cnn.mace"
    original = _names(modelfile.load(plain)) | _names(convert(EXAMPLE / "digits_cnn.onnx"))
    assert len(original) > 5
    data = obf.read_bytes()
    leaked = sorted(n for n in original if n.encode() in data)
    assert not leaked, leaked
    g = modelfile.load(obf)
    assert g.inputs == ["input"] and g.outputs == ["output"]
    assert all(HEX8.match(n.name) for n in g.nodes)
    assert all(HEX8.match(v) for v in _names(g))
    x = rng.uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
    for runtime in ("cpu", "gpu"):
        kw = {"program": tmp_path / f"{runtime}.bin"} if runtime == "gpu" else {}
        a = mace.Engine(plain, runtime=runtime, **kw).run({"input": x})["output"]
        b = mace.Engine(obf, runtime=runtime, **kw).run({"input": x})["output"]
        np.testing.assert_array_equal(a, b)


def test_obfuscate_keeps_io_and_is_reproducible_with_a_salt():
    g1 = convert(EXAMPLE / "digits_cnn.onnx")
    g2 = convert(EXAMPLE / "digits_cnn.onnx")
    before = _names(g1)
    obfuscate(g1, salt=b"s")
    obfuscate(g2, salt=b"s")
    assert [n.name for n in g1.nodes] == [n.name for n in g2.nodes]
    assert g1.inputs == ["input"] and g1.outputs == ["output"]
    assert not (_names(g1) & before)
    assert set(g1.weights) <= set(g1.shapes)
    g3 = convert(EXAMPLE / "digits_cnn.onnx")
    obfuscate(g3)                                   # random salt: different names
    assert [n.name for n in g3.nodes] != [n.name for n in g1.nodes]
    x = np.random.default_rng(0).uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
    ref = mace.Engine(convert(EXAMPLE / "digits_cnn.onnx"), runtime="cpu").run({"input": x})["output"]
    np.testing.assert_array_equal(mace.Engine(g3, runtime="cpu").run({"input": x})["output"], ref)
