"""Helpers of the deployment-workflow tests."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

EXAMPLE = Path(__file__).resolve().parents[2] / "mace" / "examples" / "digits"
REPO = Path(__file__).resolve().parents[2]


def copy_example(dest: Path, **model_overrides) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("digits_cnn.onnx", "mace.yml"):
        shutil.copy(EXAMPLE / name, dest / name)
    if model_overrides:
        cfg = yaml.safe_load((dest / "mace.yml").read_text())
        cfg["models"]["digits_cnn"].update(model_overrides)
        (dest / "mace.yml").write_text(yaml.safe_dump(cfg))
    return dest / "mace.yml"


def invoke(args: list[str]):
    from mace.cli import cli
    return CliRunner().invoke(cli, [str(a) for a in args])


def invoke_json(args: list[str]) -> dict:
    res = invoke(args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)
