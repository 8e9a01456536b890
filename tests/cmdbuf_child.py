"""Child process of tests/test_command_buffer.py: runs a model on the first OpenCL device that
offers cl_khr_command_buffer (the parent points OCL_ICD_VENDORS at a driver that has it), with
the recorded run, with per-launch enqueues (MACE_COMMAND_BUFFER=0), and after a rebind (what
tuning does), and reports what it saw as JSON on stdout."""
from __future__ import annotations

import json
import os
import sys

import numpy as np


def main(model_path: str, input_path: str, out_dir: str) -> int:
    import mace
    from mace.runtime.opencl import command_buffer
    from mace.runtime.opencl.device import list_devices

    devices = list_devices()
    index = next((i for i, d in enumerate(devices) if command_buffer.offered(d)), None)
    report = {"devices": [f"{d.platform.version} / {d.name}" for d in devices], "index": index}
    if index is None:
        print(json.dumps(report))
        return 3
    x = np.load(input_path)
    engine = mace.Engine(model_path, runtime="gpu", device=index, use_program_cache=False)
    name = engine.input_names[0]
    out = engine.output_names[0]
    ex = engine.executor
    np.save(os.path.join(out_dir, "recorded.npy"), engine.run({name: x})[out])
    report.update(recorded=ex.command_buffer.count if ex.command_buffer else 0, launches=len(ex.launches),
                  note=ex.command_buffer_note)
    # a rebind (the tuner switching an op's variant) must be recorded again before the next run
    first = ex.op_names()[0]
    before = ex.command_buffer
    ex.rebind(first)
    np.save(os.path.join(out_dir, "rebound.npy"), engine.run({name: x})[out])
    report["rerecorded"] = ex.command_buffer is not None and ex.command_buffer is not before
    os.environ["MACE_COMMAND_BUFFER"] = "0"
    plain = mace.Engine(model_path, runtime="gpu", device=index, use_program_cache=False)
    np.save(os.path.join(out_dir, "plain.npy"), plain.run({name: x})[out])
    report.update(plain_recorded=plain.executor.command_buffer is not None, plain_note=plain.executor.command_buffer_note)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
