#!/usr/bin/env python3
"""MACE's CMake-flow entry point, kept for muscle memory:

    python tools/python/convert.py --config=mace.yml --target_abi=armeabi-v7a \
        --target_socs=pocl --device_conf=devices.yml --enable_opencl=true

A thin wrapper over `mace convert --config` (mace.tools.build.build): the same conversion,
per-target OpenCL program files, merged file, tuning and bundles. Options take MACE's
underscore spelling (dashes work too); --enable_opencl takes true|false.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import mace  # noqa: F401
except ImportError:          # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convert.py", description=__doc__.split("\n\n")[0])

    def opt(name, **kw):
        dashed = name.replace("_", "-")
        names = [f"--{name}"] + ([f"--{dashed}"] if dashed != name else [])
        p.add_argument(*names, dest=name, **kw)

    opt("config", required=True, help="deployment file mace.yml")
    opt("target_abi", default=None, help="host, armeabi-v7a, arm64-v8a, ... (recorded)")
    opt("target_socs", default=None, help="comma-separated target devices of this machine, or all")
    opt("device_conf", default=None, help="device.yml of remote devices (needs mace.deploy)")
    opt("enable_opencl", default=None, metavar="true|false", help="build OpenCL programs")
    opt("build_dir", default=None, help="output root (default: build/ next to mace.yml)")
    opt("output", default=None, help="MACE's name for --build_dir")
    opt("model_name", default=None, help="only this model")
    opt("tune", action="store_true", help="tune kernel launches on each target")
    opt("embed", action="store_true", help="write single-file bundles")
    opt("json", action="store_true", help="one JSON document on stdout")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from mace.cli.common import setup_logging as _setup_logging
    from mace.cli.progress import for_stderr
    from mace.cli.workflow import _bool_text, _print_build
    from mace.errors import MaceError
    from mace.jsondoc import dumps
    from mace.tools.build import build
    _setup_logging(0, False)
    try:
        doc = build(args.config, target_socs=args.target_socs, tune=args.tune,
                    enable_opencl=_bool_text(args.enable_opencl), target_abi=args.target_abi,
                    build_dir=args.build_dir or args.output, embed_bundles=args.embed,
                    device_conf=args.device_conf, model_name=args.model_name,
                    progress=for_stderr(not args.json, transient=False))
    except MaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(dumps(doc))
    else:
        _print_build(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
