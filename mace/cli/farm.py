"""`mace farm build`: build and tune every model of a mace.yml on every device of a Ray
cluster (mace/farm). Exit 0 every job passed, 1 a job failed or did not validate (the others'
sections are still merged), 2 bad input (config, key, Ray missing or unreachable)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from mace.cli.common import FINDINGS, JSON_OPT, OK
from mace.cli.common import emit_json as _emit


@click.group("farm")
def farm_group() -> None:
    """The device farm on Ray (pip install 'mace-engine[farm]')."""


@farm_group.command("build")
@click.option("--config", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The mace.yml.")
@click.option("--address", default=None,
              help="Ray cluster: ray://HOST:PORT, HOST:PORT or auto (default: start a local cluster of this machine).")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The farm's private key (default: <user config dir>/mace/signing_key.pem).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The merged program file (default build/<library>/opencl/<library>_compiled_opencl_kernel.bin).")
@click.option("--build-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--tune-budget", default=0.0, show_default=True, help="Seconds of tuning per job (0: no tuning).")
@click.option("--retries", default=2, show_default=True, help="Retries of a job whose node is lost.")
@click.option("--cpus-per-job", default=1.0, show_default=True, help="Ray CPUs each job takes.")
@click.option("--device-conf", default=None, help="device.yml whose boards the local node advertises.")
@JSON_OPT
def build_cmd(config, address, key, output, build_dir, tune_budget, retries, cpus_per_job, device_conf,
              as_json) -> None:
    """One job per (model, device) across the cluster; one merged program file signed with the
    farm key, and a farm report (build/<library>/farm-report.json)."""
    from mace.cli.progress import for_stderr
    from mace.farm.driver import build
    doc = build(config, address=address, key=key, output=output, build_dir=build_dir, tune_budget=tune_budget,
                retries=retries, cpus_per_job=cpus_per_job, device_conf=device_conf,
                progress=for_stderr(not as_json, transient=False))
    if as_json:
        _emit(doc)
    else:
        for d in doc["devices"]:
            click.echo(f"{d['fp_id']}  {d['device'] or '?'}")
            for j in d["jobs"]:
                v = j["validation"]
                gain = "" if j["tuning_gain"] is None else f", tuning gain {j['tuning_gain']:+.1%}"
                click.echo(f"  {j['model']}: {j['programs']} programs, validation "
                           f"{'passed' if v['passed'] else 'FAILED'} (cosine {v['min_cosine']:.6f}){gain}, "
                           f"{j['seconds']:.1f} s on {j['node']}")
            for f in d["failures"]:
                click.echo(f"  {f['model']}: FAILED: {f['error']}")
            served = ((doc["merged"] or {}).get("serves") or {}).get(d["fp_id"])
            if served and "error" in served:
                click.echo(f"  merged file on this device: check FAILED: {served['error']}")
            elif served:
                click.echo("  merged file on this device: " + ", ".join(
                    f"{m} {v['from_cache']} from it, {v['compiled']} compiled"
                    for m, v in served.items() if isinstance(v, dict)))
        m = doc["merged"]
        if m:
            click.echo(f"merged: {m['file']} ({len(m['sections'])} sections, {m['programs']} programs, "
                       f"signed by key {m['key_id']})")
        click.echo(f"report: {doc['report']} ({doc['jobs']} jobs, {doc['failed']} failed, {doc['seconds']:.1f} s)")
    sys.exit(FINDINGS if doc["failed"] else OK)


@farm_group.command("verify")
@click.argument("store")
@click.option("--config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The mace.yml whose models the sections are checked with.")
@click.option("--address", default=None, help="Ray cluster (as for `farm build`).")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The farm's private key, which signs what is published.")
@click.option("--build-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--retries", default=2, show_default=True, help="Retries of a job whose node is lost.")
@click.option("--cpus-per-job", default=1.0, show_default=True, help="Ray CPUs each job takes.")
@JSON_OPT
def verify_cmd(store, config, address, key, build_dir, retries, cpus_per_job, as_json) -> None:
    """Verify the sections devices queued in STORE on nodes owning their device (rebuild, re-validate):
    publish each good one signed with the farm key, move each bad one to rejected/."""
    from mace.cli.progress import for_stderr
    from mace.farm.verify import verify_store
    doc = verify_store(config, store, address=address, key=key, build_dir=build_dir, retries=retries,
                       cpus_per_job=cpus_per_job, progress=for_stderr(not as_json, transient=False))
    if as_json:
        _emit(doc)
    else:
        for p in doc["published"]:
            click.echo(f"published {p['queued']} -> {p['path']}")
        for r in doc["rejected"]:
            click.echo(f"rejected {r['path']} -> {r['moved_to']}: {'; '.join(r['reasons'])}")
        for w in doc["waiting"]:
            click.echo(f"still queued {w['path']}: {w['why']}")
        for f in doc["failed"]:
            click.echo(f"still queued {f['path']}: verification failed: {f['error']}")
        click.echo(f"{store}: {doc['queued']} queued, {len(doc['published'])} published, "
                   f"{len(doc['rejected'])} rejected ({doc['seconds']:.1f} s)")
    sys.exit(FINDINGS if doc["failed"] else OK)


def register(cli_group: click.Group) -> None:
    cli_group.add_command(farm_group, "farm")
