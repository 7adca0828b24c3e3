"""A server's fleet plan (module_utils/fleet_plan.py): what it runs and where a gateway reaches it, the one place
the llama_server role's units, the gateway's backends and its drain read them from."""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet_plan as fp
from ansible_collections.cpu_llm.infra.plugins.module_utils import server_instances as si


def test_a_single_server_is_one_instance_on_its_port_and_reached_at_its_address():
    plan = fp.server_plan("llm-1", "single", 8081, 64, {"numa_nodes": 2}, "10.0.0.5", None, "10.0.0.5", True)
    assert plan == {"host": "llm-1", "mode": "single", "address": "10.0.0.5", "maxconn": None, "listen": "10.0.0.5",
                    "api_key": True, "numa_nodes": 2, "threads": 64,
                    "instances": si.instances("single", "llm-1", 8081)}
    assert fp.listener_ports(plan) == [8081]
    assert fp.gateway_server_names("llm-1", plan) == ["llm-1"]


def test_a_per_node_server_is_one_instance_per_node_with_its_share_of_the_threads():
    plan = fp.server_plan("llm-1", "per_node", "8080", "64", {"numa_nodes": 4}, "", "2")
    assert plan["address"] == "llm-1" and plan["maxconn"] == 2 and plan["threads"] == 64
    assert plan["instances"] == si.instances("per_node", "llm-1", 8080, 64, 4)
    assert [i["threads"] for i in plan["instances"]] == [16] * 4
    assert fp.listener_ports(plan) == [8080, 8081, 8082, 8083]
    # The gateway names a node by its llm_gateway_server, the instances by their node.
    assert fp.gateway_server_names("edge", plan) == ["edge-n0", "edge-n1", "edge-n2", "edge-n3"]


def test_without_a_plan_a_node_is_drained_by_its_one_name():
    assert fp.gateway_server_names("llm-1", {}) == ["llm-1"]
    assert fp.gateway_server_names("llm-1", None) == ["llm-1"]


def test_the_plan_is_plain_data_whatever_the_inventory_types():
    """INI inventories give strings: the plan holds numbers, so the gateway and the port check compare ports."""
    plan = fp.server_plan("llm-1", None, "9000", "8", None, None, "")
    assert plan["mode"] == "single" and plan["maxconn"] is None and plan["numa_nodes"] is None
    assert plan["listen"] == "127.0.0.1" and plan["api_key"] is False
    assert fp.listener_ports(plan) == [9000] and isinstance(plan["threads"], int)


@pytest.mark.parametrize(("args", "message"), [
    (("per_node", 8080, 8, None), "llm-1: llama_server_instances: per_node on llm-1: its NUMA node count is not known"),
    (("numa", 8080, 8, {"numa_nodes": 2}), "llm-1: llama_server_instances must be one of single, per_node"),
    (("single", "http", 8, None), "llm-1: llama_server_port must be a whole number"),
    (("per_node", 8080, 8, {"numa_nodes": 0}), "llm-1: llm_hardware.numa_nodes must be a whole number >= 1"),
])
def test_a_plan_that_cannot_be_made_names_the_host_and_the_variable(args, message):
    with pytest.raises(fp.PlanError, match=message):
        fp.server_plan("llm-1", *args)
