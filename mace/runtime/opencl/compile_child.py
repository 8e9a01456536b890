"""A compile process: builds OpenCL programs from source and prints their binaries.

Run as a script (`python compile_child.py PLATFORM DEVICE`), not imported by the engine: PoCL
compiles one program at a time per process (threads gain nothing there), so a cold start on a
machine with cores to spare spreads its programs over several of these (`parallel.py`). Reads
one JSON line per program from stdin ({"key", "source", "options", "launches"}) until stdin
closes; prints one JSON line per program as soon as it is done:
    {"key": K, "ok": true, "binary": BASE64, "seconds": [build, launches, binary]}
    or {"key": K, "ok": false, "log": "..."}
Each of the program's launches (`parallel.launch_spec`: kernel, sizes, scalar arguments, buffer
sizes) is made once on zero-filled buffers first: PoCL generates a kernel's code for the local
size it is launched with, and the binary then holds that code, so the engine's first launch of
the program loaded from it compiles nothing. Imports only numpy and pyopencl; leaves with os._exit.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import time


def launch(cl, ctx, queue, prog, spec: dict) -> None:
    """One launch of a kernel as the engine will make it (its code generated); a failure here
    only leaves that code to the engine's first launch."""
    import numpy as np
    try:
        kernel = cl.Kernel(prog, spec["kernel"])
        keep = []
        for i, arg in enumerate(spec["args"]):
            if "buffer" in arg:
                keep.append(cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR,
                                      hostbuf=np.zeros(max(arg["buffer"], 4), np.uint8)))
                kernel.set_arg(i, keep[-1])
            elif "bytes" in arg:
                kernel.set_arg(i, base64.b64decode(arg["bytes"]))
            else:
                kernel.set_arg(i, None)
        cl.enqueue_nd_range_kernel(queue, kernel, spec["gws"], spec["lws"])
        queue.finish()
    except Exception as exc:  # noqa: BLE001
        print(json.dumps({"launch_failed": spec["kernel"], "why": " ".join(str(exc).split())[:300]}), flush=True)


def main(argv: list[str]) -> None:
    import pyopencl as cl
    platform, index = int(argv[1]), int(argv[2])
    device = cl.get_platforms()[platform].get_devices()[index]
    ctx = cl.Context([device])
    queue = cl.CommandQueue(ctx, device)
    for raw in sys.stdin:
        job = json.loads(raw)
        prog = cl.Program(ctx, job["source"])
        try:
            t0 = time.perf_counter()
            prog.build(options=job["options"], devices=[device], cache_dir=False)
            t1 = time.perf_counter()
            for spec in job.get("launches", ()):
                launch(cl, ctx, queue, prog, spec)
            t2 = time.perf_counter()
            blob = bytes(prog.get_info(cl.program_info.BINARIES)[0])
            seconds = [round(t1 - t0, 3), round(t2 - t1, 3), round(time.perf_counter() - t2, 3)]
            line = {"key": job["key"], "ok": True, "binary": base64.b64encode(blob).decode("ascii"),
                    "seconds": seconds}
        except Exception as exc:  # noqa: BLE001 - any driver error is this program's failure
            log = ""
            try:
                log = prog.get_build_info(device, cl.program_build_info.LOG)
            except Exception:  # noqa: BLE001
                pass
            line = {"key": job["key"], "ok": False, "log": str(log or exc)[:4000]}
        print(json.dumps(line), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
