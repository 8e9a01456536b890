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


class _FlakyClient:
    """ray's init/shutdown as seen through a client proxy whose per-client server dies at start
    `failures` times (ray-project/ray#63202)."""

    def __init__(self, failures, error=None):
        self.failures, self.calls = failures, []
        self.error = error or ConnectionAbortedError("Initialization failure from server: ...")

    def init(self, address, **kw):
        self.calls.append("init")
        if self.failures:
            self.failures -= 1
            raise self.error

    def shutdown(self):
        self.calls.append("shutdown")


def test_a_client_server_dying_at_start_is_tried_again():
    from mace.farm.driver import _client_init
    ray = _FlakyClient(2)
    _client_init(ray, "ray://h:1", {})
    assert ray.calls == ["init", "shutdown", "init", "shutdown", "init"]
    ray = _FlakyClient(3)
    try:
        _client_init(ray, "ray://h:1", {})
    except ConnectionAbortedError:
        pass
    else:
        raise AssertionError("three failures in three attempts must raise")
    ray = _FlakyClient(1, ConnectionAbortedError("something else"))
    try:
        _client_init(ray, "ray://h:1", {})
    except ConnectionAbortedError:
        assert ray.calls == ["init"]                  # other failures are not retried
    else:
        raise AssertionError("an unrelated failure must raise")
