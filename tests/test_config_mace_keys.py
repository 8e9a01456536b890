"""MACE's own mace.yml keys: a misspelt key is named, a known key mace does not honour is a
warning saying what happens instead, validation_threshold takes its documented forms."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml

from mace.config import load_config
from mace.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "mace" / "examples" / "digits"


@pytest.fixture
def write(tmp_path):
    shutil.copy(EXAMPLE / "digits_cnn.onnx", tmp_path / "digits_cnn.onnx")
    raw = yaml.safe_load((EXAMPLE / "mace.yml").read_text())

    def _write(mutate) -> Path:
        cfg = yaml.safe_load(yaml.safe_dump(raw))
        mutate(cfg)
        p = tmp_path / "mace.yml"
        p.write_text(yaml.safe_dump(cfg))
        return p
    return _write


def _model(**kw):
    return lambda c: c["models"]["digits_cnn"].update(**kw)


def test_misspelt_key_is_named_not_reported_missing(write):
    p = write(lambda c: c.__setitem__("libary_name", c.pop("library_name")))
    with pytest.raises(ConfigError, match=r"libary_name: unknown key 'libary_name' \(did you mean 'library_name'\?\)"):
        load_config(p)
    p = write(_model(runtme="gpu"))
    with pytest.raises(ConfigError, match=r"models\.digits_cnn\.runtme: unknown key 'runtme' \(did you mean 'runtime'"):
        load_config(p)


@pytest.mark.parametrize("key,value,instead", [
    ("check_tensors", ["conv1"], "no intermediate tensors are checked"),
    ("cl_mem_type", "image", "OpenCL buffers are used"),
    ("validation_inputs_data", ["x.npy"], "--input NAME=x.npy"),
    ("winograd", 2, "picks Winograd"),
])
def test_known_but_not_honoured_keys_warn(write, caplog, key, value, instead):
    with caplog.at_level(logging.WARNING, logger="mace"):
        load_config(write(_model(**{key: value})))
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"models.digits_cnn.{key}:" in m and "not honoured" in m and instead in m for m in msgs), msgs


def test_default_values_do_not_warn(write, caplog):
    with caplog.at_level(logging.WARNING, logger="mace"):
        load_config(write(_model(input_data_formats="NCHW", cl_mem_type="buffer", quantize=0)))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_validation_threshold_forms(write):
    spec = load_config(write(_model(validation_threshold=0.98))).config.models["digits_cnn"]
    assert spec.threshold("cpu") == spec.threshold("gpu") == 0.98
    spec = load_config(write(_model(validation_threshold={"CPU": 0.9, "GPU": 0.8}))).config.models["digits_cnn"]
    assert (spec.threshold("cpu"), spec.threshold("gpu")) == (0.9, 0.8)
    for bad, text in ((1.5, r"not a cosine similarity in \(0, 1\]"), ("high", "neither a number nor a mapping")):
        with pytest.raises(ConfigError, match=text):
            load_config(write(_model(validation_threshold=bad)))


def test_data_formats_are_honoured_and_checked(write, caplog):
    """input_data_formats/output_data_formats choose the runtime layout (mace.convert.sources.layouts):
    no warning for a layout, a one-line error for anything else."""
    with caplog.at_level(logging.WARNING, logger="mace"):
        load_config(write(_model(input_data_formats="NHWC", output_data_formats="NCHW")))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with pytest.raises(ConfigError, match=r"input_data_formats.*'NWHC' is not one of NHWC, NCHW"):
        load_config(write(_model(input_data_formats="NWHC")))
