"""tasks_from: drain / ready as the switch play calls them: on the node's host, delegated to the gateway,
against a real HAProxy rendered from the role's template (its runtime socket in a temporary directory,
loopback ports the kernel picks). A generation running on the node holds the drain until it ends or the
drain's timeout passes; ready waits for the gateway's own health checks."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import haproxy_runtime as rt
from fleet_plans import with_plans  # tests/support
from haproxy_lab import HAPROXY, Haproxy, Node, free_port, render, role_variables, wait_until  # tests/support

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = """
- name: Switch one node, as the switch play does
  hosts: llm_servers
  gather_facts: false
  tasks:
    - name: Take this node out of the gateway
      ansible.builtin.include_role:
        name: llm_gateway
        tasks_from: drain
      vars:
        llm_gateway_server: "{{ inventory_hostname }}"
        __llm_gateway_runtime_socket: "{{ test_socket }}"

    - name: Record what the gateway says meanwhile
      ansible.builtin.command:
        argv: ["{{ ansible_python_interpreter }}", "{{ test_probe }}", "{{ test_socket }}", "{{ inventory_hostname }}"]
      delegate_to: gw
      changed_when: false
      register: drained_state

    - name: Put it back
      ansible.builtin.include_role:
        name: llm_gateway
        tasks_from: ready
      vars:
        llm_gateway_server: "{{ inventory_hostname }}"
        __llm_gateway_runtime_socket: "{{ test_socket }}"
"""
PROBE = """
import json, sys
from ansible_collections.cpu_llm.infra.plugins.module_utils import haproxy_runtime as rt
print(json.dumps(rt.server_state(sys.argv[1], "llm_servers", sys.argv[2])))
"""


@pytest.fixture
def lab(tmp_path):
    nodes = {"llm-1": Node("llm-1"), "llm-2": Node("llm-2")}
    port, socket_path = free_port(), str(tmp_path / "admin.sock")
    inventory = {name: {"ansible_host": "127.0.0.1", "llama_server_port": node.port} for name, node in nodes.items()}
    haproxy = Haproxy(render("haproxy.cfg.j2", role_variables(
        inventory, llm_gateway_bind_address="127.0.0.1", llm_gateway_port=port, llm_gateway_stats_port=free_port(),
        llm_gateway_check_interval=1, __llm_gateway_runtime_socket=socket_path)), tmp_path, socket_path)
    assert wait_until(lambda: all(rt.up(rt.server_state(socket_path, "llm_servers", n)) for n in nodes))
    yield tmp_path, nodes, port, socket_path, inventory
    for node in nodes.values():
        node.stop()
    haproxy.stop()


def play(tmp_path, socket_path, inventory, limit, **extra):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {"all": {"vars": {**local, "test_socket": socket_path, "test_probe": str(tmp_path / "probe.py"), **extra},
                     "children": {"llm_servers": {"hosts": inventory}, "llm_gateway": {"hosts": {"gw": {}}}}}}
    (tmp_path / "hosts.json").write_text(json.dumps(hosts))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "probe.py").write_text(PROBE)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0", PYTHONPATH=str(ROOT / "collections"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(["ansible-playbook", str(tmp_path / "play.yml"), "-i", str(tmp_path / "hosts.json"),
                          "--limit", limit], cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                         timeout=300)
    return json.loads(out.stdout)


def task_result(result, name, host):
    task = next(t for t in result["plays"][0]["tasks"] if t["task"]["name"].endswith(name))
    return task["hosts"][host]


def test_drain_waits_for_the_running_generation_then_ready_puts_the_node_back(lab):
    tmp_path, nodes, port, socket_path, inventory = lab
    streams = threading.Thread(target=lambda: __import__("urllib.request").request.urlopen(
        f"http://127.0.0.1:{port}/stream", timeout=60).read())
    streams.start()
    assert wait_until(lambda: sum(n.streams for n in nodes.values()) == 1)
    busy = next(name for name, n in nodes.items() if n.streams)

    def end_the_generation_2_s_into_the_drain():
        if wait_until(lambda: rt.server_state(socket_path, "llm_servers", busy)["state"] == "drain", timeout=120):
            time.sleep(2)
        nodes[busy].release.set()

    threading.Thread(target=end_the_generation_2_s_into_the_drain, daemon=True).start()
    result = play(tmp_path, socket_path, inventory, busy, llm_gateway_drain_timeout=30)
    assert result["stats"][busy]["failures"] == 0, json.dumps(result)[:3000]
    waited = task_result(result, "Wait until the node's running requests are done on every gateway "
                                 "(at most llm_gateway_drain_timeout s)", busy)["results"][0]
    assert waited["sessions"] == 0 and not waited["timed_out"] and waited["waited"] >= 1
    meanwhile = json.loads(task_result(result, "Record what the gateway says meanwhile", busy)["stdout"])
    assert (meanwhile["state"], meanwhile["status"], meanwhile["sessions"]) == ("drain", "DRAIN", 0)
    ready = task_result(result, "Put the node back on every gateway once their health checks pass "
                                "(at most llm_gateway_ready_timeout s)", busy)["results"][0]
    assert ready["changed"] and (ready["state"], ready["status"]) == ("ready", "UP")
    streams.join(10)


def test_a_drain_timeout_goes_on_with_a_warning_or_fails_when_asked(lab):
    tmp_path, nodes, port, socket_path, inventory = lab
    threading.Thread(target=lambda: __import__("urllib.request").request.urlopen(
        f"http://127.0.0.1:{port}/stream", timeout=60).read(), daemon=True).start()
    assert wait_until(lambda: sum(n.streams for n in nodes.values()) == 1)
    busy = next(name for name, n in nodes.items() if n.streams)
    result = play(tmp_path, socket_path, inventory, busy, llm_gateway_drain_timeout=1)
    assert result["stats"][busy]["failures"] == 0
    waited = task_result(result, "(at most llm_gateway_drain_timeout s)", busy)
    assert waited["results"][0]["timed_out"] and waited["results"][0]["sessions"] == 1
    assert waited["warnings"] == [f"llm_servers/{busy} still serves 1 request(s) (0 queued) after 1 s of drain; "
                                  "going on: they will be cut"]

    result = play(tmp_path, socket_path, inventory, busy, llm_gateway_drain_timeout=1,
                  llm_gateway_drain_fail_on_timeout=True)
    assert result["stats"][busy]["failures"] == 1
    failed = task_result(result, "(at most llm_gateway_drain_timeout s)", busy)
    assert "still serves 1 request(s) (0 queued) after 1 s of drain" in json.dumps(failed)
    # The play stopped with the node drained, for an operator to decide.
    assert rt.server_state(socket_path, "llm_servers", busy)["state"] == "drain"
    nodes[busy].release.set()


pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (scripts/setup.sh installs it)")


PER_NODE_PLAYBOOK = """
- name: Switch a node that runs one llama-server per NUMA node
  hosts: llm_servers
  gather_facts: false
  tasks:
    - name: Take every instance of this node out of the gateway
      ansible.builtin.include_role:
        name: llm_gateway
        tasks_from: drain
      vars:
        __llm_gateway_runtime_socket: "{{ test_socket }}"

    - name: Record what the gateway says meanwhile
      ansible.builtin.command:
        argv: ["{{ ansible_python_interpreter }}", "{{ test_probe }}", "{{ test_socket }}", llm-1-n0, llm-1-n1, llm-2]
      delegate_to: gw
      changed_when: false
      register: drained_state

    - name: Put every instance back
      ansible.builtin.include_role:
        name: llm_gateway
        tasks_from: ready
      vars:
        __llm_gateway_runtime_socket: "{{ test_socket }}"
"""
PER_NODE_PROBE = """
import json, sys
from ansible_collections.cpu_llm.infra.plugins.module_utils import haproxy_runtime as rt
print(json.dumps({name: rt.server_state(sys.argv[1], "llm_servers", name)["state"] for name in sys.argv[2:]}))
"""


def test_a_per_node_server_is_drained_and_put_back_by_every_instance_name(tmp_path, monkeypatch):
    """A fleet plan with llama_server_instances: per_node on 2 NUMA nodes: drain and ready address llm-1-n0 and
    llm-1-n1 (the names the default backends give), and leave llm-2 alone."""
    nodes = {name: Node(name) for name in ("llm-1-n0", "llm-1-n1", "llm-2")}
    socket_path = str(tmp_path / "admin.sock")
    backends = [{"name": name, "address": "127.0.0.1", "port": node.port} for name, node in nodes.items()]
    haproxy = Haproxy(render("haproxy.cfg.j2", role_variables(
        {}, llm_gateway_backends=backends, llm_gateway_bind_address="127.0.0.1", llm_gateway_port=free_port(),
        llm_gateway_stats_port=free_port(), llm_gateway_check_interval=1, __llm_gateway_runtime_socket=socket_path)),
        tmp_path, socket_path)
    try:
        assert wait_until(lambda: all(rt.up(rt.server_state(socket_path, "llm_servers", n)) for n in nodes))
        inventory = with_plans({"llm-1": {"ansible_host": "127.0.0.1", "llama_server_instances": "per_node",
                                          "llm_hardware": {"numa_nodes": 2}},
                                "llm-2": {"ansible_host": "127.0.0.1"}})
        monkeypatch.setattr(__import__(__name__), "PLAYBOOK", PER_NODE_PLAYBOOK)
        monkeypatch.setattr(__import__(__name__), "PROBE", PER_NODE_PROBE)
        result = play(tmp_path, socket_path, inventory, "llm-1")
        assert result["stats"]["llm-1"]["failures"] == 0, json.dumps(result)[:3000]
        meanwhile = json.loads(task_result(result, "Record what the gateway says meanwhile", "llm-1")["stdout"])
        assert meanwhile == {"llm-1-n0": "drain", "llm-1-n1": "drain", "llm-2": "ready"}
        ready = task_result(result, "(at most llm_gateway_ready_timeout s)", "llm-1")["results"]
        assert [(r["item"][1], r["state"], r["status"]) for r in ready] == [("llm-1-n0", "ready", "UP"),
                                                                             ("llm-1-n1", "ready", "UP")]
    finally:
        for node in nodes.values():
            node.stop()
        haproxy.stop()
