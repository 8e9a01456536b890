"""Rich tables for people: `mace inspect` (a program cache file) and `mace benchmark`."""
from __future__ import annotations

from mace.cli import termtext
from mace.cli.common import console as stdout_console
from mace.programcache.report import human_bytes

# Every string of an inspect dict may come from the file: it goes through termtext.markup
# (control characters and rich markup escaped) before it reaches the console.

def render_inspect(info: dict, console=None) -> None:
    """Rich tables of an inspect_* dict."""
    from rich.table import Table
    m = termtext.markup
    console = console or stdout_console()
    console.print(f"[bold]{m(info['path'])}[/bold]: {human_bytes(info['size'])}, format "
                  f"[bold]{m(info['format'])}[/bold]")
    if info["header"]:
        h = info["header"]
        console.print(f"header: format {m(h['format'])} (readers >= {m(h['min_reader_major'])}), "
                      f"written by {m(h['writer'])}, {m(h['record_count'])} records")
    if info["sections"]:
        t = Table(title="device sections")
        for col in ("id", "device", "programs", "bytes", "tuning", "quarantined", "signature"):
            t.add_column(col)
        for s in info["sections"]:
            sig = s["signature"] + (f" ({', '.join(s['signed_by'])})" if s["signed_by"] else "")
            t.add_row(m(s["id"]), m(s["short"]), str(s["programs"]), human_bytes(s["program_bytes"]),
                      str(s["tuning"]), str(s["quarantined"]), m(sig))
        console.print(t)
    if info.get("trust"):
        console.print(termtext.plain(f"location: {info['trust']['location']} "
                                     f"({info['trust']['reason']})"), markup=False, highlight=False)
    if info["programs"]:
        t = Table(title="programs")
        for col in ("device", "program", "build options", "size", "checksum", "kind", "created",
                    "last used", "hits"):
            t.add_column(col, overflow="fold")
        for p in info["programs"]:
            t.add_row(m(p["device"][:8]), m(p["program"]), m(p["build_options"]), human_bytes(p["size"]),
                      m(p["checksum"]), m(p["kind"]), m(p["created"]), m(p["last_used"]), m(p["hits"]))
        console.print(t)
    _render_rows(console, "tuning records", info["tuning"], ("device", "key", "updated", "record"))
    _render_rows(console, "quarantine", info["quarantine"], ("device", "key", "reason", "time"))
    _render_rows(console, "device capabilities (probed)", info.get("caps", []), ("device", "updated", "record"))
    _render_rows(console, "build failures (skipped on that device)", info.get("build_failures", []),
                 ("device", "key", "stage", "log"))
    if info["xiaomi"]:
        _render_xiaomi(console, info["xiaomi"])
    for f in info["findings"]:
        style = {"error": "red", "warning": "yellow"}.get(f["severity"], "cyan")
        console.print(f"[{style}]{m(f['severity'])} {m(f['code'])}[/{style}]: {m(f['message'])}",
                      markup=True, highlight=False)


def _render_rows(console, title: str, rows: list[dict], cols: tuple[str, ...]) -> None:
    if not rows:
        return
    from rich.table import Table
    t = Table(title=title)
    for c in cols:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(termtext.markup(str(r[c])[:8] if c == "device" else r[c]) for c in cols))
    console.print(t)


def _render_xiaomi(console, x: dict) -> None:
    from rich.table import Table
    m = termtext.markup
    crc = {None: "no checksum", True: "CRC ok", False: "CRC INVALID"}[x["crc_ok"]]
    console.print(f"Xiaomi MACE {m(x['format'])} ({crc}): {x['entries']} entries, "
                  f"{len(x['programs'])} programs, read-only")
    console.print(f"platform info: {m(repr(x['platform_info']))}", highlight=False)
    if x["device_name"] is not None:
        console.print(f"device name: {m(repr(x['device_name']))}", highlight=False)
    t = Table(title="Xiaomi MACE programs")
    for col in ("program", "build options", "size", "kind"):
        t.add_column(col, overflow="fold")
    for p in x["programs"]:
        t.add_row(m(p["program"]), m(p["build_options"]), human_bytes(p["size"]), m(p["kind"]))
    console.print(t)


def render_benchmark(res: dict, console=None) -> None:
    from rich.table import Table
    esc = termtext.markup
    console = console or stdout_console(highlight=False)
    console.print(f"[bold]{esc(res['model'])}[/bold] on {res['runtime']}"
                  + (f" ({esc(res['device'])})" if res.get("device") else ""))
    t = Table(title="initialization (fresh processes, medians)")
    t.add_column("")
    for k in ("cold", "warm"):
        t.add_column(f"{k} ({res['init'][k]['processes']} processes)", justify="right")
    c, w = res["init"]["cold"], res["init"]["warm"]
    for label, key, fmt in (("engine init ms", "init_ms", "{:.1f}"), ("first run ms", "first_run_ms", "{:.2f}"),
                            ("init + first run ms", "init_plus_first_run_ms", "{:.1f}"),
                            ("process wall ms (start to exit)", "wall_ms", "{:.0f}"),
                            ("programs compiled", "compiled", "{}"), ("programs from cache", "from_cache", "{}"),
                            ("peak RSS MB", "maxrss_kb", None)):
        if fmt is None:
            t.add_row(label, f"{c[key] / 1024:.0f}", f"{w[key] / 1024:.0f}")
        else:
            t.add_row(label, fmt.format(c[key]), fmt.format(w[key]))
    console.print(t)
    if res["init"]["speedup"]:
        console.print(f"warm start is {res['init']['speedup']:.1f}x faster to the first result (init + first run)")
    lat = res["latency"]
    if lat["runs"]:
        console.print(f"first run {res['first_run_ms']:.2f} ms; steady latency over {lat['runs']} runs: "
                      f"median {lat['median_ms']:.3f} ms, p90 {lat['p90_ms']:.3f} ms, "
                      f"min {lat['min_ms']:.3f}, max {lat['max_ms']:.3f}, spread (p90-p10)/median "
                      f"{lat['spread'] * 100:.1f}%")
    m = res["memory"]
    console.print(f"memory: peak RSS {m['peak_rss_kb'] / 1024:.0f} MB (this process), "
                  f"{(m['cold_child_peak_rss_kb'] or 0) / 1024:.0f} MB (cold child)"
                  + (f", planned GPU buffers {m['planned_gpu_bytes']} B (naive {m['naive_gpu_bytes']} B)"
                     if m.get("planned_gpu_bytes") is not None else ""))
    p = res["profile"]
    if p["ops"]:
        t = Table(title=f"per-op profile (top {len(p['ops'])} of {p['all_ops']}, mean of {p['runs']} runs)")
        for col in ("op", "type", "avg ms", "%", "cdf %", "GFLOP/s"):
            t.add_column(col, justify="right" if col not in ("op", "type") else "left")
        for o in p["ops"]:
            t.add_row(esc(o["name"]), esc(o["op_type"]), f"{o['ms']:.4f}", f"{o['share'] * 100:.1f}",
                      f"{o['cdf'] * 100:.1f}", f"{o['gflops']:.2f}" if o["gflops"] else "-")
        console.print(t)
    elif p.get("note"):
        console.print(esc(p["note"]))


def _kept(o: dict, reverted: bool) -> str:
    if reverted and o["found_gain"] > 0:
        return "default (whole-model check)"
    if not o.get("changed"):
        return "default"
    lws = ", ".join("-" if w is None else "x".join(map(str, w)) for w in o["lws"])
    return f"{o['variant']}, local size {lws}"


def tune_summary(d: dict) -> list[str]:
    """What tuning did to the whole model, in the same terms as the per-op table."""
    g, pct = d.get("guard"), d.get("min_gain", 0.03) * 100
    lines = []
    if g is None:
        lines.append(f"no op found a configuration {pct:.0f} % faster than its default: defaults kept; "
                     f"model latency {d['model_before_ms']:.2f} ms")
    elif g["kept_tuned"]:
        lines.append(f"whole model: {g['default_ms']:.2f} ms with the defaults, {g['tuned_ms']:.2f} ms tuned "
                     f"({g['gain'] * 100:+.1f} %): the {g['changed_ops']} changed op(s) are kept")
    else:
        lines.append(f"whole model: {g['default_ms']:.2f} ms with the defaults, {g['tuned_ms']:.2f} ms with the "
                     f"{g['changed_ops']} per-op winner(s) ({g['gain'] * 100:+.1f} %)")
        lines.append(f"whole-model check: the per-op gains did not add up to the {pct:.0f} % a change must "
                     f"win by (timing noise margin), so every op keeps its default; model latency "
                     f"{d['model_after_ms']:.2f} ms (+0.0 %)")
    lines.append(f"{d['candidates']} candidates timed, {d['failed']} failed"
                 + (f"; {d['untuned_ops']} ops untuned (budget)" if d.get("untuned_ops") else ""))
    return lines


def render_tune(d: dict, model: str, console=None) -> None:
    """`mace tune`'s table (per op: default, best found, kept) and the whole-model summary."""
    import click
    from rich.table import Table
    esc = termtext.markup
    console = console or stdout_console(highlight=False)
    t = Table(title=f"{esc(model)}: tuning ({d['mode']}) in {d['seconds']:.1f} s")
    for col in ("op", "type", "default ms", "best found ms", "gain found", "kept"):
        t.add_column(col)
    for o in sorted(d["ops"], key=lambda o: -o["default_ms"]):
        t.add_row(esc(o["name"]), esc(o["op_type"]), f"{o['default_ms']:.3f}", f"{o['found_ms']:.3f}",
                  f"{o['found_gain'] * 100:+.1f}%", esc(_kept(o, d["reverted_to_defaults"])))
    console.print(t)
    for line in tune_summary(d):
        click.echo(line)


def quantization_tables(q: dict) -> list:
    """`mace validate` on a quantized model: per-layer, end-to-end and accuracy tables."""
    from rich.table import Table
    if "note" in q:
        return [Table(title=q["note"])]
    out = []
    t = Table(title=f"per layer vs the float model {termtext.markup(q['float_model'])}")
    for col in ("layer output", "op", "cosine", "SQNR dB"):
        t.add_column(col)
    for r in q["per_layer"]:
        t.add_row(termtext.markup(r["value"]), r["op"], f"{r['cosine']:.5f}", f"{r['sqnr_db']:.1f}")
    out.append(t)
    e = q["end_to_end"]
    t = Table(title=f"end to end over {e['inputs']} random inputs")
    for col in ("cosine mean", "cosine min", "top-1 agreement", "top-5 agreement"):
        t.add_column(col)
    t.add_row(f"{e['cosine_mean']:.5f}", f"{e['cosine_min']:.5f}", f"{e['top1_agreement']:.3f}",
              f"{e['top5_agreement']:.3f}")
    out.append(t)
    if "accuracy" in q:
        a = q["accuracy"]
        t = Table(title=f"accuracy on {termtext.markup(a['data'])} ({a['samples']} samples)")
        for col in ("model", "Top-1", "Top-5"):
            t.add_column(col)
        for k in ("float", "quantized"):
            t.add_row(k, f"{a[k]['top1'] * 100:.2f} %", f"{a[k]['top5'] * 100:.2f} %")
        out.append(t)
    return out
