"""`mace inspect`, `doctor`, `cache verify|merge|prune`: the program cache file's verbs.

`register(group)` adds them to the top-level `mace` group. Exit codes: 0 ok, 1 findings (the
file is unusable or damaged), 2 bad input (file not found, not a mace cache where one is
required, unknown device). `--json` prints one JSON document on stdout.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from mace.cli import termtext
from mace.cli.common import FINDINGS, OK
from mace.cli.common import bad_input as _bad_input
from mace.cli.common import emit_json as _emit


def _require_file(path: Path, as_json: bool) -> None:
    if not path.exists():
        _bad_input(f"{path}: no such file", as_json)
    if not path.is_file():
        _bad_input(f"{path}: not a regular file", as_json)


def _echo_findings(findings) -> None:
    for f in findings:
        d = f if isinstance(f, dict) else f.to_dict()
        click.echo(termtext.plain(f"{d['severity']} {d['code']}: {d['message']}"))
        if d["fix"] and d["fix"] not in d["message"]:
            click.echo(termtext.plain(f"  fix: {d['fix']}"))


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
file_argument = click.argument("file", type=click.Path(dir_okay=True, path_type=Path))


@click.command("inspect")
@file_argument
@json_option
def inspect_cmd(file: Path, as_json: bool) -> None:
    """Identify FILE (mace cache, Xiaomi MACE legacy or protobuf file) and list its contents."""
    from mace.cli.render import render_inspect as render
    from mace.programcache.inspect import damaged, inspect_file
    _require_file(file, as_json)
    try:
        info = inspect_file(file)
    except OSError as exc:
        _bad_input(f"{file}: {exc.strerror or exc}", as_json)
    if as_json:
        _emit(info)
    else:
        render(info)
    sys.exit(FINDINGS if damaged(info) else OK)


def _select_device(spec: str | None):
    from mace.runtime.opencl.device import select_device
    return select_device(spec)


@click.command("doctor")
@file_argument
@click.option("--device", "-d", default=None,
              help="OpenCL device: index or name substring (default: MACE_DEVICE, else the "
                   "first GPU, else the first device).")
@click.option("--model", "model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also check that FILE holds every program this .mace model needs on DEVICE "
                   "(the model is initialized read-only against FILE: binaries the driver rejects "
                   "are reported).")
@json_option
def doctor_cmd(file: Path, device: str | None, model: Path | None, as_json: bool) -> None:
    """Check that FILE will serve binaries to DEVICE (and MODEL); each finding with its cause and fix."""
    from mace.programcache.doctor import doctor
    from mace.programcache.fingerprint import DeviceFingerprint
    _require_file(file, as_json)
    try:
        fp = DeviceFingerprint.from_cl_device(_select_device(device))
    except Exception as exc:  # DeviceError, pyopencl errors, a bad index: all bad input
        _bad_input(f"cannot select OpenCL device {device!r}: {exc}", as_json)
    init = None if model is None else (lambda blob: _init_model(blob, model, device, as_json))
    result = doctor(file, fp, init_model=init)
    if model is not None:
        result.stats["model_init"] = {"model": str(model), **result.stats["model_init"]}
    if as_json:
        _emit(result.to_dict())
    else:
        click.echo(termtext.plain(f"{file} on {fp.short()}: {'usable' if result.ok else 'NOT usable'}"))
        for k in ("format", "writer", "sections", "programs", "device_programs",
                  "trusted_programs", "signature", "device_tuning_records", "blob_kinds"):
            if k in result.stats:
                click.echo(termtext.plain(f"  {k.replace('_', ' ')}: {result.stats[k]}"))
        caps = result.stats.get("device_caps")
        probe = _caps_line(caps) if caps else "not in this file (probed at the next start)"
        click.echo(termtext.plain(f"  device probe: {probe}"))
        for key, rec in (result.stats.get("build_failures") or {}).items():
            click.echo(termtext.plain(f"  build failure: {key}: {rec.get('stage', '')}: {rec.get('log', '')}"))
        t = result.stats.get("trust") or {}
        if t:
            click.echo(termtext.plain(f"  location: {t['location']} ({t['reason']})"))
        _echo_findings(result.findings)
    sys.exit(OK if result.ok else FINDINGS)


def _caps_line(caps: dict) -> str:
    probe = ", ".join(f"{w}: {r}" for w, r in sorted((caps.get("probe") or {}).items(), key=lambda kv: -int(kv[0])))
    return (f"vector width {caps.get('max_vector_width')} (reported {caps.get('reported_vector_width')}; "
            f"{probe or 'not probed'})")


def _init_model(blob, model: Path, device: str | None, as_json: bool):
    """Initialize MODEL read-only against a cache file's bytes, with the location they were
    read from (trust.CacheBytes: doctor's `init_model`)."""
    import mace
    from mace.errors import MaceError
    from mace.programcache.doctor import ModelInit
    try:
        engine = mace.Engine(model, runtime="cpu+gpu", device=device, program=blob)
    except MaceError as exc:
        _bad_input(str(exc), as_json)
    report = engine.program_cache_report
    return ModelInit(list(engine.executor.builder.keys), report.from_cache, report.compiled,
                     [tuple(r) for r in report.rejected])


@click.group("cache")
def cache_group() -> None:
    """Verify, merge and prune program cache files."""


@cache_group.command("verify")
@file_argument
@json_option
def verify_cmd(file: Path, as_json: bool) -> None:
    """Check every checksum of FILE (header, records, binaries) and its size cap."""
    from mace.programcache.maintenance import verify
    _require_file(file, as_json)
    try:
        findings = verify(file)
    except OSError as exc:
        _bad_input(f"{file}: {exc.strerror or exc}", as_json)
    ok = not any(f.severity in ("error", "warning") for f in findings)
    if as_json:
        _emit({"path": str(file), "ok": ok, "findings": [f.to_dict() for f in findings]})
    else:
        click.echo(f"{file}: {'intact' if ok else 'problems found'}")
        _echo_findings(findings)
    sys.exit(OK if ok else FINDINGS)


def _maintenance(action, as_json: bool) -> None:
    from mace.errors import MaceError
    try:
        result = action()
    except MaceError as exc:                # ProgramCacheError, FileRefused: their own one line
        _bad_input(getattr(exc, "message", None) or str(exc), as_json)
    except OSError as exc:
        _bad_input(f"{getattr(exc, 'filename', '')}: {exc.strerror or exc}", as_json)
    if as_json:
        _emit(result.to_dict())
    else:
        click.echo(f"{result.path}: " + ", ".join(f"{k} {v}" for k, v in result.stats.items()
                                                  if not isinstance(v, (list, dict))))
        _echo_findings(result.findings)
    sys.exit(OK if result.ok else FINDINGS)


@cache_group.command("merge")
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The merged file (may be A or B).")
@json_option
def merge_cmd(a: Path, b: Path, output: Path, as_json: bool) -> None:
    """Union of caches A and B by key (all device sections kept) into OUTPUT."""
    from mace.programcache.maintenance import merge
    for p in (a, b):
        _require_file(p, as_json)
    _maintenance(lambda: merge(a, b, output), as_json)


@cache_group.command("keygen")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Private key file (default: <user config dir>/mace/signing_key.pem); the "
                   "public key goes to OUTPUT.pub.")
@click.option("--comment", default="", help="Comment stored with the public key.")
@click.option("--trust", "add_trust", is_flag=True,
              help="Also add the public key to the trusted keys file (MACE_TRUSTED_KEYS).")
@json_option
def keygen_cmd(output: Path | None, comment: str, add_trust: bool, as_json: bool) -> None:
    """Create an Ed25519 key pair for signing program caches (private key mode 0600)."""
    from mace.programcache import signing
    path = output if output is not None else signing.default_private_key_path()
    try:
        pub = signing.write_key_pair(path, comment)
        trusted = signing.add_trusted(pub) if add_trust else None
    except (signing.SigningKeyError, OSError) as exc:
        _bad_input(getattr(exc, "strerror", None) or str(exc), as_json)
    doc = {"private_key": str(path), "public_key_file": f"{path}.pub", "key_id": pub.key_id,
           "public_key": pub.openssh(), "trusted_keys_file": str(trusted or signing.trusted_keys_path()),
           "added_to_trusted": trusted is not None}
    if as_json:
        _emit(doc)
    else:
        click.echo(f"private key {path} (mode 0600), public key {path}.pub, key id {pub.key_id}")
        if trusted is None:
            click.echo(f"to trust caches it signs, add this line to {doc['trusted_keys_file']}:")
            click.echo(pub.openssh())
        else:
            click.echo(f"added to the trusted keys in {trusted}")


@cache_group.command("sign")
@file_argument
@click.option("--key", "key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The private key written by `mace cache keygen`.")
@json_option
def sign_cmd(file: Path, key: Path, as_json: bool) -> None:
    """Sign every device section of FILE with KEY (Ed25519), so that it is trusted wherever it
    is kept, by every machine whose trusted keys list KEY's public half."""
    from mace.programcache import signing
    from mace.programcache.errors import ProgramCacheError
    _require_file(file, as_json)
    try:
        res = signing.sign_file(file, key)
    except (signing.SigningKeyError, ProgramCacheError, OSError) as exc:
        _bad_input(getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc), as_json)
    if as_json:
        _emit(res)
    else:
        click.echo(f"{file}: signed {len(res['sections'])} section(s) with key {res['key_id']}")
        if not res["trusted_here"]:
            click.echo(f"note: this key is not in {res['trusted_keys_file']}: add its public half "
                       f"there on every machine that should trust the file:")
            click.echo(res["public_key"])


@cache_group.command("prune")
@file_argument
@click.option("--max-bytes", required=True, help="Size cap: bytes, or 64M / 64MiB / 1G.")
@json_option
def prune_cmd(file: Path, max_bytes: str, as_json: bool) -> None:
    """Drop least-recently-used programs of FILE until it fits --max-bytes."""
    from mace.programcache.maintenance import prune
    from mace.programcache.settings import parse_size
    _require_file(file, as_json)
    try:
        cap = parse_size(max_bytes)
    except ValueError as exc:
        _bad_input(str(exc), as_json)
    _maintenance(lambda: prune(file, cap), as_json)


def _store_commands() -> None:
    """`cache publish` and `cache pull` (mace/cli/store.py) belong to the cache group."""
    from mace.cli.store import publish_cmd, pull_cmd
    cache_group.add_command(publish_cmd, "publish")
    cache_group.add_command(pull_cmd, "pull")


_store_commands()


def register(cli_group: click.Group) -> None:
    """Add `inspect`, `doctor` and `cache` (verify, merge, prune, keygen, sign, publish, pull) to
    the top-level group. An existing `cache` group gets the subcommands instead."""
    cli_group.add_command(inspect_cmd, "inspect")
    cli_group.add_command(doctor_cmd, "doctor")
    existing = cli_group.commands.get("cache")
    if isinstance(existing, click.Group) and existing is not cache_group:
        for name, cmd in cache_group.commands.items():
            existing.add_command(cmd, name)
    else:
        cli_group.add_command(cache_group, "cache")
