"""A fleet's inputs are checked together: one wrong value on any host stops every host before any changes.

site.yml (check mode) against a fleet-shaped inventory of aliases of this machine: a gateway, an RPC worker
and eight servers (one the worker's head, one per NUMA node, two also gateways). One run has a wrong value on
the gateway, the worker, one server, a host that is both (its two roles on one port), one that is both (its
gateway would publish its keyless server), a server whose two roles share a path, one with an unquoted off,
one with a managed setting in its environment and one with a shared account: each of those is refused
at its own input check, naming the variable; the good server stops at the input play's last task, naming the
refused hosts; no host runs a task of a later play, and none reported a change. A second run, all good, passes
the input play on every host.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMON = {
    "ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": sys.executable,
    "gguf_model_repo": "org/model-GGUF", "gguf_model_endpoint": "http://127.0.0.1:9",
    "gguf_model_files": [{"name": "model-Q6_K.gguf", "sha256": "0" * 64}],
}
# The worker and its head are one machine (one ansible_host): a worker on loopback may serve only a head there.
WORKER = {"ansible_host": "127.0.0.1", "llm_rpc_head": "head", "llm_rpc_worker_address": "127.0.0.1",
          "llm_rpc_worker_allowed_sources": ["127.0.0.1"]}
BAD = {
    "gw": ({"llm_gateway_timeout_server": 5},
           "llm_gateway_timeout_server must be a whole number from 60 to 86400 (seconds"),
    "worker": ({"llm_rpc_worker_allowed_sources": ["somewhere"]}, "llm_rpc_worker_allowed_sources"),
    "plain": ({"llama_server_alias": "my model"}, "llama_server_alias must be a model name"),
    # Gateway and server on one host, both on 8080 (each role's own check passes): only compared across roles.
    "both": ({"llm_gateway_port": 8080}, "llama_server_port (8080 on 127.0.0.1) and llm_gateway_port (8080 on 0.0.0.0)"
                                         " would both listen on port 8080 of both"),
    # A gateway on every address in front of its own host's keyless (loopback) llama-server, no client keys.
    "edge": ({"llm_gateway_bind_address": "0.0.0.0"},  # noqa: S104
             "llm_gateway_api_keys must be set when llm_gateway_bind_address is 0.0.0.0: edge's own llama-server"),
    # Two roles' paths on one server: the tuning document inside the directory gguf_model prunes.
    "store": ({"autotune_file": "/srv/llm/models/tuning.json"},
              "autotune_file (/srv/llm/models/tuning.json) is inside gguf_model_dir (/srv/llm/models)"),
    # An unquoted off (YAML's false) where a choice is expected.
    "typed": ({"llama_server_gpu_offload": False}, "llama_server_gpu_offload must be one of: auto, off, got the YAML"),
    # A managed setting through llama-server's environment, and a shared account as the service user.
    "channel": ({"llama_server_environment": {"LLAMA_ARG_PORT": "9000"}}, "LLAMA_ARG_PORT"),
    "account": ({"llm_service_user": "www-data"}, "www-data"),
}
# Servers that only carry a wrong value in the refused run.
EXTRA = ["store", "typed", "channel", "account"]
# "both" is a gateway and a server; a good run gives its gateway another port.
GOOD_BOTH = {"llm_gateway_port": 8000, "llm_gateway_api_keys": [{"name": "alice", "key": "alice-key-0123456789ab"}]}
# "edge" is a gateway and a keyless server; a good run keeps its gateway on loopback.
GOOD_EDGE = {"llm_gateway_port": 8001, "llm_gateway_bind_address": "127.0.0.1"}
# One llama-server per NUMA node on "plain" (2 nodes, as the hardware override says): its fleet plan has two.
PER_NODE = {"llama_server_instances": "per_node", "llm_hardware_overrides": {"numa_nodes": 2}, "llm_threads": 2}
INPUT_PLAY = "Check every host's inputs"
STOP = "Stop every host when any host's inputs are wrong"
PLAN = "Plan what this server runs and where the gateway reaches it"


def inventory(bad):
    """The fleet, with `bad` ({host: its wrong values}) on top."""
    def host(name, values=None):
        return {name: {**(values or {}), **bad.get(name, {})}}
    return {"all": {"vars": COMMON, "children": {
        "llm_gateway": {"hosts": {**host("gw"), **host("both", GOOD_BOTH), **host("edge", GOOD_EDGE)}},
        "llm_rpc_workers": {"hosts": host("worker", WORKER)},
        "llm_servers": {"hosts": {**host("head", {"ansible_host": "127.0.0.1"}), **host("plain", PER_NODE),
                                  **{k: v for name in EXTRA for k, v in host(name).items()},
                                  **host("both", GOOD_BOTH), **host("edge", GOOD_EDGE)}},
    }}}


def run_site(tmp, bad):
    path = Path(tmp) / "hosts.json"
    path.write_text(json.dumps(inventory(bad)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0")
    out = subprocess.run(["ansible-playbook", "site.yml", "-i", str(path), "-f", "8", "--check"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=False, timeout=600)
    try:
        return out.returncode, json.loads(out.stdout)
    except json.JSONDecodeError:
        raise AssertionError(out.stderr[-2000:]) from None


def failures(tasks, host):
    return [(t["task"]["name"], t["hosts"][host]) for t in tasks if t["hosts"].get(host, {}).get("failed")]


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    return run_site(tmp_path_factory.mktemp("fleet_bad"), {h: values for h, (values, _) in BAD.items()})


@pytest.mark.parametrize("host", sorted(BAD))
def test_each_wrong_host_is_refused_at_its_own_check(refused, host):
    rc, result = refused
    assert rc != 0
    [play] = [p for p in result["plays"] if p["play"]["name"].startswith(INPUT_PLAY)]
    [(task, res)] = failures(play["tasks"], host)
    assert task.split(" : ")[-1].startswith(("Validating arguments", "Check ")), task
    assert BAD[host][1] in json.dumps(res), res.get("msg")


def test_the_good_server_stops_and_no_host_goes_on(refused):
    rc, result = refused
    assert rc != 0
    plays = result["plays"]
    assert plays[0]["play"]["name"].startswith(INPUT_PLAY)
    [(task, res)] = failures(plays[0]["tasks"], "head")
    assert task == STOP
    assert all(h in res["msg"] for h in BAD) and "no host was changed" in res["msg"]
    assert not any(res.get("changed") for t in plays[0]["tasks"] for res in t["hosts"].values())
    # No later play ran a task anywhere: the gateway's haproxy.cfg, the worker's build, the servers' tuning.
    assert not [t["task"]["name"] for p in plays[1:] for t in p["tasks"] if t["hosts"]]


def test_a_good_fleet_passes_the_input_play(tmp_path):
    _, result = run_site(tmp_path, {})
    play = result["plays"][0]
    assert play["play"]["name"].startswith(INPUT_PLAY)
    for host in ("gw", "worker", "head", "plain", *EXTRA, "both", "edge"):
        assert not failures(play["tasks"], host), (host, failures(play["tasks"], host)[:1])
    ran = {h for t in play["tasks"] for h, res in t["hosts"].items() if not res.get("skipped")
           and t["task"]["name"].startswith(("llm_gateway : ", "llm_rpc_worker : ", "llama_server : "))}
    assert ran == {"gw", "worker", "head", "plain", *EXTRA, "both", "edge"}


def plans(play):
    [task] = [t for t in play["tasks"] if t["task"]["name"] == PLAN]
    return {h: res["ansible_facts"]["llm_server_plan"] for h, res in task["hosts"].items() if not res.get("skipped")}


def test_the_input_play_plans_every_server_from_its_own_settings(tmp_path):
    """The fleet plan: each server's instances as its settings and NUMA nodes make them, the plan the gateway's
    backends and the llama_server role read; the per_node server's two ports are in the port check."""
    _, result = run_site(tmp_path, {})
    made = plans(result["plays"][0])
    assert set(made) == {"head", "plain", *EXTRA, "both", "edge"}
    assert [(i["unit"], i["port"], i.get("threads")) for i in made["plain"]["instances"]] == [
        ("llama-server-node0.service", 8080, 1), ("llama-server-node1.service", 8081, 1)]
    assert made["plain"]["numa_nodes"] == 2 and made["plain"]["mode"] == "per_node"
    assert [(i["gateway_server"], i["port"]) for i in made["head"]["instances"]] == [("head", 8080)]
    # Four NUMA nodes for two threads: refused in the input play (the count is read before the server's checks),
    # so it gets no plan, and the gateway's check still runs (its backends leave that server out).
    _, bad = run_site(tmp_path, {"plain": {"llm_hardware_overrides": {"numa_nodes": 4}}})
    [(task, res)] = failures(bad["plays"][0]["tasks"], "plain")
    assert task.split(" : ")[-1].startswith("Check "), task
    assert "llama_server_threads must be at least the NUMA nodes (4)" in json.dumps(res), res.get("msg")
    assert set(plans(bad["plays"][0])) == {"head", *EXTRA, "both", "edge"}
    assert not failures(bad["plays"][0]["tasks"], "gw")[:-1]
    [(task, _)] = [f for f in failures(bad["plays"][0]["tasks"], "gw")]
    assert task == STOP
