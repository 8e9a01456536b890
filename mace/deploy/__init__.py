"""Deploy to and run on remote ARM Linux devices over ssh (`device.yml`, docs/remote-devices.md).

    from mace.deploy import run_remote
    result = run_remote("device.yml", "nanopi", "build/model.mace", program="prog.bin",
                        runtime="gpu", inputs={"input": "x.npy"}, output_dir="out")

The system's OpenSSH client (`ssh`, `scp`) does the transport, so ~/.ssh/config, agents and keys
work as they do in a shell; host key checking stays on. The remote device needs Python and mace
(the `mace-engine` wheel); nothing is installed there silently.
"""
from __future__ import annotations

__all__ = ["DeviceConf", "DeviceSpec", "load_devices", "deploy", "run_remote"]


def __getattr__(name):  # lazy: the CLI registers `deploy` without paying for pydantic
    if name in ("DeviceConf", "DeviceSpec", "load_devices"):
        from mace.deploy import devices
        return getattr(devices, name)
    if name in ("deploy", "run_remote"):
        from mace.deploy import remote
        return getattr(remote, name)
    raise AttributeError(name)
