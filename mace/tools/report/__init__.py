"""`mace report --config mace.yml -o report/`: the deployment report, as Markdown and HTML.

Reads the existing build (never rebuilds over it: its program files may hold tuning), runs what
it needs (convert + build for the target devices when there is no build, or with --tune;
benchmark; validate against the ONNX model with random inputs within input_ranges) or reads
saved `--json` results (`--from-json`),
then writes `report.md` (plots as PNG files beside it), `report.html` (self-contained: plots
embedded as base64 PNG, inline CSS) and `results.json` (everything it used; feed it back with
`--from-json` to re-render). Sections: project overview, target devices, models, program files
(technical summary from mace.programcache.inspect), the workflow run with its commands,
performance, validation.

collect.py gathers the results, plots.py draws, sections.py writes the sections as document
blocks, document.py renders them to Markdown and HTML.
"""
from __future__ import annotations

import logging
from pathlib import Path

from mace.fileio import write_atomic
from mace.jsondoc import dumps
from mace.tools.progress import sink
from mace.tools.report.collect import classify, collect, load_saved
from mace.tools.report.document import to_html, to_markdown
from mace.tools.report.plots import _mpl
from mace.tools.report.sections import build_blocks

log = logging.getLogger("mace.report")


def make_report(config=None, out_dir="report", from_json=(), target_socs=None, build_dir=None,
                runtime="gpu", runs=50, init_runs=3, top=10, seed=0, progress=None, tune=False) -> dict:
    """Collect (or read) the results, plot and write report.md, report.html and results.json
    into `out_dir`. `progress.step(name)` hears of each phase (mace.tools.progress)."""
    _mpl()                                       # fail early without matplotlib
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bar = sink(progress)

    def step(text: str) -> None:
        log.info("report: %s", text)
        bar.step(text)
    with bar:
        results = collect(config, from_json, target_socs, build_dir, runtime, runs, init_runs, top, seed,
                          steps=step, tune=tune, out_dir=out)
        step("plots + report")
        (out / "plots").mkdir(exist_ok=True)
        blocks, plots = build_blocks(results, out, top)
        lib = (results.get("convert") or results.get("config") or {}).get("library_name", "mace")
        md = out / "report.md"
        write_atomic(md, to_markdown(blocks, out))
        page = out / "report.html"
        write_atomic(page, to_html(blocks, f"mace deployment report: {lib}"))
        rj = out / "results.json"
        write_atomic(rj, dumps(results))
    return {"markdown": str(md), "html": str(page), "results": str(rj), "plots": [str(p) for p in plots],
            "sections": [b[2] for b in blocks if b[0] == "h" and b[1] == 2],
            "commands": [c["command"] for c in results["commands"]]}


__all__ = ["make_report", "collect", "build_blocks", "to_markdown", "to_html", "classify", "load_saved"]
