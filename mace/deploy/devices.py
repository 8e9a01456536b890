"""`device.yml`: the remote ARM Linux devices reached over ssh, validated with pydantic.

    devices:
      nanopi:
        target_abis: [arm64, armhf]
        target_socs: RK3399
        models: Nanopi M4
        address: 10.0.0.5
        username: pi
        # optional
        port: 22
        python: python3                 # remote command that runs Python (may include args)
        workdir: /tmp/data/mace_run     # files go to <workdir>/<model name>/
        env: {MACE_DEVICE: "0"}         # exported before the remote `python -m mace ...`
        ssh_options: [IdentityFile=~/.ssh/id_ed25519]   # `ssh -o` options (yours win)
        legacy_scp: false               # true: `scp -O` for devices without an sftp server
        password: secret                # only with allow_password: true (needs sshpass)
        allow_password: true

MACE's fields (target_abis, target_socs, models, address, username) keep their meaning. Every
problem is one line naming the file, the field and the fix.

device.yml is trusted configuration, like ~/.ssh/config: `ssh_options` go to ssh as they are
(ProxyCommand runs a local command) and `python` is a command line run on the device. So it is
read only from an explicit --device-conf, never from the current directory. Its words are
still quoted one by one for the remote shell (`remote_python`), so a metacharacter in them is
never a second command.
"""
from __future__ import annotations

import difflib
import logging
import re
import shlex
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from mace.config import read_yaml
from mace.errors import ConfigError

log = logging.getLogger("mace.deploy")

DEFAULT_PYTHON = "python3"
DEFAULT_WORKDIR = "/tmp/data/mace_run"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORKDIR_RE = re.compile(r"^/[A-Za-z0-9._/+@=,-]*$")
_SSH_OPT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*[ =]")


def _listify(v):
    if v is None:
        return v
    if isinstance(v, (str, int, float)):
        return [s.strip() for s in str(v).split(",") if s.strip()]
    return [str(x) for x in v]


class DeviceSpec(BaseModel):
    """One device of device.yml."""

    model_config = ConfigDict(extra="forbid")

    target_abis: list[str]
    target_socs: list[str]
    models: str
    address: str
    username: str
    password: str | None = None
    allow_password: bool = False
    port: int | None = Field(default=None, ge=1, le=65535)
    python: str = DEFAULT_PYTHON
    workdir: str = DEFAULT_WORKDIR
    env: dict[str, str] = Field(default_factory=dict)
    ssh_options: list[str] = Field(default_factory=list)
    legacy_scp: bool = False
    #: the file this entry came from, for messages that name it
    _conf: str = PrivateAttr(default="device.yml")

    @property
    def conf_name(self) -> str:
        return self._conf

    _lists = field_validator("target_abis", "target_socs", mode="before")(lambda v: _listify(v))

    @field_validator("models", "username", "python", mode="before")
    @classmethod
    def _text(cls, v):
        if isinstance(v, (int, float)):
            v = str(v)
        if isinstance(v, str) and not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, v):
        v = str(v).strip() if v is not None else v
        if not v or any(c.isspace() for c in v) or v.startswith("-"):
            raise ValueError(f"{v!r} is not a host name or IP address")
        return v

    @field_validator("username")
    @classmethod
    def _username(cls, v):
        if any(c.isspace() for c in v) or v.startswith("-") or "@" in v:
            raise ValueError(f"{v!r} is not a user name")
        return v

    @field_validator("python")
    @classmethod
    def _python(cls, v):
        try:
            words = shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not a command line ({exc})") from None
        if not words:
            raise ValueError("must not be empty")
        return v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v):
        if not _WORKDIR_RE.match(v) or "/../" in v + "/":
            raise ValueError(f"{v!r} must be an absolute path without spaces, quotes or '..'")
        return v.rstrip("/") or "/"

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, v):
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("must be a mapping NAME: value")
        for k in v:
            if not _ENV_RE.match(str(k)):
                raise ValueError(f"{k!r} is not an environment variable name")
        return {str(k): "" if x is None else str(x) for k, x in v.items()}

    @field_validator("ssh_options", mode="before")
    @classmethod
    def _ssh_options(cls, v):
        v = _listify(v) if isinstance(v, str) else v
        for o in v or []:
            if not isinstance(o, str) or not _SSH_OPT_RE.match(o):
                raise ValueError(f"{o!r} is not an ssh option: write Key=Value (e.g. "
                                 f"IdentityFile=~/.ssh/id_ed25519), as for `ssh -o`")
        return v or []

    @property
    def uses_password(self) -> bool:
        return self.password is not None

    def destination(self) -> str:
        """`user@address:port`, for messages."""
        return f"{self.username}@{self.address}" + (f":{self.port}" if self.port else "")


def remote_python(spec: DeviceSpec) -> str:
    """`spec.python` for the remote shell: split like a shell would, every word quoted."""
    return " ".join(shlex.quote(w) for w in shlex.split(spec.python))


class DeviceConf(BaseModel):
    """The whole device.yml."""

    model_config = ConfigDict(extra="forbid")

    devices: dict[str, DeviceSpec]

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, v):
        if not isinstance(v, dict) or not v:
            raise ValueError("must map at least one device name to its settings")
        for name in v:
            if not _NAME_RE.match(str(name)):
                raise ValueError(f"device name {name!r} may use only letters, digits, '.', '_', '-'")
        return {str(k): x for k, x in v.items()}


class LoadedDevices:
    """A validated device.yml plus where it lives."""

    def __init__(self, path: Path, conf: DeviceConf):
        self.path, self.conf = path, conf

    @property
    def devices(self) -> dict[str, DeviceSpec]:
        return self.conf.devices

    def select(self, name: str | None = None, *, one: bool = False) -> list[tuple[str, DeviceSpec]]:
        """The device called `name`, or all of them (`one`: exactly one must be meant)."""
        names = ", ".join(self.devices)
        if name is None:
            if one and len(self.devices) > 1:
                raise ConfigError(f"{self.path} lists {len(self.devices)} devices ({names}): "
                                  f"pick one with --device NAME")
            return list(self.devices.items())
        if name not in self.devices:
            raise ConfigError(f"{self.path}: no device {name!r} (devices: {names}): "
                              f"pass one of them to --device")
        return [(name, self.devices[name])]


def _fix_for(msg: str, err_type: str) -> str:
    if err_type == "extra_forbidden":
        return "remove it or check its spelling"
    if err_type == "missing":
        return "add it"
    return "correct it"


def find_device_conf(path: str | Path | None) -> Path:
    """The device.yml named with --device-conf. It is never picked up from the current directory:
    it is trusted configuration (its ssh_options and python run commands), so it must be chosen."""
    if path is not None:
        return Path(path)
    raise ConfigError("no device file given: pass --device-conf device.yml (it is not read from the "
                      "current directory, see docs/remote-devices.md)")


def load_devices(path: str | Path | None = None) -> LoadedDevices:
    """Read and validate a device.yml. Raises ConfigError with a one-line message."""
    path = find_device_conf(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such device file: write one (see docs/remote-devices.md)")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'devices:' key: see docs/remote-devices.md")
    try:
        conf = DeviceConf.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # an unknown key first: a misspelt key is also a missing one, and the spelling is the fix
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(err["loc"][-1]), list(DeviceSpec.model_fields), n=1, cutoff=0.75)
            msg = f"unknown key {err['loc'][-1]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif err["type"] == "missing":
            msg = "required"
        raise ConfigError(f"{path}: {loc}: {msg}: {_fix_for(msg, err['type'])}") from None
    for name, spec in conf.devices.items():
        spec._conf = str(path)
        where = f"{path}: devices.{name}"
        if spec.password is not None and not spec.allow_password:
            raise ConfigError(
                f"{where}.password: password login is off by default (the password sits in plain "
                f"text in {path.name}): prefer a key (ssh-copy-id {spec.username}@{spec.address}) "
                f"and remove the password, or add allow_password: true")
        if spec.allow_password and spec.password is None:
            raise ConfigError(f"{where}.allow_password: true but no password: add password: "
                              f"or remove allow_password")
        if spec.password is not None:
            log.warning("%s: password login (allow_password: true): the password is stored in "
                        "plain text and sent through sshpass; an ssh key is safer", where)
    return LoadedDevices(path, conf)


__all__ = ["DeviceSpec", "DeviceConf", "LoadedDevices", "load_devices", "find_device_conf", "remote_python",
           "DEFAULT_PYTHON", "DEFAULT_WORKDIR"]
