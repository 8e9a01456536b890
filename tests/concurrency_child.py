"""Random schedules of threads and inputs against one shared engine; every output is compared
with the single-threaded one of its input. Imported by tests/test_concurrency.py, and run as a
child process there on other OpenCL implementations (`python -m tests.concurrency_child MODEL
RUNTIME CONTEXTS SEED [DEVICE]` prints a JSON report)."""
from __future__ import annotations

import json
import sys
import threading
import time

import numpy as np

RTOL, ATOL = 1e-5, 1e-6


def stress(engine, seed: int, runs: int = 240, n_inputs: int = 5) -> dict:
    """`runs` runs spread over 2 to 6 threads, each with its own random order of inputs and
    random pauses (none, a yield or up to a millisecond), started together."""
    rng = np.random.default_rng(seed)
    name, out = engine.input_names[0], engine.output_names[0]
    xs = [rng.uniform(-1, 1, engine.input_shape(name)).astype(np.float32) for _ in range(n_inputs)]
    refs = [engine.run({name: x})[out].copy() for x in xs]
    threads = int(rng.integers(2, 7))
    plans = [(rng.integers(0, n_inputs, runs // threads), rng.choice([0.0, 0.0, 1e-6, 1e-3], runs // threads))
             for _ in range(threads)]
    wrong, errors, done = [], [], [0]
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def client(t: int) -> None:
        order, pauses = plans[t]
        start.wait()
        try:
            for k, pause in zip(order, pauses):
                y = engine.run({name: xs[k]})[out]
                if pause:
                    time.sleep(pause)
                with lock:
                    done[0] += 1
                    if not np.allclose(y, refs[k], rtol=RTOL, atol=ATOL):
                        wrong.append((t, int(k), float(np.abs(y - refs[k]).max())))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")

    ths = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return {"threads": threads, "runs": done[0], "wrong": wrong[:5], "n_wrong": len(wrong), "errors": errors[:3]}


def main(model: str, runtime: str, contexts: str, seed: str, device: str | None = None) -> int:
    import mace
    from mace.runtime.opencl.device import describe, select_device
    with mace.Engine(model, runtime=runtime, contexts=int(contexts), device=device,
                     use_program_cache=False) as engine:
        report = stress(engine, int(seed))
        dev = select_device(device) if runtime != "cpu" else None
        report["device"] = f"{dev.platform.version} / {describe(dev)}" if dev is not None else "cpu"
        report["command_buffer"] = getattr(engine.executor, "command_buffer_note", None)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:6]))
