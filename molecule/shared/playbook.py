"""Run a playbook against the scenario's instance from a verify test, and read its results."""

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def inventory():
    """The scenario's inventory, which molecule names in the verifier's environment."""
    if os.environ.get("MOLECULE_INVENTORY_FILE"):
        return os.environ["MOLECULE_INVENTORY_FILE"]
    return str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory")


def run(playbook, extra=None, *options):
    """Returns (rc, changed task names, failures as [(task, message or per-item messages)])."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    out = subprocess.run(["ansible-playbook", "-i", inventory(), str(playbook), "-e", json.dumps(extra or {}),
                          *options], env=env, capture_output=True, text=True, check=False, timeout=1800)
    result = json.loads(out.stdout)
    changed, failures = [], []
    for play in result["plays"]:
        for task in play["tasks"]:
            for host in task["hosts"].values():
                if host.get("changed"):
                    changed.append(task["task"]["name"])
                if host.get("failed") and not host.get("ignore_errors"):
                    # A loop's own message is "One or more items failed": the reasons are per item.
                    items = [r.get("msg") for r in host.get("results", []) if r.get("failed")]
                    failures.append((task["task"]["name"], items or host.get("msg")))
    return out.returncode, changed, failures
