"""ssh/scp through the system's OpenSSH client, with every failure mapped to a one-line error.

The OpenSSH client is used (not a Python ssh library) so that ~/.ssh/config, ssh-agent, keys,
ProxyJump and known_hosts work exactly as in a shell. Host key checking is never weakened here:
StrictHostKeyChecking keeps its default (a device.yml `ssh_options` entry may change it). Without
a password BatchMode=yes, so ssh never waits on a prompt; with `allow_password: true` the
password goes through `sshpass -e` (the SSHPASS environment variable, never the command line).
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from mace.deploy.devices import DeviceSpec
from mace.deploy.errors import (
    AuthenticationFailed,
    DeviceUnreachable,
    HostKeyMismatch,
    HostKeyUnknown,
    RemoteDiskFull,
    RemoteError,
    SshClientMissing,
    TransferFailed,
)

log = logging.getLogger("mace.deploy")

CONNECT_TIMEOUT_S = 10
#: sshpass exit codes (man sshpass)
_SSHPASS_BAD_PASSWORD, _SSHPASS_HOSTKEY_UNKNOWN, _SSHPASS_HOSTKEY_CHANGED = 5, 6, 7

_UNREACHABLE = ("Connection refused", "Could not resolve hostname", "timed out",
                "No route to host", "Network is unreachable", "Connection reset",
                "kex_exchange_identification",
                "Name or service not known", "Temporary failure in name resolution")


#: what OpenSSH's scp prints when the server has no sftp subsystem (scp >= 9.0 speaks sftp)
_NO_SFTP = ("subsystem request failed", "sftp-server: not found", "sftp-server: No such file",
            "Subsystem 'sftp' not found")


@dataclass
class Completed:
    """What a remote command or transfer returned."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("@@@")]
    return lines[-1] if lines else ""


class SshTransport:
    """ssh and scp to one device of device.yml."""

    def __init__(self, name: str, spec: DeviceSpec):
        self.name, self.spec = name, spec
        self._ssh = self._scp = None

    # -- command lines ---------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"device {self.name} ({self.spec.destination()})"

    def _tools(self) -> tuple[str, str, list[str]]:
        ssh, scp = shutil.which("ssh"), shutil.which("scp")
        if not ssh or not scp:
            raise SshClientMissing(f"{self.label}: the OpenSSH client ({'ssh' if not ssh else 'scp'}) "
                                   f"is not installed here: install it (apt-get install openssh-client)")
        prefix: list[str] = []
        if self.spec.uses_password:
            sshpass = shutil.which("sshpass")
            if not sshpass:
                raise SshClientMissing(
                    f"{self.label}: {self.spec.conf_name} sets a password but sshpass is not installed here: "
                    f"install it (apt-get install sshpass), or switch to key login "
                    f"(ssh-copy-id {self.spec.username}@{self.spec.address}) and remove the password")
            prefix = [sshpass, "-e"]
        return ssh, scp, prefix

    def options(self) -> list[str]:
        """`-o` options shared by ssh and scp. The first value ssh sees for an option wins, so
        the device's own `ssh_options` come before our defaults and override them."""
        spec = self.spec
        opts: list[str] = []
        if spec.port:
            opts += ["-o", f"Port={spec.port}"]
        for o in spec.ssh_options:
            opts += ["-o", o]
        if spec.uses_password:
            opts += ["-o", "NumberOfPasswordPrompts=1"]
        else:
            opts += ["-o", "BatchMode=yes"]
        opts += ["-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
                 "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                 "-o", "LogLevel=ERROR"]
        return opts

    def host(self) -> str:
        return f"{self.spec.username}@{self.spec.address}"

    def scp_remote(self, path: str) -> str:
        addr = self.spec.address
        if ":" in addr and not addr.startswith("["):
            addr = f"[{addr}]"
        return f"{self.spec.username}@{addr}:{path}"   # workdirs are validated: no quoting needed

    def _env(self) -> dict[str, str] | None:
        if not self.spec.uses_password:
            return None
        env = dict(os.environ)
        env["SSHPASS"] = self.spec.password or ""
        return env

    # -- running ---------------------------------------------------------------------------
    def _call(self, argv: list[str], what: str, timeout: float | None) -> Completed:
        t0 = time.perf_counter()
        log.debug("%s: %s", self.name, " ".join(argv[:-1] + ["<script>"]) if what == "ssh" else argv)
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               errors="replace", env=self._env(), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceUnreachable(f"{self.label}: no answer within {timeout:.0f} s: check the "
                                    f"device and the network, then retry") from None
        except FileNotFoundError as exc:
            raise SshClientMissing(f"{self.label}: cannot start {argv[0]} ({exc.strerror}): install "
                                   f"the OpenSSH client (apt-get install openssh-client)") from None
        return Completed(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)

    def ssh(self, script: str, *, timeout: float | None = None, check_connection: bool = True) -> Completed:
        """Run a POSIX sh script on the device. Connection-level failures raise; the script's
        own exit status is returned."""
        ssh, _, prefix = self._tools()
        res = self._call([*prefix, ssh, *self.options(), "-T", self.host(), script], "ssh", timeout)
        if check_connection:
            self.raise_for_connection(res)
        return res

    def upload(self, local_dir: str, remote_path: str) -> Completed:
        """`scp -r local_dir host:remote_path` (remote_path must not exist yet: it becomes the copy)."""
        return self._scp_run([local_dir, self.scp_remote(remote_path)], "upload", remote_path)

    def download(self, remote_path: str, local_path: str) -> Completed:
        """`scp -r host:remote_path local_path` (local_path must not exist yet)."""
        return self._scp_run([self.scp_remote(remote_path), local_path], "download", local_path)

    def _scp_run(self, paths: list[str], direction: str, dest: str) -> Completed:
        _, scp, prefix = self._tools()
        flags = ["-q", "-r", "-p"] + (["-O"] if self.spec.legacy_scp else [])
        res = self._call([*prefix, scp, *flags, *self.options(), *paths], "scp", None)
        if res.returncode != 0:
            err = self.connection_error(res, transfer=True)
            if err is None and not self.spec.legacy_scp and "Connection closed" in res.stderr:
                res.stderr += self._sftp_probe()   # scp -q hides why: was it a missing sftp server?
            raise err or self.transfer_error(res, direction, dest)
        return res

    def _sftp_probe(self) -> str:
        """The ssh client's complaint when the device refuses the sftp subsystem ('' when it has one)."""
        ssh, _, prefix = self._tools()
        res = self._call([*prefix, ssh, *self.options(), "-T", "-s", self.host(), "sftp"], "sftp probe", 60)
        return "\n" + res.stderr if any(s in res.stderr for s in _NO_SFTP) else ""

    # -- error mapping ---------------------------------------------------------------------
    def raise_for_connection(self, res: Completed) -> None:
        """Raise the typed error for an ssh-level failure (exit 255, or sshpass's codes)."""
        err = self.connection_error(res)
        if err is not None:
            raise err

    def connection_error(self, res: Completed, transfer: bool = False) -> RemoteError | None:
        """The typed error of a failed connection, or None when the connection itself worked
        (with `transfer`, a connection that dropped midway is left to transfer_error)."""
        rc, text = res.returncode, res.stderr
        spec, label = self.spec, self.label
        port = spec.port or 22
        hostspec = spec.address if port == 22 else f"[{spec.address}]:{port}"
        if spec.uses_password and rc == _SSHPASS_BAD_PASSWORD:
            return AuthenticationFailed(f"{label}: the password was refused: correct password: in "
                                        f"{self.spec.conf_name} (or switch to key login with ssh-copy-id)")
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "has changed and you have requested" in text \
                or (spec.uses_password and rc == _SSHPASS_HOSTKEY_CHANGED):
            return HostKeyMismatch(
                f"{label}: its ssh host key CHANGED since it was recorded in known_hosts (the device "
                f"was reinstalled, or someone is in between): if you trust the new key, remove the old "
                f"one with `ssh-keygen -R '{hostspec}'` and connect once with ssh to accept it")
        if "Host key verification failed" in text or "host key is known" in text \
                or (spec.uses_password and rc == _SSHPASS_HOSTKEY_UNKNOWN):
            return HostKeyUnknown(
                f"{label}: its ssh host key is not in known_hosts and host key checking is on: "
                f"connect once with `ssh -p {port} {self.host()}` and confirm the key's fingerprint "
                f"(or add it with `ssh-keyscan -p {port} {spec.address} >> ~/.ssh/known_hosts` after "
                f"checking it)")
        if rc != 255:
            return None
        if "Permission denied" in text or "Too many authentication failures" in text:
            methods = text[text.find("Permission denied"):]
            if spec.uses_password and "password" not in methods and "keyboard-interactive" not in methods:
                fix = (f"the device accepts no password login: install a key there with "
                       f"`ssh-copy-id -p {port} {self.host()}` and remove password: from {self.spec.conf_name}")
            else:
                fix = (f"correct password: in {spec.conf_name}" if spec.uses_password else
                       f"install your public key there with `ssh-copy-id -p {port} {self.host()}` "
                       f"(or name the key with ssh_options: [IdentityFile=PATH])")
            return AuthenticationFailed(f"{label}: login refused ({_last_line(text)}): {fix}")
        if any(s in text for s in _UNREACHABLE):
            return DeviceUnreachable(
                f"{label}: unreachable ({_last_line(text)}): check address/port in {self.spec.conf_name}, that "
                f"the device is on the network and that sshd runs there")
        if transfer:
            return None
        if not text.strip() or "Connection closed" in text or "closed by remote host" in text \
                or "Broken pipe" in text:
            return DeviceUnreachable(f"{label}: the ssh connection dropped ({_last_line(text) or 'exit 255'}): "
                                     f"check the device and the network, then retry")
        return RemoteError(f"{label}: ssh failed ({_last_line(text)}): check the device's entry in "
                           f"{self.spec.conf_name} (try `ssh -p {port} {self.host()} true` by hand)")

    def transfer_error(self, res: Completed, direction: str, dest: str) -> RemoteError:
        text = res.stderr
        if res.returncode < 0:
            try:
                sig = signal.Signals(-res.returncode).name
            except ValueError:
                sig = str(-res.returncode)
            cause = f"scp was killed by {sig}"
        else:
            cause = _last_line(text) or f"scp exit {res.returncode}"
        if not self.spec.legacy_scp and any(s in text for s in _NO_SFTP):
            return TransferFailed(f"{self.label}: the device has no sftp server, which scp uses by default "
                                  f"({cause}): set legacy_scp: true for it in {self.spec.conf_name} (scp -O, the old "
                                  f"scp protocol), or install an sftp server there")
        if "No space left" in text or "Disk quota exceeded" in text:
            if direction == "upload":
                return RemoteDiskFull(f"{self.label}: no space left on the device under "
                                      f"{self.spec.workdir} ({cause}): free space there or set "
                                      f"workdir: in {self.spec.conf_name} to a larger disk")
            return RemoteDiskFull(f"{self.label}: no space left on this machine for {dest} "
                                  f"({cause}): free space here or choose another --output-dir")
        where = "on the device" if direction == "upload" else "here"
        return TransferFailed(f"{self.label}: {direction} stopped midway ({cause}): nothing was put "
                              f"in place {where}; check free space and the connection, then retry")
