"""What a farm node advertises: one Ray custom resource per OpenCL device it can open, named by
the device's fingerprint id (`mace_fp_<id>`, quantity 1: one job per device at a time), one per
SoC family of those devices (`mace_soc_<soc>`, quantity: how many), and the same for the
devices of the boards of its device.yml, reachable from it over SSH (probed there: boards.py),
plus one per such board (`mace_board_<name>`). A fingerprint is one unit however many devices
of the node have it: its jobs run one at a time.

`python -m mace.farm.resources [--device-conf device.yml] [--only TEXT]` prints the node's resources as
JSON: a node is started with `ray start --resources "$(python -m mace.farm.resources)"`, so
what it advertises is what the OpenCL loader of that node's environment sees.
"""
from __future__ import annotations

import json
import re
import sys

FP_PREFIX = "mace_fp_"
SOC_PREFIX = "mace_soc_"
BOARD_PREFIX = "mace_board_"


def _token(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_").lower() or "unknown"


def fp_resource(fp_id: str) -> str:
    return FP_PREFIX + fp_id


def local_devices(only: str | None = None) -> list[dict]:
    """This process's OpenCL devices: index, fingerprint id, SoC family, description; `only`: those
    whose 'platform version / device name' contains that text (a node offering some of its devices)."""
    from mace.programcache import DeviceFingerprint
    from mace.runtime.opencl.device import describe, list_devices
    from mace.tools.build import soc_name
    out = []
    for i, d in enumerate(list_devices()):
        fp = DeviceFingerprint.from_cl_device(d)
        if only and only.lower() not in f"{d.platform.version} / {describe(d)}".lower():
            continue
        out.append({"index": i, "fp_id": fp.id, "soc": soc_name(d), "description": describe(d),
                    "short": fp.short()})
    return out


def node_resources(device_conf: str | None = None, devices: list[dict] | None = None) -> dict[str, float]:
    """The custom resources of a node whose environment sees `devices` (default: this one's)."""
    res: dict[str, float] = {}
    devices = list(devices if devices is not None else local_devices())
    if device_conf:
        from mace.farm.boards import board_devices
        boards = board_devices(device_conf)
        devices += boards
        for name in sorted({b["board"] for b in boards}):
            res[BOARD_PREFIX + _token(name)] = 1.0
    for d in devices:
        res[fp_resource(d["fp_id"])] = 1.0
        key = SOC_PREFIX + _token(d["soc"])
        res[key] = res.get(key, 0.0) + 1.0
    return res


def advertised(resources: dict) -> list[str]:
    """Fingerprint ids of the devices a cluster's resources name."""
    return sorted(k[len(FP_PREFIX):] for k in resources if k.startswith(FP_PREFIX))


def main(argv: list[str]) -> int:
    conf = argv[argv.index("--device-conf") + 1] if "--device-conf" in argv else None
    devices = local_devices(argv[argv.index("--only") + 1] if "--only" in argv else None)
    if "--devices" in argv:
        print(json.dumps(devices))
    else:
        print(json.dumps(node_resources(conf, devices)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
