"""Serving under load: N client threads against one engine, against a pool, and against
onnxruntime's session, on each runtime; throughput, p50/p99 latency and wrong outputs, in one run.
Configurations run in interleaved rounds, so a load on the machine that comes and goes (it may be
shared) weighs on all of them alike.

    python benchmarks/serving.py [--model squeezenet1_1] [--threads 1,2,4,8] [--runs 850] > serving.json
    python benchmarks/serving.py --soak 600 [--soak-runtime gpu] > soak.json

"one engine" is `mace.Engine(..., contexts=1)` (runs take turns); "pool" is
`mace.Engine(..., contexts=N)` (up to N runs at once, each context with its own buffers and
queue, programs and device weights shared). onnxruntime's `InferenceSession.run` is shared by
the same threads. Every output is compared with the single-threaded one of its input (4 inputs
cycled); `wrong` counts those that differ beyond rtol 1e-5 / atol 1e-5, `exact` those bitwise
equal. BLAS, onnxruntime and mace's CPU runtime (`threads=`) run --blas-threads threads per
request (default 1: concurrency comes from the client threads, not from each request spreading
over the cores).

--soak SECONDS runs one shared engine under --soak-threads client threads that long, sampling
runs, RSS and the device bytes the process's executors hold every --soak-every seconds; the
RSS after warm-up (the first sample past 10 % of the time) is the reference of `rss_drift`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path


def _blas_threads_from_argv() -> None:
    """BLAS reads its thread count when NumPy loads: set it before the first import."""
    n = "1"
    for i, a in enumerate(sys.argv):
        if a == "--blas-threads" and i + 1 < len(sys.argv):
            n = sys.argv[i + 1]
        elif a.startswith("--blas-threads="):
            n = a.split("=", 1)[1]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, n)


_blas_threads_from_argv()
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import converted, machine  # noqa: E402

from mace.latency import latency_stats  # noqa: E402

RTOL = ATOL = 1e-5


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def device_mb() -> float:
    from mace.runtime.opencl.shared import device_bytes
    return device_bytes()["bytes"] / 2**20


class Checker:
    """Single-threaded reference outputs of a few inputs; counts wrong and exact results."""

    def __init__(self, run, shape, n_inputs: int = 4):
        rng = np.random.default_rng(0)
        self.xs = [rng.uniform(0, 1, shape).astype(np.float32) for _ in range(n_inputs)]
        self.ref = [np.array(run(x), copy=True) for x in self.xs]
        self.wrong = self.exact = self.total = 0
        self._lock = threading.Lock()

    def check(self, k: int, y) -> None:
        ok = np.allclose(y, self.ref[k], rtol=RTOL, atol=ATOL)
        same = np.array_equal(y, self.ref[k])
        with self._lock:
            self.total += 1
            self.wrong += not ok
            self.exact += same


def load(run, checker: Checker, threads: int, runs: int) -> dict:
    """`threads` clients making `runs` runs in all (an equal share each), cycling through the
    checker's inputs: latencies, wall time and the checker's counts for this load."""
    runs = max(runs // threads, 1)
    lat: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    start = threading.Barrier(threads + 1)

    def client(t: int) -> None:
        start.wait()
        mine = lat[t]
        try:
            for i in range(runs):
                k = (i + t) % len(checker.xs)
                t0 = time.perf_counter()
                y = run(checker.xs[k])
                mine.append(time.perf_counter() - t0)
                checker.check(k, y)
        except Exception as exc:  # noqa: BLE001 - reported in the row, the others go on
            errors.append(f"{type(exc).__name__}: {exc}")

    ths = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    before = (checker.wrong, checker.exact, checker.total)
    start.wait()
    t0 = time.perf_counter()
    for th in ths:
        th.join()
    return {"lat": [x for m in lat for x in m], "seconds": time.perf_counter() - t0,
            "wrong": checker.wrong - before[0], "exact": checker.exact - before[1],
            "checked": checker.total - before[2], "errors": errors[:3]}


def row(engine: str, mode: str, threads: int, parts: list[dict]) -> dict:
    """One configuration's rounds together: throughput over their summed wall time."""
    lat = latency_stats([x for p in parts for x in p["lat"]], with_samples=False)
    wall = sum(p["seconds"] for p in parts)
    return {"engine": engine, "mode": mode, "threads": threads, "runs": lat["runs"], "seconds": wall,
            "throughput_per_s": lat["runs"] / wall, "p50_ms": lat.get("median_ms"),
            "p99_ms": lat.get("p99_ms"), "wrong": sum(p["wrong"] for p in parts),
            "exact": sum(p["exact"] for p in parts), "checked": sum(p["checked"] for p in parts),
            "errors": [e for p in parts for e in p["errors"]][:3]}


def serving(args) -> dict:
    """Every configuration is set up first, then run in --rounds interleaved rounds (each a share
    of --runs), so that a load on the machine that comes and goes weighs on all of them alike."""
    import onnxruntime as ort

    import mace
    onnx_path, mace_path = converted(args.model)
    threads = [int(t) for t in args.threads.split(",")]
    configs, engines = [], []
    for runtime in args.runtimes.split(","):
        for kind in ("one engine", "pool"):
            for n in threads:
                if kind == "pool" and n == 1:
                    continue   # the same as one engine
                eng = mace.Engine(mace_path, runtime=runtime, device=args.device,
                                  contexts=1 if kind == "one engine" else n,
                                  threads=args.blas_threads if runtime == "cpu" else None)
                engines.append(eng)
                name = eng.input_names[0]

                def run(x, eng=eng, name=name):
                    return next(iter(eng.run({name: x}).values()))
                checker = Checker(run, eng.input_shape(name))
                for x in checker.xs * 2:
                    run(x)
                configs.append((f"mace {runtime}", kind, n, run, checker))
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.blas_threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    shape = tuple(d if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape)

    def ort_run(x):
        return sess.run(None, {iname: x})[0]
    ort_checker = Checker(ort_run, shape)
    configs += [("onnxruntime cpu", "one session", n, ort_run, ort_checker) for n in threads]
    parts: list[list[dict]] = [[] for _ in configs]
    for r in range(args.rounds):
        for i, (_, _, n, run, checker) in enumerate(configs):
            parts[i].append(load(run, checker, n, max(args.runs // args.rounds, n)))
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)
    rows = [row(engine, kind, n, parts[i]) for i, (engine, kind, n, _, _) in enumerate(configs)]
    for r in rows:
        _say(r)
    device = device_mb()
    for eng in engines:
        eng.close()
    concurrent = [r for r in rows if r["threads"] > 1 and r["engine"].startswith("mace")]
    summary = {"concurrent_mace_runs": sum(r["checked"] for r in concurrent),
               "concurrent_mace_wrong": sum(r["wrong"] for r in concurrent),
               "device_mb_all_engines_open": device, "device_mb_after_close": device_mb()}
    for runtime in args.runtimes.split(","):
        one = next((r for r in rows if r["engine"] == f"mace {runtime}" and r["threads"] == 1), None)
        for mode in ("one engine", "pool"):
            two = next((r for r in rows if r["engine"] == f"mace {runtime}" and r["mode"] == mode
                        and r["threads"] == 2), None)
            if one and two:
                summary[f"{runtime} {mode}: 2 threads / 1 thread"] = two["throughput_per_s"] / one["throughput_per_s"]
    return {"benchmark": "serving", "model": args.model, "blas_threads": args.blas_threads,
            "rounds": args.rounds, "machine": machine(), "load_average": os.getloadavg(), "results": rows,
            "summary": summary}


def soak(args) -> dict:
    import mace
    _, mace_path = converted(args.model)
    eng = mace.Engine(mace_path, runtime=args.soak_runtime, device=args.device, contexts=args.soak_threads)
    name = eng.input_names[0]

    def run(x):
        return next(iter(eng.run({name: x}).values()))
    checker = Checker(run, eng.input_shape(name))
    stop = threading.Event()
    counts = [0] * args.soak_threads

    def client(t: int) -> None:
        i = 0
        while not stop.is_set():
            k = (i + t) % len(checker.xs)
            checker.check(k, run(checker.xs[k]))
            counts[t] += 1
            i += 1

    ths = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(args.soak_threads)]
    t0 = time.perf_counter()
    for th in ths:
        th.start()
    samples = []
    while True:
        now = time.perf_counter() - t0
        samples.append({"t_s": round(now, 1), "runs": sum(counts), "rss_mb": round(rss_mb(), 1),
                        "device_mb": round(device_mb(), 2), "wrong": checker.wrong})
        print(f"  soak {samples[-1]}", file=sys.stderr)
        if now >= args.soak:
            break
        time.sleep(min(args.soak_every, max(args.soak - now, 0.1)))
    stop.set()
    for th in ths:
        th.join()
    eng.close()
    after_close = {"rss_mb": round(rss_mb(), 1), "device_mb": round(device_mb(), 2)}
    ref = next(s for s in samples if s["t_s"] >= 0.1 * args.soak)
    late = [s for s in samples if s["t_s"] >= ref["t_s"]]
    drift = max(abs(s["rss_mb"] - ref["rss_mb"]) for s in late) / ref["rss_mb"]
    return {"benchmark": "serving-soak", "model": args.model, "runtime": args.soak_runtime,
            "threads": args.soak_threads, "seconds": args.soak, "blas_threads": args.blas_threads,
            "machine": machine(), "load_average": os.getloadavg(), "runs": sum(counts),
            "wrong": checker.wrong, "checked": checker.total, "rss_after_warmup_mb": ref["rss_mb"],
            "rss_drift": drift, "after_close": after_close, "samples": samples}


def _say(row: dict) -> None:
    print(f"  {row['engine']:16s} {row['mode']:11s} x{row['threads']}: {row['throughput_per_s']:7.1f}/s "
          f"p50 {row['p50_ms']:7.2f} ms p99 {row['p99_ms']:7.2f} ms wrong {row['wrong']}/{row['checked']}"
          + (f" errors {row['errors']}" if row.get("errors") else ""), file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="squeezenet1_1")
    ap.add_argument("--runtimes", default="cpu,gpu")
    ap.add_argument("--threads", default="1,2,4,8", help="client thread counts")
    ap.add_argument("--runs", type=int, default=850, help="runs per configuration (shared by its client threads): the 12 concurrent mace "
                         "configurations of the default make 10,200")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds over the configurations")
    ap.add_argument("--device", default=None)
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS / onnxruntime intra-op / mace CPU threads per request (set before NumPy loads)")
    ap.add_argument("--soak", type=float, default=None, help="run the soak for this many seconds instead")
    ap.add_argument("--soak-runtime", default="gpu")
    ap.add_argument("--soak-threads", type=int, default=2)
    ap.add_argument("--soak-every", type=float, default=15.0, help="seconds between soak samples")
    args = ap.parse_args()
    result = soak(args) if args.soak else serving(args)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
