"""The farm against a separate Ray cluster through ray://: a head started by `ray start --head
--ray-client-server-port` in a process group of its own, one node that owns two OpenCL devices
(Intel's CPU runtime and PyPI's PoCL) and reaches a board over ssh (the local sshd of
tests/deploy, whose Python sees Debian's PoCL 3.1): three devices on one node of two CPUs, so
jobs queue on the resources.

- `mace farm build --address ray://...` gives every device its validated, tuned section; the
  board's job runs through the remote deploy path, and the merged file serves it with 0 compiles;
- `mace farm verify STORE` publishes a good section a device queued (publish_on_miss without an
  accepted key) and rejects a tampered one (a binary built without the ReLU, under the key of the
  one with it, signed by the device key); a device then pulls the published section.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mace.programcache import signing
from tests.farm.implementations import DEBIAN_ICD, intel_env

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the Ray client server did not listen on {port} within {seconds} s")


@pytest.fixture(scope="module")
def head(farm_prerequisites, sshd, tmp_path_factory):
    """The separate cluster: (ray:// address, the node's environment, its devices)."""
    root = tmp_path_factory.mktemp("farmhead")
    conf = sshd.write_conf(root / "device.yml", {"board": sshd.device(
        0, workdir=root / "board", env={"PYTHONPATH": str(ROOT), "OCL_ICD_VENDORS": str(DEBIAN_ICD)})})
    env = {**os.environ, **intel_env(), "PYTHONPATH": str(ROOT),
           "MACE_FARM_DEVICE_CONF": str(conf), "RAY_USAGE_STATS_ENABLED": "0"}
    res = subprocess.run([sys.executable, "-m", "mace.farm.resources", "--device-conf", str(conf)], env=env,
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    resources = json.loads(res.stdout)
    client = _port()
    temp = tempfile.mkdtemp(prefix="mray-", dir="/tmp")          # Ray's socket paths must stay short
    proc = subprocess.Popen([str(RAY), "start", "--head", "--block", f"--port={_port()}",
                             f"--ray-client-server-port={client}", "--num-cpus=2", "--include-dashboard=false",
                             f"--temp-dir={temp}", f"--resources={json.dumps(resources)}", "--disable-usage-stats"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        _wait_port(client, proc)
        yield {"address": f"ray://127.0.0.1:{client}", "resources": resources, "root": root}
    finally:
        for sig, wait in ((signal.SIGTERM, 1), (signal.SIGKILL, 10)):      # the whole group: Ray's processes
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        try:
            os.killpg(proc.pid, signal.SIGKILL)        # children left behind once `ray start` has gone
        except ProcessLookupError:
            pass


def _mace(args: list[str], **env) -> dict:
    r = subprocess.run([sys.executable, "-m", "mace", *args, "--json"], capture_output=True, text=True,
                       timeout=400, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                   # a loaded machine starts the client's server slowly
                                                   "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "30", **env})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def built(head, tiny_deployment):
    ws = head["root"] / "ws"
    ws.mkdir()
    tiny_deployment(ws)
    pub = signing.write_key_pair(ws / "farm.pem")
    doc = _mace(["farm", "build", "--config", str(ws / "mace.yml"), "--address", head["address"], "--key",
                 str(ws / "farm.pem"), "--build-dir", str(ws / "build"), "--tune-budget", "1"])
    return {"doc": doc, "ws": ws, "pub": pub}


def test_ray_client_build_three_devices_on_one_node_one_a_board(head, built):
    doc = built["doc"]
    fps = sorted(k[len("mace_fp_"):] for k in head["resources"] if k.startswith("mace_fp_"))
    assert len(fps) == 3 and "mace_board_board" in head["resources"]
    assert doc["address"].startswith("ray://") and doc["failed"] == 0, doc
    jobs = {d["fp_id"]: d["jobs"] for d in doc["devices"]}
    assert sorted(jobs) == fps and all(len(j) == 1 for j in jobs.values())
    [node] = {j[0]["node_id"] for j in jobs.values()}               # one node ran them all
    assert [j[0]["board"] for j in jobs.values() if j[0]["board"]] == ["board"]
    for j in jobs.values():
        assert j[0]["validation"]["passed"] and j[0]["programs"] >= 1 and j[0]["tuning_gain"] is not None, j
    merged = doc["merged"]
    assert sorted(merged["sections"]) == fps
    for fp, served in merged["serves"].items():
        assert served["tiny"]["compiled"] == 0 and served["tiny"]["from_cache"] >= 1, (fp, served)


def _section(path: Path, *fps: str):
    from mace.programcache.format import CacheData
    from mace.programcache.maintenance import load
    from mace.programcache.merge import merge_into
    return merge_into(CacheData(), load(path)[0], sections=list(fps))


def _conv_key(data, fp: str, relu: bool) -> tuple:
    """The key of the conv program (not its padding one), fused with the ReLU or not."""
    [k] = [k for k in data.programs if k[0] == fp and k[1].startswith("conv|") and "PAD_ONLY" not in k[1]
           and ("-DACT=1" in k[1]) == relu]
    return k


def _no_relu_binary(ws: Path, fp: str, tiny_deployment) -> bytes:
    """The conv binary of the same model without its ReLU, compiled on this process's device."""
    import mace
    from mace.convert import convert
    d = ws / "norelu"
    d.mkdir()
    tiny_deployment(d, relu=False)
    convert(str(d / "tiny.onnx"), str(d / "m.mace"))
    with mace.Engine(d / "m.mace", runtime="gpu", program=str(d / "p.bin"), warmup=True) as e:
        assert e.summary()["device_fingerprint"] == fp
        e.save_programs()
    data = _section(d / "p.bin", fp)
    return data.programs[_conv_key(data, fp, False)].blob


def test_verify_publishes_a_good_queued_section_and_rejects_a_tampered_one(head, built, tiny_deployment,
                                                                           tmp_path, monkeypatch):
    from mace.programcache import DeviceFingerprint
    from mace.runtime.opencl.device import select_device
    from mace.store.publish import contribute, publish
    ws = built["ws"]
    fp = DeviceFingerprint.from_cl_device(select_device(None)).id        # PyPI's PoCL, a device of the node
    merged = Path(built["doc"]["merged"]["file"])
    store, others = tmp_path / "store", tmp_path / "others.bin"
    from mace.programcache.format import encode
    others.write_bytes(encode(_section(merged, *[f for f in built["doc"]["merged"]["sections"] if f != fp])))
    publish(others, str(store), ws / "farm.pem")           # the store knows the other devices only
    signing.add_trusted(built["pub"], tmp_path / "trusted_keys")
    monkeypatch.setenv("MACE_TRUSTED_KEYS", str(tmp_path / "trusted_keys"))
    monkeypatch.setenv("MACE_PROGRAM_STORE_COPY", str(tmp_path / "copies"))
    signing.write_key_pair(tmp_path / "device.pem")
    good = _section(merged, fp)
    q_good = contribute(str(store), good, fp, tmp_path / "device.pem", 30)
    bad = _section(merged, fp)
    k = _conv_key(bad, fp, True)
    blob = _no_relu_binary(ws, fp, tiny_deployment)
    bad.programs[k] = dataclasses.replace(bad.programs[k], blob=blob, sha256=hashlib.sha256(blob).digest())
    q_bad = contribute(str(store), bad, fp, tmp_path / "device.pem", 30)
    assert q_good["action"] == q_bad["action"] == "queued" and q_good["path"] != q_bad["path"]

    doc = _mace(["farm", "verify", str(store), "--config", str(ws / "mace.yml"), "--address", head["address"],
                 "--key", str(ws / "farm.pem"), "--build-dir", str(ws / "build")])
    assert doc["queued"] == 2 and not doc["failed"] and not doc["waiting"], doc
    [pub] = doc["published"]
    [rej] = doc["rejected"]
    assert pub["queued"] == q_good["path"] and rej["path"] == q_bad["path"]
    assert any("validation failed" in r for r in rej["reasons"]), rej
    assert not list((store / "queue").rglob("*.bin")) and (store / rej["moved_to"]).is_file()

    # a device pulls the verified section: signed by the farm key, 0 compiles
    from mace.cli import cli
    r = CliRunner().invoke(cli, ["cache", "pull", str(store), "--program", str(tmp_path / "p.bin"), "--json"])
    assert r.exit_code == 0, r.output
    pulled = json.loads(r.output)
    assert pulled["status"] == "fetched" and pulled["fp_id"] == fp and pulled["programs"] >= 1
