"""The `mace` command line: one thin verb per command, calling public functions.

Exit codes: 0 success, 1 a check failed (validation below threshold, unusable cache), 2 bad
input (missing/corrupt file, bad config, unknown device). Logs go to stderr; `--json` prints
one JSON document on stdout. Heavy modules are imported inside the verbs to keep start-up fast.

One module per command family: `run` (run, validate, tune, devices, demo), `cache` (inspect,
doctor, cache verify|merge|prune), `store` (cache publish|pull), `workflow` (convert, benchmark,
report), `deploy`, `farm` (farm build); `common` holds the group, the shared options and the JSON
emitter, `render` the rich tables.
"""
from __future__ import annotations

import logging
import os
import sys

from mace.cli import cache, deploy, farm, run, workflow
from mace.cli.common import cli, emit_json, setup_logging

workflow.register(cli)
deploy.register(cli)
cache.register(cli)
farm.register(cli)

__all__ = ["cli", "main", "emit_json", "setup_logging", "run"]


def main() -> None:
    """Entry point of `mace` / `python -m mace`.

    After the command has finished and everything is flushed, the process leaves with
    os._exit: the interpreter's teardown would otherwise spend ~50 ms releasing the OpenCL
    context (PoCL joins its worker threads) after the work is done, which is a sizeable share
    of a warm start. Files are written and closed by the commands themselves before this."""
    code: int | str | None = 0
    try:
        cli(prog_name="mace")
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    code = 0 if code is None else int(code)
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: let the interpreter report it
        sys.exit(code)
    os._exit(code)
