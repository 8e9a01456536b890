"""Transfer failures named by their cause: a device without an sftp server gets legacy_scp."""
from __future__ import annotations

from mace.deploy.devices import DeviceSpec
from mace.deploy.transport import Completed, SshTransport


def _transport(**kw) -> SshTransport:
    spec = DeviceSpec(target_abis=["arm64"], target_socs=["rk3399"], models="Nanopi M4", address="10.0.0.5",
                      username="pi", **kw)
    return SshTransport("nanopi", spec)


NO_SFTP = "subsystem request failed on channel 0\nscp: Connection closed\n"


def test_missing_sftp_server_suggests_legacy_scp():
    err = _transport().transfer_error(Completed(255, "", NO_SFTP, 0.1), "upload", "/tmp/x")
    msg = str(err)
    assert "no sftp server" in msg and "legacy_scp: true" in msg and "midway" not in msg


def test_legacy_scp_already_on_or_other_failures_keep_their_message():
    err = _transport(legacy_scp=True).transfer_error(Completed(255, "", NO_SFTP, 0.1), "upload", "/tmp/x")
    assert "legacy_scp" not in str(err) and "stopped midway" in str(err)
    err = _transport().transfer_error(Completed(1, "", "scp: write: Broken pipe\n", 0.1), "upload", "/tmp/x")
    assert "stopped midway" in str(err)


def test_messages_name_the_device_file_and_the_misspelt_key(tmp_path):
    import pytest

    from mace.deploy.devices import load_devices
    from mace.deploy.transport import _SSHPASS_BAD_PASSWORD
    from mace.errors import ConfigError
    conf = tmp_path / "boards.yml"
    conf.write_text("devices:\n  nanopi:\n    target_abis: [arm64]\n    target_socs: RK3399\n    models: Nanopi M4\n"
                    "    address: 10.0.0.5\n    username: pi\n    password: secret\n    allow_password: true\n")
    spec = load_devices(conf).conf.devices["nanopi"]
    err = SshTransport("nanopi", spec).connection_error(Completed(_SSHPASS_BAD_PASSWORD, "", "", 0.1))
    assert f"correct password: in {conf}" in str(err) and "device.yml" not in str(err)
    conf.write_text(conf.read_text().replace("address:", "adress:"))
    with pytest.raises(ConfigError) as exc:
        load_devices(conf)
    assert str(exc.value) == (f"{conf}: devices.nanopi.adress: unknown key 'adress' (did you mean 'address'?): "
                              f"remove it or check its spelling")


def test_board_without_sftp_server(sshd, digits, tmp_path):
    """A real sshd without an sftp subsystem: the advice is legacy_scp, and legacy_scp works."""
    from click.testing import CliRunner

    from mace.cli import cli
    conf = sshd.write_conf(tmp_path / "boards.yml", {"dev": sshd.device(2, workdir=tmp_path / "remote")})
    args = ["deploy", "--device-conf", str(conf), str(digits["model"]), "--runtime", "cpu"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert "no sftp server" in res.stderr and "legacy_scp: true" in res.stderr and str(conf) in res.stderr
    sshd.write_conf(conf, {"dev": sshd.device(2, workdir=tmp_path / "remote", legacy_scp=True)})
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
