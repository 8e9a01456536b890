"""`mace cache publish FILE STORE` and `mace cache pull STORE`: the program store's verbs
(mace/store). Exit 0 done, 1 the store has no section for the device, 2 bad input (a file that
is not a program cache, a refused or unreachable store, a missing extra)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from mace.cli.common import FINDINGS, JSON_OPT, OK
from mace.cli.common import bad_input as _bad_input
from mace.cli.common import emit_json as _emit


def _fail(exc: Exception, as_json: bool) -> None:
    _bad_input(getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc), as_json)


@click.command("publish")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("store")
@click.option("--key", "key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Private key (`mace cache keygen`) that signs the sections and the index.")
@click.option("--accept-device-key", "device_keys", multiple=True,
              help="A device's public key (.pub file, line or key id) the store's policy accepts "
                   "for sections devices publish themselves (publish_on_miss). Repeatable.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds per store request.")
@JSON_OPT
def publish_cmd(file: Path, store: str, key: Path, device_keys: tuple, timeout: float, as_json: bool) -> None:
    """Publish every device section of program file FILE to STORE (a directory, http(s):// or
    s3:// URL): each signed, stored under its content hash, named in the signed index."""
    from mace.programcache.errors import ProgramCacheError
    from mace.programcache.signing import SigningKeyError
    from mace.store import StoreError
    from mace.store.publish import publish
    if not file.is_file():
        _bad_input(f"{file}: no such program file: give a file written by mace (e.g. `mace convert "
                   f"--config` or a run)", as_json)
    try:
        doc = publish(file, store, key, accept_device_keys=list(device_keys), timeout=timeout)
    except (StoreError, SigningKeyError, ProgramCacheError, OSError) as exc:
        _fail(exc, as_json)
    if as_json:
        _emit(doc)
        return
    for s in doc["sections"]:
        state = "written" if s["written"] else "unchanged"
        click.echo(f"{s['fp_id']}: {s.get('short', '')} {state} -> {s['path']}")
    click.echo(f"{store}: index signed with key {doc['key_id']} ({len(doc['sections'])} section(s))")


@click.command("pull")
@click.argument("store")
@click.option("--device", "-d", default=None, help="OpenCL device: index or name (default MACE_DEVICE).")
@click.option("--program", "program", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Program file to merge the section into (default MACE_PROGRAM_PATH or the user cache dir).")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds per store request.")
@JSON_OPT
def pull_cmd(store: str, device: str | None, program: Path | None, timeout: float, as_json: bool) -> None:
    """Pull this device's section from STORE into the program file (only its own section; the
    index and the section are downloaded again only when they changed)."""
    from mace.errors import MaceError
    from mace.programcache import DeviceFingerprint
    from mace.programcache.errors import ProgramCacheError
    from mace.programcache.settings import default_cache_path
    from mace.runtime.opencl.device import select_device
    from mace.store.pull import pull_into
    try:
        fp = DeviceFingerprint.from_cl_device(select_device(device))
    except MaceError as exc:
        _fail(exc, as_json)
    target = program or default_cache_path()
    try:
        res = pull_into(store, fp.id, target, timeout=timeout)
    except (MaceError, ProgramCacheError, OSError) as exc:
        _fail(exc, as_json)
    doc = {**res.to_dict(), "device": fp.short(), "program": str(target)}
    if as_json:
        _emit(doc)
    elif res.status == "miss":
        click.echo(f"{store}: no section for this device ({fp.short()}): it compiles from source")
    else:
        got = f"downloaded {', '.join(res.downloads)}" if res.downloads else "nothing downloaded (unchanged)"
        click.echo(f"{fp.short()}: section {res.status} ({res.programs} programs, {res.tuning} tuning "
                   f"records; {got}); {'merged into' if res.merged else 'already in'} {target}")
    sys.exit(FINDINGS if res.status == "miss" else OK)
