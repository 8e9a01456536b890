"""The device farm on a real local Ray cluster (ray.cluster_utils.Cluster) whose nodes own
different real OpenCL devices, selected per node as tests/test_implementations.py does
(OCL_ICD_VENDORS): the head node Intel's CPU runtime, one node Debian's PoCL 3.1, two nodes
PyPI's PoCL. One `farm build` of a one-conv model: every device gets its validated section,
the merged file is signed by the farm key and serves every device with 0 compiles, and the
node running PyPI PoCL's job is killed mid-job (jobs wait on MACE_TEST_FARM_HOLD) so that job
is retried on the other PyPI PoCL node. One cluster for the session (Ray is slow to start)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mace.programcache import signing
from mace.programcache.maintenance import load
from tests.farm.implementations import DEBIAN_ICD, intel_env

ROOT = Path(__file__).resolve().parents[2]


def _node_env(name: str, hold: Path) -> tuple[dict, str | None]:
    env = {"MACE_TEST_FARM_HOLD": str(hold)}
    if name == "debian":
        return {**env, "OCL_ICD_VENDORS": str(DEBIAN_ICD)}, "PoCL 3.1"
    if name == "intel":
        return {**env, **intel_env()}, "Intel(R) OpenCL"
    return env, None


def _resources(env: dict, only: str | None) -> subprocess.Popen:
    args = [sys.executable, "-m", "mace.farm.resources", "--devices"] + (["--only", only] if only else [])
    return subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def cluster(farm_prerequisites, tmp_path_factory):
    import ray
    from ray.cluster_utils import Cluster
    hold = tmp_path_factory.mktemp("hold")
    names = ["intel", "debian", "pypi-a", "pypi-b"]
    envs = {n: _node_env(n, hold) for n in names}
    procs = {n: _resources(*envs[n]) for n in names}
    devices = {n: json.loads(p.communicate(timeout=120)[0]) for n, p in procs.items()}
    from mace.farm.resources import node_resources
    for n, devs in devices.items():
        assert len(devs) == 1, f"node {n} should own one device, sees {devs}"
    res = {n: node_resources(devices=devices[n]) for n in names}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": res["intel"],
                                                      "env_vars": envs["intel"][0]})
    nodes = {n: c.add_node(num_cpus=1, resources=res[n], env_vars=envs[n][0], wait=False) for n in names[1:]}
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield {"cluster": c, "nodes": nodes, "devices": {n: d[0] for n, d in devices.items()}, "hold": hold}
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def farm(cluster, tmp_path_factory, tiny_deployment):
    """One farm build; the node running PyPI PoCL's job is killed while the job runs."""
    from mace.farm.driver import build
    ws = tmp_path_factory.mktemp("farm")
    tiny_deployment(ws)
    keys = ws / "keys"
    keys.mkdir(mode=0o700)
    pub = signing.write_key_pair(keys / "farm.pem")
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(doc=build(ws / "mace.yml", address="auto", key=keys / "farm.pem",
                                                             build_dir=ws / "build")))
    t.start()
    hold, pypi = cluster["hold"], cluster["devices"]["pypi-a"]["fp_id"]
    deadline = time.monotonic() + 240
    while len(list(hold.glob("*.started"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    [marker] = hold.glob(f"*.{pypi}.*.started")
    killed = marker.read_text()
    victim = [n for n in cluster["nodes"].values() if n.node_id == killed]
    assert victim, "PyPI PoCL's job runs on a PyPI PoCL node"
    cluster["cluster"].remove_node(victim[0], allow_graceful=False)
    (hold / "release").write_text("")
    t.join(300)
    assert "doc" in out, "the farm build did not finish"
    return {"doc": out["doc"], "killed": killed, "pub": pub, "pypi": pypi, "markers": list(hold.glob("*.started"))}


def test_every_device_gets_its_validated_section(cluster, farm):
    doc = farm["doc"]
    fps = sorted(d["fp_id"] for d in cluster["devices"].values())
    assert doc["failed"] == 0, doc
    got = {d["fp_id"]: d for d in doc["devices"] if d["jobs"]}
    assert sorted(got) == sorted(set(fps))
    for d in got.values():
        [job] = d["jobs"]
        assert job["validation"]["passed"] and job["programs"] >= 1, d
    assert sorted(doc["merged"]["sections"]) == sorted(set(fps))


def test_merged_file_is_signed_and_serves_each_device_with_0_compiles(cluster, farm):
    merged = farm["doc"]["merged"]
    data, findings = load(merged["file"])
    assert not findings
    trusted = signing.TrustedKeys({farm["pub"].key_id: farm["pub"]}, "test", [])
    sigs = signing.check_sections(data, trusted)
    assert all(s.signed_by == [farm["pub"].key_id] for s in sigs.values()) and len(sigs) == 3
    for fp, served in merged["serves"].items():
        assert served["tiny"]["compiled"] == 0 and served["tiny"]["from_cache"] >= 1, (fp, served)


def test_a_killed_node_has_its_job_retried_elsewhere(farm):
    [pypi] = [d for d in farm["doc"]["devices"] if d["fp_id"] == farm["pypi"]]
    [job] = pypi["jobs"]
    assert job["node_id"] and job["node_id"] != farm["killed"]
    assert len([m for m in farm["markers"] if f".{farm['pypi']}." in m.name]) == 2   # started twice
