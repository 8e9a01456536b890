"""A real OpenSSH server for the deploy tests, started by the test suite itself.

The session fixture `sshd` generates a throwaway host key and user keys in a temporary
directory, writes an sshd_config (127.0.0.1, free ports, that host key, that authorized_keys,
no PAM) and runs two `sshd -D -e` processes: two "devices" on one machine. Host key checking
stays on: the client gets a known_hosts file holding the host key through device.yml
`ssh_options` (UserKnownHostsFile=...), plus IdentityFile/IdentitiesOnly.

Without /usr/sbin/sshd the tests are skipped, except under CI (env CI set), where they fail:
CI must install openssh-server.

The remote `python` is this test process's interpreter (sys.executable) with PYTHONPATH set to
this working copy through device.yml `env` (sshd passes no environment of ours).
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                          "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server")


def _find_sshd() -> str | None:
    for p in SSHD_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)


def _wait_for_banner(port: int, proc: subprocess.Popen, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd on port {port} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd on port {port} did not answer within {timeout} s: {log.read_text()[-2000:]}")


class SshEnv:
    """Everything the tests need to write a device.yml for the test sshd servers."""

    def __init__(self, root: Path):
        self.root = root
        self.user = getpass.getuser()
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen] = []
        self.host_key = root / "ssh_host_ed25519_key"
        self.user_key = root / "id_user"
        self.stranger_key = root / "id_stranger"        # not in authorized_keys
        self.other_host_key = root / "other_host_key"   # for the "host key changed" test
        self.known_hosts = root / "known_hosts"
        self.empty_known_hosts = root / "known_hosts_empty"
        self.wrong_known_hosts = root / "known_hosts_wrong"
        self.sftp_server: str | None = None

    def ssh_options(self, known_hosts: Path | None = None, key: Path | None = None) -> list[str]:
        return [f"UserKnownHostsFile={known_hosts or self.known_hosts}",
                "GlobalKnownHostsFile=/dev/null",
                f"IdentityFile={key or self.user_key}", "IdentitiesOnly=yes"]

    def device(self, index: int = 0, workdir: Path | None = None, **over) -> dict:
        """A device.yml entry for server `index`, running this working copy's mace."""
        d = {"target_abis": ["x86_64"], "target_socs": ["pocl"], "models": f"test sshd {index}",
             "address": "127.0.0.1", "username": self.user, "port": self.ports[index],
             "python": sys.executable, "workdir": str(workdir or self.root / f"remote{index}"),
             "env": {"PYTHONPATH": str(REPO)}, "ssh_options": self.ssh_options()}
        d.update(over)
        return d

    def write_conf(self, path: Path, devices: dict) -> Path:
        path.write_text(yaml.safe_dump({"devices": devices}, sort_keys=False))
        return path


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    exe = _find_sshd()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI: /usr/sbin/sshd is missing: .ci/run must install openssh-server "
                        "(apt-get install -y openssh-server) for the deploy tests")
        pytest.skip("deploy tests need a local OpenSSH server: apt-get install openssh-server")
    if not shutil.which("ssh") or not shutil.which("ssh-keygen") or not shutil.which("scp"):
        if os.environ.get("CI"):
            pytest.fail("CI: the OpenSSH client (ssh, scp, ssh-keygen) is missing: install openssh-client")
        pytest.skip("deploy tests need the OpenSSH client: apt-get install openssh-client")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege separation dir

    env = SshEnv(tmp_path_factory.mktemp("sshd"))
    root = env.root
    for key, comment in ((env.host_key, "host"), (env.user_key, "user"),
                         (env.stranger_key, "stranger"), (env.other_host_key, "other-host")):
        _keygen(key, comment)
    (root / "authorized_keys").write_text(env.user_key.with_suffix(".pub").read_text())

    # sftp (scp's protocol): a wrapper that honours MACE_TEST_FSIZE (sent with ssh -o SetEnv)
    # as a file-size limit, so a test can make an upload fail midway on the "device"
    env.sftp_server = next((p for p in SFTP_SERVER_CANDIDATES if os.access(p, os.X_OK)), None)
    if env.sftp_server:
        wrapper = root / "sftp-wrapper.sh"
        wrapper.write_text("#!/bin/sh\n"
                           'if [ -n "$MACE_TEST_FSIZE" ]; then ulimit -f "$MACE_TEST_FSIZE"; fi\n'
                           f"exec {env.sftp_server}\n")
        wrapper.chmod(0o755)
        subsystem = str(wrapper)
    else:
        subsystem = "internal-sftp"

    host_pub = " ".join(env.host_key.with_suffix(".pub").read_text().split()[:2])
    other_pub = " ".join(env.other_host_key.with_suffix(".pub").read_text().split()[:2])
    env.empty_known_hosts.write_text("")
    try:
        for i in range(3):             # server 2 has no sftp subsystem (a board without sftp-server)
            port = free_port()
            cfg = root / f"sshd_config.{i}"
            cfg.write_text("\n".join([
                "ListenAddress 127.0.0.1", f"Port {port}", f"HostKey {env.host_key}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}", f"PidFile {root / f'sshd.{i}.pid'}",
                "UsePAM no", "StrictModes no", "PermitRootLogin yes", "PubkeyAuthentication yes",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                "AcceptEnv MACE_TEST_*", f"Subsystem sftp {subsystem}" if i < 2 else "", "MaxStartups 100",
                "LogLevel ERROR", ""]))
            log = root / f"sshd.{i}.log"
            proc = subprocess.Popen([exe, "-D", "-e", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                    stdout=open(log, "wb"), stderr=subprocess.STDOUT)
            env.procs.append(proc)
            env.ports.append(port)
            _wait_for_banner(port, proc, log)
        env.known_hosts.write_text("".join(f"[127.0.0.1]:{p} {host_pub}\n" for p in env.ports))
        env.wrong_known_hosts.write_text("".join(f"[127.0.0.1]:{p} {other_pub}\n" for p in env.ports))
        yield env
    finally:
        for proc in env.procs:
            proc.terminate()
        for proc in env.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The bundled digits CNN converted to .mace, a real input and the CPU runtime's output."""
    import mace
    from mace.convert import convert
    root = tmp_path_factory.mktemp("digits")
    model = root / "digits.mace"
    convert(str(REPO / "mace/examples/digits/digits_cnn.onnx"), str(model))
    x = np.load(REPO / "mace/examples/digits/digits_test.npz")["x"][:1].astype(np.float32)
    x_path = root / "x.npy"
    np.save(x_path, x)
    engine = mace.Engine(str(model), runtime="cpu")
    name = engine.input_names[0]
    ref = engine.run({name: x})
    return {"model": model, "input_name": name, "x": x_path, "ref": ref}
