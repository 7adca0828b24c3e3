"""The os_tuning role reboots only when os_tuning_reboot_ok is true.

Runs the role's kernel command line tasks against this machine in check mode with parameters
the running kernel does not have. With reboot_ok false the reboot task must be skipped and the
play must say a reboot is needed; with reboot_ok true the reboot task must run (ansible's reboot
action refuses a local connection, so nothing can reboot here either way).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: os_tuning
        tasks_from: state
    - ansible.builtin.include_role:
        name: os_tuning
        tasks_from: cmdline
"""


def run(reboot_ok, tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    extra = {"ansible_python_interpreter": sys.executable, "os_tuning_kernel_cmdline_enabled": True,
             "os_tuning_kernel_cmdline": ["llm_test_param=1"], "os_tuning_reboot_ok": reboot_ok}
    out = subprocess.run(["ansible-playbook", str(playbook), "-i", "localhost,", "--check", "-e", json.dumps(extra)],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)
    tasks = json.loads(out.stdout)["plays"][0]["tasks"]
    return {t["task"]["name"].split(" : ")[-1]: t["hosts"]["localhost"] for t in tasks}


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("reboot")


def test_never_reboots_unless_allowed_and_says_so(tmp):
    results = run(False, tmp)
    reboot = next(v for k, v in results.items() if k.startswith("Reboot"))
    assert reboot.get("skipped") is True
    decision = results["Work out whether a reboot is needed for the parameters to apply"]
    assert decision["ansible_facts"]["os_tuning_reboot_required"] is True
    said = next(v for k, v in results.items() if k.startswith("Say that a reboot is needed"))
    assert "llm_test_param=1 take effect after a reboot" in said["msg"]


def test_reboots_when_allowed(tmp):
    results = run(True, tmp)
    reboot = next(v for k, v in results.items() if k.startswith("Reboot"))
    assert not reboot.get("skipped")
    assert "would reboot the control node" in reboot.get("msg", "")
