"""A program file written on one OpenCL device, offered to another (and the reverse).

Step 1: run the model on device A with program file P (A's section written).
Step 2: run it on device B with P: B finds no section of its own (a foreign-device warning),
        compiles from source, keeps A's section and adds its own; outputs are compared.
Step 3: the forced case: A's binaries re-filed under B's fingerprint (what a naive cache that
        trusts file names would do); B's driver rejects them (CL_INVALID_BINARY), they are
        quarantined for B and compiled from source; a second start does not retry them.

    python benchmarks/cross_device.py --a "Portable" --b "NVIDIA" [--model mobilenet_v2]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import converted  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--model", default="mobilenet_v2")
    args = ap.parse_args()
    import mace
    from mace.programcache import DeviceFingerprint, ProgramCache
    from mace.runtime.opencl.device import select_device
    from mace.tools.validate import metrics
    _, path = converted(args.model)
    x = {"input": np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)}
    tmp = Path(tempfile.mkdtemp(prefix="mace-cross-"))
    out = {}
    for first, second, tag in ((args.a, args.b, "a_to_b"), (args.b, args.a, "b_to_a")):
        prog = tmp / f"{tag}.bin"
        ea = mace.Engine(path, runtime="gpu", device=first, program=prog)
        ya = ea.run(x)["output"]
        eb = mace.Engine(path, runtime="gpu", device=second, program=prog)
        yb = eb.run(x)["output"]
        fa = DeviceFingerprint.from_cl_device(select_device(first))
        fb = DeviceFingerprint.from_cl_device(select_device(second))
        final = ProgramCache.open(prog, device_fp=fb)
        out[tag] = {"first": ea.summary()["program_cache"], "second": eb.summary()["program_cache"],
                    "cosine_between_devices": metrics(yb, ya)["cosine"],
                    "sections_after": [s.short() for s in final.data.sections.values()]}
        # forced: file A's binaries under B's fingerprint
        forced = tmp / f"{tag}.forced.bin"
        src = ProgramCache.open(prog, device_fp=fa)
        c = ProgramCache.open(forced, device_fp=fb)
        for key in src.program_keys(fa):
            c.put_binary(fb, key, src.get_binary(fa, key))
        c.save()
        e1 = mace.Engine(path, runtime="gpu", device=second, program=forced)
        y1 = e1.run(x)["output"]
        e2 = mace.Engine(path, runtime="gpu", device=second, program=forced)
        out[tag]["forced_first_start"] = e1.summary()["program_cache"]
        out[tag]["forced_second_start"] = e2.summary()["program_cache"]
        out[tag]["forced_cosine"] = metrics(y1, ya)["cosine"]
        print(f"{tag}: {eb.program_cache_report.summary_line()} | forced: {e1.program_cache_report.summary_line()}"
              f" | next start: {e2.program_cache_report.summary_line()}", file=sys.stderr)
    json.dump({"benchmark": "cross_device", "results": out}, sys.stdout, indent=2, default=str)
    print()


if __name__ == "__main__":
    main()
