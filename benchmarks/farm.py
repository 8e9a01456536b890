"""N models x M devices: the device farm (one Ray job per pair, a local Ray cluster with one
node per OpenCL implementation) against the same jobs as a sequential loop (one process per
device, its models one after the other). Both run mace.farm.job.run on every pair (compile,
optional tuning, validation against onnxruntime); wall time and CPU time of each.

CPU time: the sequential loop's children (getrusage); the farm's whole process tree (this
process, Ray's daemons and workers, read from /proc before the cluster stops), and the jobs'
own share (each job's process time). Linux only.

    python benchmarks/farm.py --models 3 [--tune-budget 0] > farm.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
IMPLEMENTATIONS = {
    "pypi-pocl": ({}, None),
    "debian-pocl": ({"OCL_ICD_VENDORS": os.environ.get("MACE_TEST_CMDBUF_ICD", "/opt/mace-cmdbuf-icd")}, "PoCL 3.1"),
    "intel-cpu": ({"OCL_ICD_VENDORS": os.environ.get("MACE_TEST_INTEL_ICD", str(VENV / "etc" / "mace-intel-icd")),
                   "LD_LIBRARY_PATH": str(VENV / "lib")}, "Intel(R) OpenCL"),
}


def make_models(ws: Path, n: int) -> Path:
    """`n` small conv nets (growing width; 3x3/5x5/7x7 first convs and Relu/Sigmoid/Tanh in turn, so
    each model has programs of its own) and a mace.yml naming them (checksums included)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save
    lines = ["library_name: farmbench", "target_abis: [host]", "models:"]
    for i in range(n):
        rng = np.random.default_rng(i)
        c = 8 * (i + 1)
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
        k, act = (3, 5, 7)[i % 3], ("Relu", "Sigmoid", "Tanh")[i % 3]     # different programs per model
        inits = [numpy_helper.from_array(rng.normal(0, 0.3, (c, 3, k, k)).astype(np.float32), "w1"),
                 numpy_helper.from_array(rng.normal(0, 0.1, (c, c, 3, 3)).astype(np.float32), "w2"),
                 numpy_helper.from_array(rng.normal(0, 0.1, (c, 10)).astype(np.float32), "fc")]
        p = k // 2
        nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[p, p, p, p]), helper.make_node(act, ["a"], ["b"]),
                 helper.make_node("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
                 helper.make_node(act, ["c"], ["d"]), helper.make_node("GlobalAveragePool", ["d"], ["e"]),
                 helper.make_node("Flatten", ["e"], ["f"]), helper.make_node("MatMul", ["f", "fc"], ["y"])]
        m = helper.make_model(helper.make_graph(nodes, f"m{i}", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        path = ws / f"net{i}.onnx"
        save(m, path)
        lines += [f"  net{i}:", "    platform: onnx", f"    model_file_path: net{i}.onnx",
                  f"    model_sha256_checksum: {hashlib.sha256(path.read_bytes()).hexdigest()}",
                  "    input_tensors: [x]", '    input_shapes: ["1,3,32,32"]', "    output_tensors: [y]",
                  '    output_shapes: ["1,10"]', "    runtime: gpu"]
    (ws / "mace.yml").write_text("\n".join(lines) + "\n")
    return ws / "mace.yml"


def tree_cpu_seconds() -> float:
    """utime + stime of this process and every live descendant (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
                parent[int(d.name)], cpu[int(d.name)] = int(f[1]), (int(f[11]) + int(f[12])) / tick
            except (OSError, IndexError, ValueError):
                continue
    me, total = os.getpid(), 0.0
    for pid in cpu:
        p = pid
        while p and p != me:
            p = parent.get(p, 0)
        if p == me:
            total += cpu[pid]
    return total


def child(ws: Path, only: str | None, tune_budget: float) -> None:
    """One device's jobs, one after the other (the sequential loop runs one such process per device)."""
    from mace.farm import job
    from mace.farm.resources import local_devices
    [dev] = local_devices(only)
    doc = json.loads((ws / "specs.json").read_text())
    for name in doc:
        spec = {"model": name, "fp_id": dev["fp_id"], "model_bytes": (ws / f"{name}.mace").read_bytes(),
                "onnx_bytes": (ws / f"{name}.onnx").read_bytes(), "runtime": "gpu", "tune_budget": tune_budget}
        res = job.run(spec)
        assert res["summary"]["validation"]["passed"], res["summary"]


def sequential(ws: Path, impls: list[str], tune_budget: float) -> dict:
    from mace.config import load_config
    from mace.convert.deployment import convert_config
    res = convert_config(load_config(ws / "mace.yml"), ws / "seqbuild")
    for r in res:
        (ws / f"{r.name}.mace").write_bytes(Path(r.output).read_bytes())
    (ws / "specs.json").write_text(json.dumps([r.name for r in res]))
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    for name in impls:
        env, only = IMPLEMENTATIONS[name]
        args = [sys.executable, __file__, "--child", str(ws), "--tune-budget", str(tune_budget)]
        subprocess.run(args + (["--only", only] if only else []), env={**os.environ, **env}, check=True, cwd=ROOT)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}


def farm(ws: Path, impls: list[str], tune_budget: float) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from mace.farm.driver import build
    from mace.farm.resources import node_resources
    from mace.programcache import signing
    signing.write_key_pair(ws / "farm.pem")
    t_start, c_start = time.perf_counter(), tree_cpu_seconds()
    res = {}
    for name in impls:
        env, only = IMPLEMENTATIONS[name]
        out = subprocess.run([sys.executable, "-m", "mace.farm.resources", "--devices"] + (["--only", only] if only else []),
                             env={**os.environ, **env}, capture_output=True, text=True, check=True, cwd=ROOT).stdout
        res[name] = (node_resources(devices=json.loads(out)), env)
    first, *rest = impls
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": res[first][0], "env_vars": res[first][1]})
    for name in rest:
        c.add_node(num_cpus=1, resources=res[name][0], env_vars=res[name][1])
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    started = time.perf_counter()
    c0 = tree_cpu_seconds()
    doc = build(ws / "mace.yml", address="auto", key=ws / "farm.pem", build_dir=ws / "farmbuild",
                tune_budget=tune_budget, verify=False)
    wall, cpu = time.perf_counter() - started, tree_cpu_seconds() - c0
    ray.shutdown()
    c.shutdown()
    jobs = [j for d in doc["devices"] for j in d["jobs"]]
    return {"wall_s": wall, "cpu_s": cpu, "wall_with_cluster_start_s": started - t_start + wall,
            "cluster_start_cpu_s": c0 - c_start, "jobs_cpu_s": sum(j.get("cpu_seconds", 0) for j in jobs),
            "jobs": len(jobs), "failed": doc["failed"],
            "per_job": [{k: j.get(k) for k in ("model", "programs", "seconds", "cpu_seconds")} | {"fp_id": d["fp_id"]}
                        for d in doc["devices"] for j in d["jobs"]]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--tune-budget", type=float, default=0.0)
    ap.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    ap.add_argument("--child", default=None)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child), args.only, args.tune_budget)
        return
    os.environ.setdefault("PYOPENCL_NO_CACHE", "1")
    os.environ.setdefault("POCL_KERNEL_CACHE", "0")
    impls = args.implementations.split(",")
    ws = Path(tempfile.mkdtemp(prefix="mace-farm-bench-"))
    make_models(ws, args.models)
    out = {"models": args.models, "devices": impls, "tune_budget_s": args.tune_budget,
           "load_average_before": os.getloadavg()}
    out["sequential"] = sequential(ws, impls, args.tune_budget)
    out["farm"] = farm(ws, impls, args.tune_budget)
    out["load_average_after"] = os.getloadavg()
    out["cpu_count"] = os.cpu_count()
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
