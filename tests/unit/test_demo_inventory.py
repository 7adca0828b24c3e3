"""inventory/demo is the README's way to run more playbooks against the demo container (the benchmark
scripts use it): it must give the host every variable molecule's default scenario gives it, or a script
fails half-way ("'llm_test_manifest' is undefined", as it did when the demo linked only llm_servers.yml).
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIO_VARS = [
    ROOT / "molecule/shared/group_vars/all.yml",
    ROOT / "molecule/shared/group_vars/llm_servers.yml",
    ROOT / "molecule/default/host_vars/llm-default.yml",
]


def _inventory_tool():
    tool = shutil.which("ansible-inventory") or str(pathlib.Path(sys.executable).with_name("ansible-inventory"))
    if not os.access(tool, os.X_OK):
        pytest.skip("ansible-inventory is not installed")
    return tool


def test_the_demo_host_gets_every_variable_the_default_scenario_sets():
    wanted = {}
    for path in SCENARIO_VARS:
        wanted.update(yaml.safe_load(path.read_text()) or {})
    out = subprocess.run(
        [_inventory_tool(), "-i", str(ROOT / "inventory/demo"), "--host", "llm-default"],
        capture_output=True, text=True, check=True, cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    got = json.loads(out.stdout)
    missing = sorted(set(wanted) - set(got))
    assert not missing, f"inventory/demo lacks {missing}"
    # The same values, not only the same names (a stale copy would pass the check above).
    assert {k: got[k] for k in wanted} == wanted
