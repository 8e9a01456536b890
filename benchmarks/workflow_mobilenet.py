"""The seed's deployment workflow on MobileNetV2, as the README's "Deploying" section runs it.

Writes a project folder (the ONNX model and its mace.yml with the checksum) and prints the
commands to run there, or runs them with --run:

    python benchmarks/workflow_mobilenet.py DIR [--target-socs pocl] [--run]
      -> mace convert --config mace.yml --target-socs pocl
         mace validate build/mobilenet/model/mobilenet_v2.mace --reference mobilenet_v2.onnx
         mace report --config mace.yml -o report
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

YML = """library_name: mobilenet
target_abis: [host]
target_socs: [{socs}]
models:
  mobilenet_v2:
    platform: onnx
    model_file_path: mobilenet_v2.onnx
    model_sha256_checksum: {sha}
    input_tensors: [input]
    input_shapes: ["1,3,224,224"]
    input_ranges: ["0,1"]
    output_tensors: [output]
    output_shapes: ["1,1000"]
    runtime: cpu+gpu
    data_type: fp32_fp32
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--target-socs", default="pocl")
    ap.add_argument("--run", action="store_true")
    ap.add_argument("--runs", default="30")
    args = ap.parse_args()
    from mace.testing.models import materialize
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(materialize("mobilenet_v2"), d / "mobilenet_v2.onnx")
    sha = hashlib.sha256((d / "mobilenet_v2.onnx").read_bytes()).hexdigest()
    (d / "mace.yml").write_text(YML.format(socs=args.target_socs, sha=sha))
    mace = [sys.executable, "-m", "mace"]
    steps = [
        mace + ["convert", "--config", "mace.yml", "--target-socs", args.target_socs],
        mace + ["validate", "build/mobilenet/model/mobilenet_v2.mace", "--reference", "mobilenet_v2.onnx",
                "--runtime", "gpu", "--program", "build/mobilenet/opencl/mobilenet_compiled_opencl_kernel.bin"],
        mace + ["report", "--config", "mace.yml", "-o", "report", "--target-socs", args.target_socs,
                "--runs", args.runs, "--init-runs", "2"],
    ]
    for cmd in steps:
        print("$", " ".join(["mace"] + cmd[3:]), flush=True)
        if args.run:
            res = subprocess.run(cmd, cwd=d)
            if res.returncode != 0:
                sys.exit(res.returncode)


if __name__ == "__main__":
    main()
