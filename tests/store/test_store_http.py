"""The program store end to end over a real HTTP server (conftest.py): a farm key publishes a
program file, devices pull only their own section through the engine or `mace cache pull`;
ETags and content hashes skip re-downloads; a slow store never holds the first result past the
bound; unsigned, unknown-key and tampered indexes or sections are refused (the engine compiles);
publish_on_miss publishes with an accepted device key, else queues."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import mace
from mace.cli import cli
from mace.convert import convert
from mace.programcache import DeviceFingerprint, signing
from mace.programcache import format as F
from mace.programcache.merge import add_section
from mace.runtime.opencl import harvest
from mace.store import index as store_index


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, "m", [x], [y], [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path_factory.mktemp("store_model") / "m.mace"
    convert(m, path)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 10, 10)).astype(np.float32)
    return path, x, mace.Engine(path, runtime="cpu").run({"x": x})["y"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    home = tmp_path_factory.mktemp("keys")
    home.chmod(0o700)
    signing.add_trusted(signing.write_key_pair(home / "farm.pem"), home / "trusted_keys")
    signing.write_key_pair(home / "stranger.pem")
    signing.write_key_pair(home / "device.pem")
    return home


@pytest.fixture(autouse=True)
def _env(keys, tmp_path, monkeypatch):
    monkeypatch.setenv("MACE_TRUSTED_KEYS", str(keys / "trusted_keys"))
    monkeypatch.setenv("MACE_PROGRAM_STORE_COPY", str(tmp_path / "copies"))
    monkeypatch.delenv("MACE_PROGRAM_STORE", raising=False)
    monkeypatch.setenv("MACE_PROGRAM_STORE_TIMEOUT", "60")      # a loaded machine is not a slow store


@pytest.fixture(scope="module")
def built(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("built") / "p.bin"
    e = mace.Engine(model[0], runtime="gpu", program=path)
    e.run({"x": model[1]})
    e.close()                             # its binaries are in the file once the background harvest ends
    rep = e.program_cache_report          # built here, or shared from an earlier engine of the process
    assert rep.compiled + rep.shared >= 1
    return path, rep.compiled + rep.shared


def _publish(src, store, key, *extra):
    r = CliRunner().invoke(cli, ["cache", "publish", str(src), str(store), "--key", str(key), "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def _engine(model, program, **kw):
    path, x, want = model
    e = mace.Engine(path, runtime="gpu", program=program, **kw)
    np.testing.assert_allclose(e.run({"x": x})["y"], want, rtol=1e-4, atol=1e-4)
    return e


@pytest.fixture
def published(built, keys, server, http_root):
    """The built file published to a fresh store directory, served over HTTP."""
    store = http_root / "store"
    shutil.rmtree(store)
    store.mkdir()
    doc = _publish(built[0], store, keys / "farm.pem")
    server.requests.clear()
    server.set_delay(0)
    return doc


def test_engine_pulls_its_section_then_etag_and_hash_skip_downloads(model, built, published, server, keys, tmp_path):
    [sec] = published["sections"]
    e = _engine(model, tmp_path / "a.bin", program_store=server.url)
    rep = e.summary()["program_store"]
    assert rep["status"] == "fetched" and rep["merged"] and rep["fp_id"] == sec["fp_id"]
    assert e.program_cache_report.from_cache == built[1] and e.program_cache_report.compiled == 0
    gets = server.gets()
    assert gets == 2                                  # the index and this device's section
    # a second device start: HEAD of the index only (same ETag), section reused by its hash
    e2 = _engine(model, tmp_path / "b.bin", program_store=server.url)
    assert e2.summary()["program_store"]["status"] == "reused" and e2.summary()["program_store"]["downloads"] == []
    assert server.gets() == gets
    assert e2.program_cache_report.from_cache == built[1] and e2.program_cache_report.compiled == 0
    # the store changes (republished): the index is read again, the unchanged section is not
    _publish(built[0], http_root_of(server), keys / "farm.pem", "--accept-device-key", str(keys / "device.pem.pub"))
    r = CliRunner().invoke(cli, ["cache", "pull", server.url, "--program", str(tmp_path / "c.bin"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["status"] == "reused" and doc["downloads"] == ["index.json"] and doc["merged"]


def http_root_of(server):
    return server.root / "store"


def test_slow_store_never_holds_the_first_result(model, published, server, tmp_path, monkeypatch):
    server.set_delay(20.0)                    # every request answered after 20 s
    monkeypatch.setenv("MACE_PROGRAM_STORE_TIMEOUT", "0.5")
    t0 = time.perf_counter()
    e = _engine(model, tmp_path / "p.bin", program_store=server.url)
    first = time.perf_counter() - t0
    server.set_delay(0)
    rep = e.summary()["program_store"]
    assert rep["status"] == "timeout" and rep["seconds"] < 2.0, rep
    assert e.program_cache_report.compiled >= 1 and e.program_cache_report.from_cache == 0
    assert first < 20.0, f"the first result waited {first:.1f} s on a store bounded at 0.5 s"


def _refused(server, tmp_path, model):
    r = CliRunner().invoke(cli, ["cache", "pull", server.url, "--program", str(tmp_path / "x.bin")])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    e = _engine(model, tmp_path / "y.bin", program_store=server.url)
    assert e.summary()["program_store"]["status"] == "failed"
    rep = e.program_cache_report          # built here, or shared from an earlier engine of the test
    assert rep.from_cache == 0 and rep.compiled + rep.shared >= 1
    return r.output


def test_tampered_section_is_refused(model, published, server, tmp_path):
    [sec] = published["sections"]
    p = http_root_of(server) / sec["path"]
    blob = bytearray(p.read_bytes())
    blob[-40] ^= 0xFF
    p.write_bytes(bytes(blob))
    assert "does not match the signed index" in _refused(server, tmp_path, model)


def test_tampered_index_is_refused(model, published, server, tmp_path):
    p = http_root_of(server) / store_index.INDEX_FILE
    doc = json.loads(p.read_text())
    doc["index"]["policy"]["device_keys"] = ["0123456789abcdef"]     # altered after signing
    p.write_text(json.dumps(doc))
    assert "altered after signing" in _refused(server, tmp_path, model)


def test_unsigned_and_unknown_key_indexes_are_refused(model, built, published, server, keys, tmp_path):
    p = http_root_of(server) / store_index.INDEX_FILE
    doc = json.loads(p.read_text())
    doc["signatures"] = []
    p.write_text(json.dumps(doc))
    assert "unsigned" in _refused(server, tmp_path / "u", model)
    shutil.rmtree(http_root_of(server))
    _publish(built[0], http_root_of(server), keys / "stranger.pem")
    assert "not a trusted key" in _refused(server, tmp_path / "k", model)


def _other_device_file(path):
    """A program file naming only another device (so this device misses in the store)."""
    data = F.CacheData()
    add_section(data, DeviceFingerprint(device_name="some other board", driver_version="1"))
    path.write_bytes(F.encode(data))
    return path


@pytest.mark.parametrize("accepted", [True, False])
def test_publish_on_miss(model, keys, server, tmp_path, monkeypatch, accepted):
    store = tmp_path / "dirstore"
    extra = ["--accept-device-key", str(keys / "device.pem.pub")] if accepted else []
    _publish(_other_device_file(tmp_path / "other.bin"), store, keys / "farm.pem", *extra)
    monkeypatch.setenv("MACE_DEVICE_KEY", str(keys / "device.pem"))
    e = _engine(model, tmp_path / "p.bin", program_store=str(store), publish_on_miss=True)
    harvest.wait()      # the section is contributed once the background harvest has saved it
    rep = e.summary()["program_store"]
    assert rep["status"] == "miss"
    fp_id = e.summary()["device_fingerprint"]
    if accepted:
        assert rep["contributed"]["action"] == "published"
        # the index now names this device, signed by the device key: a trusting device pulls it
        trusted = tmp_path / "trusted_keys"
        trusted.write_text((keys / "trusted_keys").read_text() + (keys / "device.pem.pub").read_text())
        monkeypatch.setenv("MACE_TRUSTED_KEYS", str(trusted))
        e2 = _engine(model, tmp_path / "q.bin", program_store=str(store))
        assert e2.summary()["program_store"]["status"] == "fetched"
        assert e2.program_cache_report.compiled == 0
    else:
        assert rep["contributed"]["action"] == "queued"
        assert list((store / "queue" / fp_id).glob("*.bin"))
        idx = store_index.decode((store / "index.json").read_bytes(), "t")
        assert fp_id not in idx.sections


def test_store_errors_are_one_line(built, keys, server, tmp_path):
    r = CliRunner().invoke(cli, ["cache", "publish", str(built[0]), server.url, "--key", str(keys / "farm.pem")])
    assert r.exit_code == 2 and "read-only" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["cache", "pull", "s3://mace-no-bucket/store", "--program", str(tmp_path / "p.bin")])
    assert r.exit_code == 2 and "mace-engine[s3]" in r.output, r.output
    r = CliRunner().invoke(cli, ["cache", "pull", str(tmp_path / "nothing"), "--program", str(tmp_path / "p.bin")])
    assert r.exit_code == 2 and "publish to it first" in r.output


class _SlowImport:
    """A meta path finder that makes importing `names` take `seconds` (a loaded machine)."""

    def __init__(self, names, seconds):
        self.names, self.seconds, self.hits = set(names), seconds, []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            self.hits.append(name)
            time.sleep(self.seconds)
        return None                       # the normal finders go on


def test_the_bound_covers_importing_the_transport(model, built, published, server, tmp_path, monkeypatch):
    """An HTTP store needs no fsspec or aiohttp: when importing them is slow (seconds under load),
    the pull still finishes inside the bound and the section is used."""
    import sys
    for name in [m for m in sys.modules if m.split(".")[0] in ("fsspec", "aiohttp")]:
        monkeypatch.delitem(sys.modules, name)
    slow = _SlowImport(["fsspec", "aiohttp"], 8.0)
    monkeypatch.setattr(sys, "meta_path", [slow, *sys.meta_path])
    monkeypatch.setenv("MACE_PROGRAM_STORE_TIMEOUT", "4")
    e = _engine(model, tmp_path / "p.bin", program_store=server.url)
    rep = e.summary()["program_store"]
    assert rep["status"] == "fetched" and rep["seconds"] < 4.0, rep
    assert e.program_cache_report.compiled == 0 and e.program_cache_report.from_cache == built[1]
    assert slow.hits == []
