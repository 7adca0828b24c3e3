"""llama-server's command line has one home: what systemd runs is exactly the argv the benchmark reads."""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import server_command, server_instances, systemd_syntax

INPUTS = {
    "binary": "/opt/llama.cpp/bin/llama-server", "model_path": "/srv/models/m/Qwen3-0.6B-Q8_0.gguf",
    "host": "127.0.0.1", "port": 8080, "threads": 4, "ctx_size": 2048, "parallel": 2, "alias": "",
    "metrics": False, "mlock": False, "api_key": False, "api_key_file": "/etc/llama-server/api-key",
    "tls_cert": "", "tls_key": "", "numactl_args": ["--interleave=all"], "tuning": {}, "environment": {},
    "offload": {}, "rpc_workers": [], "rpc_layers": -1, "extra_args": [],
}


def build(instance=None, **changes):
    return server_command.command({**INPUTS, **changes}, instance)


@pytest.mark.parametrize("changes", [
    {},
    {"model_path": "/srv/models/with space/100% sure $HOME \\ \"q\".gguf"},
    {"alias": "my model; rm -rf /", "extra_args": ["--chat-template-kwargs", '{"enable_thinking": false}']},
    {"numactl_args": [], "metrics": True, "api_key": True, "tls_cert": "/etc/ssl/a b.pem", "tls_key": "/k.pem"},
    {"rpc_workers": ["10.0.0.11:50052", "[fd00::2]:50052"], "rpc_layers": 20},
    {"offload": {"args": ["--n-gpu-layers", "99", "--n-cpu-moe", "30"]}},
])
def test_systemd_runs_exactly_the_argv(changes):
    # The unit writes exec_start; systemd splits it back: the words must be the argv, whatever the values hold.
    result = build(**changes)
    unit = f"[Service]\nExecStart={result['exec_start']}\nRestart=on-failure\n"
    assert systemd_syntax.split_command_line(systemd_syntax.exec_start(unit)) == result["argv"]
    assert [word for line in result["lines"] for word in line] == result["argv"]


def test_numactl_wraps_llama_server_and_the_context_holds_every_slot():
    result = build()
    assert result["argv"][:3] == ["/usr/bin/numactl", "--interleave=all", INPUTS["binary"]]
    assert result["options"]["ctx-size"] == "4096" and result["options"]["parallel"] == "2"
    assert result["numactl"] == ["--interleave=all"]
    assert build(numactl_args=[])["argv"][0] == INPUTS["binary"]


def test_options_are_what_the_benchmark_reads():
    result = build(metrics=True, extra_args=["--no-webui", "--temp=0.7", "--top-k", "40"])
    options = result["options"]
    assert options["threads"] == "4" and options["model"] == INPUTS["model_path"]
    assert options["metrics"] is True and options["no-webui"] is True
    assert options["temp"] == "0.7" and options["top-k"] == "40"
    assert "interleave=all" not in options  # numactl's own flag is not llama-server's


def test_measured_tuning_replaces_the_inventory_threads_and_policy():
    tuning = {"threads": 3, "numactl": ["--cpunodebind=0", "--membind=0"], "numa_flag": "distribute",
              "batch_size": 1024, "ubatch_size": 256, "load_mode": "none",
              "environment": {"OMP_WAIT_POLICY": "active"}, "comments": {"threads": "3 beat 4 by 6 %"}}
    result = build(tuning=tuning, mlock=True)
    assert result["numactl"] == ["--cpunodebind=0", "--membind=0"]
    assert result["options"]["threads"] == "3" and result["options"]["numa"] == "distribute"
    assert result["options"]["batch-size"] == "1024" and result["options"]["ubatch-size"] == "256"
    assert result["options"]["load-mode"] == "mlock"  # measured 'none' (read into RAM), locked on request
    assert result["environment"] == [["OMP_WAIT_POLICY", "active"]]
    assert "#   threads: 3 beat 4 by 6 %" in result["service_lines"]
    # An empty measured policy means "no numactl", not "the inventory's".
    assert build(tuning={"numactl": []})["argv"][0] == INPUTS["binary"]


def test_a_per_node_instance_uses_its_own_port_threads_and_binding_not_the_measured_ones():
    instances = server_instances.instances("per_node", "fleet-a", 8080, 8, 2)
    node1 = next(i for i in instances if i.get("node") == 1)
    result = build(node1, tuning={"threads": 7, "numactl": ["--interleave=all"], "numa_flag": "distribute"})
    assert result["unit"] == node1["unit"] and result["numactl"] == node1["numactl"]
    assert result["options"]["port"] == str(node1["port"]) and result["options"]["threads"] == str(node1["threads"])
    assert "numa" not in result["options"]
    assert result["description"].endswith("NUMA node 1")
    assert any("node 1's memory only" in line for line in result["service_lines"])


def test_rpc_layers_render_only_when_set_and_the_head_keeps_restarting():
    assert "n-gpu-layers" not in build(rpc_workers=["10.0.0.11:50052"])["options"]
    result = build(rpc_workers=["10.0.0.11:50052", "10.0.0.12:50052"], rpc_layers=0)
    assert result["options"]["rpc"] == "10.0.0.11:50052,10.0.0.12:50052" and result["options"]["n-gpu-layers"] == "0"
    assert "StartLimitIntervalSec=0" in result["unit_lines"]
    assert build()["unit_lines"] == []


def test_the_api_key_is_a_file_never_a_word_on_the_command_line():
    result = build(api_key=True)
    assert result["options"]["api-key-file"] == INPUTS["api_key_file"]
    assert "--api-key" not in result["argv"]
    assert "api-key-file" not in build()["options"]


def test_extra_args_come_last_so_the_role_owns_what_it_renders():
    result = build(extra_args=["--no-webui"])
    assert result["argv"][-1] == "--no-webui"


def test_commands_are_keyed_by_unit_and_refuse_a_non_mapping():
    instances = server_instances.instances("per_node", "fleet-a", 8080, 8, 2)
    by_unit = server_command.commands(instances, INPUTS)
    assert set(by_unit) == {i["unit"] for i in instances}
    with pytest.raises(ValueError, match="must be a mapping"):
        server_command.commands(instances, ["not", "a", "mapping"])
