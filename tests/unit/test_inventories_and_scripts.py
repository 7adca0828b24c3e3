"""Nothing under inventory/ or benchmarks/ rots silently: each inventory's variables resolve, and each
playbook a script runs parses with the inventory it runs it with.

inventory/demo is the README's way to run more playbooks against the demo container (the benchmark
scripts use it): it must give the host every variable molecule's default scenario gives it, or a script
fails half-way ("'llm_test_manifest' is undefined", as it did when the demo linked only llm_servers.yml).
"""

import json
import os
import pathlib
import re
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
INVENTORIES = sorted(p.name for p in (ROOT / "inventory").iterdir() if p.is_dir())
# `ansible-playbook -i INVENTORY PLAYBOOK` as the scripts write it.
RUNS = sorted({
    (script.relative_to(ROOT).as_posix(), inventory, playbook)
    for script in [*(ROOT / "benchmarks").glob("*.sh"), *(ROOT / "scripts").glob("*.sh")]
    for inventory, playbook in re.findall(r"ansible-playbook -i (\S+) (\S+\.yml)", script.read_text())
})
MANIFEST = pathlib.Path(os.environ.get("LLM_CACHE_DIR") or "/var/cache/llm-cpu-infra") / "manifest.json"


def _tool(name):
    tool = shutil.which(name) or str(pathlib.Path(sys.executable).with_name(name))
    if not os.access(tool, os.X_OK):
        pytest.skip(f"{name} is not installed")
    return tool


def _run(*args):
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}, timeout=120)


def _host_vars(inventory):
    listed = json.loads(_run(_tool("ansible-inventory"), "-i", f"inventory/{inventory}", "--list").stdout)
    return listed["_meta"]["hostvars"]


def test_the_demo_host_gets_every_variable_the_default_scenario_sets():
    wanted = {}
    for path in SCENARIO_VARS:
        wanted.update(yaml.safe_load(path.read_text()) or {})
    got = _host_vars("demo")["llm-default"]
    missing = sorted(set(wanted) - set(got))
    assert not missing, f"inventory/demo lacks {missing}"
    # The same values, not only the same names (a stale copy would pass the check above).
    assert {k: got[k] for k in wanted} == wanted


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_variable_of_the_inventory_resolves(inventory):
    if inventory == "demo" and not MANIFEST.exists():
        pytest.skip(f"the demo's variables read {MANIFEST}, which tests/support/test_env.sh writes")
    hosts = _host_vars(inventory)
    assert hosts, f"inventory/{inventory} has no host"
    for host, variables in hosts.items():
        names = sorted(v for v in variables if not v.startswith("ansible_"))
        # debug runs on the control node: nothing connects to the host.
        msg = "{{ {" + ", ".join(f"'{n}': {n}" for n in names) + "} | to_json }}"
        result = _run(_tool("ansible"), "-i", f"inventory/{inventory}", host, "-m", "ansible.builtin.debug",
                      "-a", f"msg={msg}", "-o")
        assert result.returncode == 0, f"inventory/{inventory} {host}: {result.stdout[-2000:]}{result.stderr[-2000:]}"


def test_the_scripts_run_playbooks():
    assert ("benchmarks/noop_rerun.sh", "inventory/demo", "site.yml") in RUNS


@pytest.mark.parametrize(("script", "inventory", "playbook"), RUNS)
def test_each_scripts_playbook_parses_with_its_inventory(script, inventory, playbook):
    result = _run(_tool("ansible-playbook"), "--syntax-check", "-i", inventory, playbook)
    assert result.returncode == 0, f"{script}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
