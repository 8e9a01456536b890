"""Deploy to and run on remote ARM Linux devices over ssh (`device.yml`, docs/remote-devices.md).

    from mace.deploy import run_remote
    result = run_remote("device.yml", "nanopi", "build/model.mace", program="prog.bin",
                        runtime="gpu", inputs={"input": "x.npy"}, output_dir="out")

The system's OpenSSH client (`ssh`, `scp`) does the transport, so ~/.ssh/config, agents and keys
work as they do in a shell; host key checking stays on. The remote device needs Python and mace
(`pip install mace`); nothing is installed there silently.
"""
from __future__ import annotations

from mace.deploy.devices import DeviceConf, DeviceSpec, load_devices
from mace.deploy.remote import deploy, run_remote

__all__ = ["DeviceConf", "DeviceSpec", "load_devices", "deploy", "run_remote"]
