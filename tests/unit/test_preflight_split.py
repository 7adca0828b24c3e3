"""The preflight role on an RPC head, run by ansible-playbook against one inventory host per case: the sizing
report splits the model over the head and its workers, and the fit that stops the play is the split's.

The model is DeepSeek-V3 Q4_K_M's real tensor table (a header-only GGUF, tests/support/make_gguf.py: 404.6 GB);
every head is one socket of the seed's box (192 GB), so the model never fits a head alone. Two workers' facts are
given to their inventory hosts (set_fact cacheable, as the role's llm_hardware_facts would set them), so the
workers' RAM is also read from the inventory.
"""

import json

import make_gguf  # tests/support (on the path through pytest.ini)
import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header as gh
from playbook_json import assert_refused, run_checks  # tests/support

GB = 10**9
ONE = {"cpu_model": "AMD EPYC 9124 16-Core Processor", "sockets": 1, "cores": 16, "threads": 32, "numa_nodes": 1,
       "memory_type": "DDR5", "memory_channels": 12, "memory_speed_mts": 4800, "memory_total_bytes": 192 * GB}
TWO = ["10.0.1.21:50052", "10.0.1.22:50052"]
STOP = "Stop when the model does not fit in memory or on disk"
REPORT = "Size the model for this host"
HOSTS = {
    # The workers: their facts are in the inventory's hostvars once the first task ran.
    "worker-21": {"ansible_host": "10.0.1.21", "worker_facts": ONE},
    "worker-22": {"ansible_host": "10.0.1.22", "worker_facts": ONE},
    "head-alone": {},
    # 40 layers on the workers: the report's suggested placement (see test_sizing.py).
    "head-given": {"preflight_rpc_workers": TWO, "preflight_rpc_layers": 40,
                   "preflight_rpc_worker_hardware": [{"memory_total_bytes": 192 * GB}] * 2},
    "head-facts": {"preflight_rpc_workers": TWO, "preflight_parallel": 2, "preflight_rpc_layers": 40},
    "head-default-layers": {"preflight_rpc_workers": TWO},
    "head-short": {"preflight_rpc_workers": TWO[:1]},
    "head-unknown-worker": {"preflight_rpc_workers": ["10.0.1.23:50052"]},
    "bad-parallel": {"preflight_parallel": 0},
    "bad-public-worker": {"preflight_rpc_workers": ["203.0.113.7:50052"]},
    "bad-worker-memory": {"preflight_rpc_workers": TWO[:1],
                          "preflight_rpc_worker_hardware": [{"memory_total_bytes": "lots"}]},
    "bad-worker-count": {"preflight_rpc_workers": TWO, "preflight_rpc_worker_hardware": [{"memory_total_bytes": 1}]},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """{host: (first failed task or None, its result)} and the report each head printed."""
    tmp = tmp_path_factory.mktemp("preflight")
    [path] = make_gguf.write_header_only(tmp / "deepseek-v3.gguf", "deepseek-v3", "Q4_K_M")
    header = gh.read_header(path)
    model = dict(gh.model_profile([header]), quant="Q4_K_M", layers=gh.layer_bytes([header]))
    common = {"preflight_model": json.loads(json.dumps(model)), "preflight_model_name": "DeepSeek-V3",
              "preflight_hardware": ONE, "preflight_threads": 16, "preflight_context_tokens": 4096,
              "preflight_tuning_file": str(tmp / "no-tuning.json")}
    tasks = [
        {"name": "Give the workers their hardware facts",
         "ansible.builtin.set_fact": {"llm_hardware": "{{ worker_facts }}", "cacheable": True},
         "when": "worker_facts is defined"},
        {"name": "Preflight", "ansible.builtin.include_role": {"name": "preflight"},
         "when": "worker_facts is not defined"},
    ]
    return run_checks(tmp, HOSTS, tasks, "Preflight on RPC heads", common)


def report(outcome):
    return (outcome[1] or {}).get("msg", "")


def test_too_big_for_the_head_alone_is_stopped(run):
    task, result = run["head-alone"]
    assert task.endswith(STOP)
    assert "DeepSeek-V3 needs 409.1 GB of RAM" in result["msg"] and "the host has 192.0 GB" in result["msg"]


@pytest.mark.parametrize("head", ["head-given", "head-facts"])
def test_too_big_for_the_head_but_fitting_head_and_workers_goes_on(run, head):
    assert run[head] == (None, None), report(run[head])


def test_a_placement_the_workers_cannot_hold_is_stopped_naming_the_layers_that_fit(run):
    """llama.cpp's default with --rpc (every layer on the workers) overfills them: the play stops before the
    service would fail to load, and says which llama_server_rpc_layers fits."""
    task, result = run["head-default-layers"]
    assert task.endswith(STOP)
    assert "does not fit its RPC split as configured (llama_server_rpc_layers -1" in result["msg"]
    assert "Set llama_server_rpc_layers: 40 on the head" in result["msg"]


def test_too_big_for_head_and_workers_is_stopped_naming_the_split(run):
    task, result = run["head-short"]
    assert task.endswith(STOP)
    assert result["msg"].startswith("DeepSeek-V3 does not fit its RPC split: 404.6 GB of weights")
    assert "worker 10.0.1.21 192.0 GB; 384.0 GB in all" in result["msg"]
    assert "preflight_rpc_workers" in result["msg"] and "preflight_ignore_fit" in result["msg"]


def test_a_worker_with_no_known_memory_names_the_setting(run):
    task, result = run["head-unknown-worker"]
    assert task.endswith(REPORT)
    assert "RPC worker 10.0.1.23:50052: its memory size is unknown (no inventory host has the address" \
        in result["msg"] and "preflight_rpc_worker_hardware" in result["msg"]


@pytest.mark.parametrize(("case", "message"), [
    ("bad-parallel", "preflight_parallel must be a whole number of at least 1 (slots of the service), got 0"),
    ("bad-public-worker", "preflight_rpc_workers"),
    ("bad-worker-memory", "preflight_rpc_worker_hardware: every entry must be a mapping with memory_total_bytes"),
    ("bad-worker-count", "preflight_rpc_worker_hardware must list one entry per worker of preflight_rpc_workers (2)"),
])
def test_bad_inputs_are_refused_naming_the_variable(run, case, message):
    assert_refused(run[case], HOSTS[case], message)
