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


def execute(playbook, extra=None, *options):
    """(rc, the json callback's result) of ansible-playbook against the scenario's instance."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    out = subprocess.run(["ansible-playbook", "-i", inventory(), str(playbook), "-e", json.dumps(extra or {}),
                          *options], env=env, capture_output=True, text=True, check=False, timeout=1800)
    return out.returncode, json.loads(out.stdout)


def messages(result, task_suffix):
    """The msg of every host result of the tasks whose name ends with task_suffix."""
    return [host.get("msg") for play in result["plays"] for task in play["tasks"]
            if task["task"]["name"].endswith(task_suffix) for host in task["hosts"].values()]


def run(playbook, extra=None, *options):
    """Returns (rc, changed task names, failures as [(task, message or per-item messages)])."""
    rc, result = execute(playbook, extra, *options)
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
    return rc, changed, failures
