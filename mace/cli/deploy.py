"""`mace deploy`: run a converted model on the remote devices of device.yml over ssh.

`register(group)` adds the command to the top-level `mace` group. Exit codes: 0 every device
ran, 2 bad input (device.yml, model, inputs) or a device failed (its one-line error is printed;
with --json every device's result, failed ones with "ok": false, is printed first).
"""
from __future__ import annotations

import sys

import click

from mace.cli.common import JSON_OPT, PROGRAM_OPT, RUNTIME_OPT, emit_json


def echo_result(r: dict, echo=click.echo) -> None:
    """Human-readable lines for one device's result (also for `mace run --device-conf`)."""
    if not r.get("ok"):
        echo(f"error: {r['error']}", err=True)
        return
    run = r["run"]
    s = run.get("summary", {})
    t = r["timings"]
    where = f" on {s['device']}" if s.get("device") else ""
    echo(f"device {r['device']} ({r['username']}@{r['address']}, mace {r['remote']['mace_version']}): "
         f"runtime {s.get('runtime', '?')}{where}")
    echo(f"  init {s.get('init_seconds', 0) * 1e3:.1f} ms, first run {run.get('first_run_ms', 0):.2f} ms; "
         f"upload {t['upload_s']:.2f} s, remote run {t['run_s']:.2f} s, download {t['download_s']:.2f} s")
    lat = run.get("latency")
    if lat:
        echo(f"  latency over {lat['runs']} runs: median {lat['median_ms']:.3f} ms, p90 {lat['p90_ms']:.3f} ms")
    for k, v in (run.get("outputs") or {}).items():
        echo(f"  {k} {v['shape']}: argmax {v['argmax']}, mean {v['mean']:.4g}, std {v['std']:.4g}")
    if r.get("output_dir"):
        echo(f"  outputs in {r['output_dir']}")
    p = r["program"]
    if p.get("pulled"):
        new = ", ".join(x["short"] for x in p["new_sections"]) or "none new"
        echo(f"  program file {p['path']}: merged the device's file ({len(p['sections'])} section(s); {new})")
    for f in p.get("findings", []):
        if f.get("severity") in ("warning", "error"):
            echo(f"  {f['severity']}: {f['message']}", err=True)


def register(cli_group: click.Group) -> None:
    @cli_group.command("deploy")
    @click.argument("model", type=click.Path(dir_okay=False))
    @click.option("--device-conf", type=click.Path(dir_okay=False), default=None,
                  help="device.yml listing the devices (required; trusted configuration).")
    @click.option("--device", "device", default=None,
                  help="Only this device of device.yml (default: every device).")
    @PROGRAM_OPT
    @RUNTIME_OPT
    @click.option("--input", "inputs", multiple=True,
                  help="NAME=FILE.npy (default: random inputs drawn on the device).")
    @click.option("--output-dir", type=click.Path(file_okay=False), default=None,
                  help="Bring outputs back to DIR/<device>/NAME.npy (with mace-run.json).")
    @click.option("--runs", type=click.IntRange(0), default=0, show_default=True,
                  help="Timed runs after a separate first (warm-up) run, as for `mace run`.")
    @click.option("--seed", type=int, default=None, help="Seed of the random inputs.")
    @JSON_OPT
    def deploy_cmd(model, device_conf, device, program, runtime, inputs, output_dir, runs, seed, as_json):
        """Copy MODEL, the program file and inputs to remote devices over ssh, run there, bring
        outputs, timings and the device's compiled programs back (merged into --program).

        See docs/remote-devices.md for device.yml."""
        from mace.deploy.remote import deploy
        results = deploy(device_conf, device, model, program, runtime, inputs, output_dir,
                         seed=seed, runs=runs)
        failed = [r for r in results if not r["ok"]]
        if as_json:
            emit_json({"model": model, "devices": results, "ok": not failed})
            for r in failed:
                click.echo(f"error: {r['error']}", err=True)
        else:
            for r in results:
                echo_result(r)
            if len(results) > 1:
                click.echo(f"{len(results) - len(failed)} of {len(results)} device(s) ran {model}")
        if failed:
            sys.exit(2)
