"""Fixtures of the deployment-workflow tests: the bundled digits example, built for this machine."""
from __future__ import annotations

import pytest
from wf_helpers import copy_example, invoke_json


@pytest.fixture(scope="session")
def local_soc() -> str:
    from mace.tools.build import local_targets
    targets = local_targets()
    if not targets:
        pytest.skip("no OpenCL device")
    return targets[0].soc


@pytest.fixture(scope="session")
def built(tmp_path_factory, local_soc):
    """`mace convert --config mace.yml --target-socs <local soc> --embed --json` on the example."""
    cfg = copy_example(tmp_path_factory.mktemp("wf-built"))
    doc = invoke_json(["convert", "--config", cfg, "--target-socs", local_soc, "--embed", "--json"])
    return cfg, doc
