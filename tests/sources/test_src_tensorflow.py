"""TensorFlow sources: a SavedModel (Keras MobileNetV2) and a frozen GraphDef (ResNet-like),
converted through a deployment file and validated on both runtimes against TensorFlow itself;
layouts, names and checksums as mace.yml gives them."""
from __future__ import annotations

import hashlib

import pytest
import yaml
from src_checks import COSINE

import mace
from mace.config import load_config, tree_sha256
from mace.convert.deployment import convert_config
from mace.tools.validate import validate


@pytest.fixture(scope="module")
def converted(tf_models, tmp_path_factory):
    """A SavedModel directory (checksum over its files) asked for NCHW inputs, a frozen graph
    named MACE's way (op names, no :0) left NHWC."""
    pb, sm = tf_models["pb"], tf_models["saved_model"]
    inp, out = tf_models["pb_names"]
    cfg = {"library_name": "tfsrc", "models": {
        "frozen": {"platform": "tensorflow", "model_file_path": str(pb),
                   "model_sha256_checksum": hashlib.sha256(pb.read_bytes()).hexdigest(),
                   "input_tensors": inp, "input_shapes": "1,32,32,3", "output_tensors": out, "output_shapes": "1,10"},
        "saved": {"platform": "tensorflow", "model_file_path": str(sm), "model_sha256_checksum": tree_sha256(sm),
                  "input_tensors": "inputs", "input_shapes": "1,3,32,32", "input_data_formats": "NCHW",
                  "output_tensors": "output_0"}}}
    yml = tmp_path_factory.mktemp("tfsrc") / "mace.yml"
    yml.write_text(yaml.safe_dump(cfg))
    return {r.name: r.output for r in convert_config(load_config(yml))}


@pytest.mark.parametrize("runtime", ["cpu", "gpu"])
def test_saved_model_mobilenet_v2_nchw_validates_against_tensorflow(tf_models, converted, runtime):
    with mace.Engine(converted["saved"], runtime=runtime) as engine:
        assert engine.graph.shape("inputs") == (1, 3, 32, 32)
        assert "Transpose" not in engine.graph.op_counts()          # asked-for NCHW cancels TF's transpose
        res = validate(engine, tf_models["saved_model"], threshold=COSINE, seed=1)   # reference fed NHWC
    assert res["passed"] and res["outputs"]["output_0"]["cosine"] >= COSINE, res


@pytest.mark.parametrize("runtime", ["cpu", "gpu"])
def test_frozen_pb_resnet_validates_against_tensorflow(tf_models, converted, runtime):
    inp, out = tf_models["pb_names"]
    with mace.Engine(converted["frozen"], runtime=runtime) as engine:
        g = engine.graph
        assert g.inputs == [inp] and g.outputs == [out] and g.shape(inp) == (1, 32, 32, 3)   # NHWC, as in TF
        assert "Add" not in g.op_counts()                            # residual adds fused into convs
        res = validate(engine, tf_models["pb"], threshold=COSINE, seed=1)
    assert res["passed"] and res["outputs"][out]["cosine"] >= COSINE, res
