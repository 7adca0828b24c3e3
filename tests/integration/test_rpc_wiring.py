"""site.yml's RPC wiring: a head's --rpc comes from the workers whose llm_rpc_head names it.

One local ansible-playbook run (every host an alias of this machine) of the two pieces site.yml uses: the
shared settings (playbooks/vars/shared_settings.yml) with the llm role's checks on the workers and the
llm_rpc_worker role's export, then the same settings on the servers, as the heads' play reads them.
"""

import sys
from pathlib import Path

import pytest
from playbook_json import run_plays  # tests/support

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = str(ROOT / "playbooks" / "vars" / "shared_settings.yml")

INVENTORY = {
    "all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
    "llm_servers": {"hosts": {"head-1": {}, "head-2": {}}},
    "llm_rpc_workers": {"hosts": {
        "w-1": {"llm_rpc_head": "head-1", "llm_rpc_worker_address": "10.0.0.11"},
        "w-2": {"llm_rpc_head": "head-1", "llm_rpc_worker_address": "10.0.0.12", "llm_rpc_worker_port": 50053},
        "w-3": {"llm_rpc_head": "nobody", "llm_rpc_worker_address": "10.0.0.13"},
    }},
}
PLAYS = [
    {"name": "Workers", "hosts": "llm_rpc_workers", "vars_files": [SETTINGS], "tasks": [
        {"name": "Shared settings", "ansible.builtin.include_role": {"name": "llm"}},
        {"name": "Export", "ansible.builtin.include_role": {"name": "llm_rpc_worker", "tasks_from": "export"}},
        {"name": "Build flag", "ansible.builtin.debug": {"var": "llama_cpp_rpc"}},
    ]},
    {"name": "Heads", "hosts": "llm_servers", "gather_facts": False, "vars_files": [SETTINGS], "tasks": [
        {"name": "Workers of this head", "ansible.builtin.debug": {"var": "llama_server_rpc_workers"}},
        {"name": "Build flag", "ansible.builtin.debug": {"var": "llama_cpp_rpc"}},
    ]},
]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return run_plays(tmp_path_factory.mktemp("rpc-wiring"), INVENTORY, PLAYS)


def _results(play, task_name):
    task = next(t for t in play["tasks"] if t["task"]["name"] == task_name)
    return task["hosts"]


def test_a_head_gets_the_endpoints_of_its_workers_and_both_build_with_rpc(result):
    workers, heads = result["plays"]
    served = _results(heads, "Workers of this head")
    assert served["head-1"]["llama_server_rpc_workers"] == ["10.0.0.11:50052", "10.0.0.12:50053"]
    assert served["head-2"]["llama_server_rpc_workers"] == []  # a replica, not a head
    built = _results(heads, "Build flag")
    assert built["head-1"]["llama_cpp_rpc"] is True and built["head-2"]["llama_cpp_rpc"] is False
    assert all(r["llama_cpp_rpc"] is True for r in _results(workers, "Build flag").values())


def test_a_worker_naming_no_server_is_refused_naming_llm_rpc_head(result):
    failed = [(t["task"]["name"], t["hosts"]["w-3"]) for t in result["plays"][0]["tasks"]
              if t["hosts"].get("w-3", {}).get("failed")]
    assert failed, "w-3 passed the checks"
    name, res = failed[0]
    assert name.endswith("Check llm_rpc_head on an RPC worker"), name
    assert "llm_rpc_head must name the host of the llm_servers group" in res["msg"]
    assert "head-1, head-2" in res["msg"] and "'nobody'" in res["msg"]
