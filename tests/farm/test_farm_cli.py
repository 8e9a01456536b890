"""`mace farm build` without Ray, or with a bad key: one line naming the fix, exit 2, before any
cluster is started."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from click.testing import CliRunner

from mace.cli import cli
from mace.programcache import signing

EXAMPLE = Path(__file__).resolve().parents[2] / "mace" / "examples" / "digits"


def _workspace(tmp_path: Path) -> Path:
    for name in ("mace.yml", "digits_cnn.onnx"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    return tmp_path / "mace.yml"


def test_without_ray_the_error_names_the_extra(tmp_path, monkeypatch):
    config = _workspace(tmp_path)
    signing.write_key_pair(tmp_path / "farm.pem")
    monkeypatch.setitem(sys.modules, "ray", None)          # `import ray` fails as when it is not installed
    r = CliRunner().invoke(cli, ["farm", "build", "--config", str(config), "--key", str(tmp_path / "farm.pem")])
    assert r.exit_code == 2, r.output
    assert "pip install 'mace-engine[farm]'" in r.output and "Traceback" not in r.output


def test_a_missing_farm_key_is_refused_before_any_work(tmp_path):
    config = _workspace(tmp_path)
    r = CliRunner().invoke(cli, ["farm", "build", "--config", str(config), "--key", str(tmp_path / "none.pem"),
                                 "--json"])
    assert r.exit_code == 2 and '"ok": false' in r.output and "mace cache keygen" in r.output
    assert not (tmp_path / "build").exists()
