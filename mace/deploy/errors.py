"""Errors of remote deployment: one line each, naming the device and the fix (exit code 2)."""
from __future__ import annotations

from mace.errors import MaceError


class RemoteError(MaceError):
    """Base class: something failed on the way to, or on, a remote device."""


class SshClientMissing(RemoteError):
    """`ssh`, `scp` or (for password login) `sshpass` is not installed on this machine."""


class DeviceUnreachable(RemoteError):
    """No ssh connection: wrong address or port, the device is off, sshd is not running."""


class AuthenticationFailed(RemoteError):
    """The device refused the login (key not in authorized_keys, wrong password)."""


class HostKeyUnknown(RemoteError):
    """The device's ssh host key is not in known_hosts (host key checking is on)."""


class HostKeyMismatch(RemoteError):
    """The device's ssh host key differs from the one in known_hosts."""


class RemotePythonMissing(RemoteError):
    """The `python` command of device.yml does not exist on the device."""


class RemoteMaceMissing(RemoteError):
    """Python runs on the device but `python -m mace` does not."""


class RemoteDiskFull(RemoteError):
    """No space left on the device (or on this machine, for downloads)."""


class TransferFailed(RemoteError):
    """An upload or download stopped midway; nothing was put at the final path."""


class RemoteRunFailed(RemoteError):
    """`mace run` ran on the device and failed there."""
