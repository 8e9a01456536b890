"""The device farm: one Ray job per (model, device) on a node that owns the device, merged by
the driver into one multi-device program file signed with the farm key (`mace farm build`).

resources.py  what a node advertises (its OpenCL devices, its device.yml boards) as Ray
              custom resources; job.py  what one job does on its node (compile, tune within
              a budget, validate, return the section); boards.py  the same on a board over
              ssh; driver.py  the cluster, the jobs, the merge, the signature and the report;
              verify.py / queued.py  `mace farm verify`: sections devices queued in a program
              store, checked on their device, published or rejected. Ray is the optional extra
              `farm`.
"""
from __future__ import annotations

from mace.errors import MaceError


class FarmError(MaceError):
    """The farm cannot run as asked (Ray missing, no cluster, no device advertised)."""


def require_ray():
    """The `ray` module, or a FarmError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise FarmError("the device farm needs Ray: pip install 'mace-engine[farm]'") from None
    return ray


__all__ = ["FarmError", "require_ray"]
