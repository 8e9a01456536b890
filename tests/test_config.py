"""mace.yml: every problem is one line naming the file, the field and the fix; CLI exit code 2."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mace.cli import cli
from mace.config import load_config
from mace.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "mace" / "examples" / "digits"


@pytest.fixture
def deploy(tmp_path):
    shutil.copy(EXAMPLE / "digits_cnn.onnx", tmp_path / "digits_cnn.onnx")
    raw = yaml.safe_load((EXAMPLE / "mace.yml").read_text())

    def write(mutate=None) -> Path:
        cfg = yaml.safe_load(yaml.safe_dump(raw))
        if mutate:
            mutate(cfg)
        p = tmp_path / "mace.yml"
        p.write_text(yaml.safe_dump(cfg))
        return p
    return write


def test_example_config_loads(deploy):
    loaded = load_config(deploy())
    spec = loaded.config.models["digits_cnn"]
    assert spec.graph().input_shape_map() == {"input": [1, 1, 8, 8]}
    assert spec.threshold("gpu") == 0.995


@pytest.mark.parametrize("mutate, pattern", [
    (lambda c: c["models"]["digits_cnn"].update(colour="red"), r"models\.digits_cnn\.colour: unknown key 'colour': remove it"),
    (lambda c: c.update(libary_name="x"), r"libary_name: unknown key"),
    (lambda c: c["models"]["digits_cnn"].update(model_sha256_checksum="0" * 64), r"model_sha256_checksum: checksum mismatch .* update the checksum"),
    (lambda c: c["models"]["digits_cnn"].update(model_file_path="nope.onnx"), r"model_file_path: .*nope.onnx does not exist"),
    (lambda c: c["models"]["digits_cnn"].update(runtime="tpu"), r"models\.digits_cnn\.runtime"),
    (lambda c: c["models"]["digits_cnn"].update(input_shapes=["1,x,8,8"]), r"input_shapes.*not comma-separated integers"),
    (lambda c: c["models"]["digits_cnn"].pop("platform"), r"models\.digits_cnn\.platform: Field required: add it"),
])
def test_config_errors_are_one_line(deploy, mutate, pattern):
    path = deploy(mutate)
    with pytest.raises(ConfigError, match=pattern) as exc:
        load_config(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)
    res = CliRunner().invoke(cli, ["convert", "--config", str(path)])
    assert res.exit_code == 2
    assert res.output.startswith("error: ") and res.output.count("\n") == 1


def test_shape_that_does_not_match_the_model(deploy):
    path = deploy(lambda c: c["models"]["digits_cnn"].update(input_shapes=["1,3,8,8"]))
    res = CliRunner().invoke(cli, ["convert", "--config", str(path)])
    assert res.exit_code == 2
    assert "models.digits_cnn" in res.output and "fix input_shapes" in res.output
    path = deploy(lambda c: c["models"]["digits_cnn"].update(output_shapes=["1,11"]))
    res = CliRunner().invoke(cli, ["convert", "--config", str(path)])
    assert res.exit_code == 2 and "output_shapes" in res.output


def test_convert_config_writes_model(deploy, tmp_path):
    path = deploy()
    res = CliRunner().invoke(cli, ["convert", "--config", str(path), "--json"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "build" / "digits" / "model" / "digits_cnn.mace"
    assert out.is_file()
    assert hashlib.sha256(out.read_bytes()[:-32]).hexdigest() == out.read_bytes()[-32:].hex()
