"""The llama-server instances of a host (module_utils/server_instances.py): one, or one per NUMA node."""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import server_instances as si


def test_single_is_todays_one_unit_with_nothing_overridden():
    assert si.instances("single", "llm-1", 8080, 64) == [
        {"unit": "llama-server.service", "node": None, "port": 8080, "gateway_server": "llm-1"}]
    assert si.instances("single", "llm-1", "9000", nodes=4)[0]["port"] == 9000  # an INI inventory's string


@pytest.mark.parametrize("nodes", [2, 4])
def test_per_node_one_unit_port_and_node_binding_each(nodes):
    found = si.instances("per_node", "llm-1", 8080, 64, nodes)
    assert [i["unit"] for i in found] == [f"llama-server-node{n}.service" for n in range(nodes)]
    assert [i["port"] for i in found] == [8080 + n for n in range(nodes)]
    assert [i["numactl"] for i in found] == [[f"--cpunodebind={n}", f"--membind={n}"] for n in range(nodes)]
    assert [i["threads"] for i in found] == [64 // nodes] * nodes
    assert [i["gateway_server"] for i in found] == [f"llm-1-n{n}" for n in range(nodes)]
    assert [i["node"] for i in found] == list(range(nodes))


def test_per_node_on_a_one_node_host_is_one_instance_on_the_configured_port():
    assert si.instances("per_node", "ci", 8080, 2, 1) == [
        {"unit": "llama-server-node0.service", "node": 0, "port": 8080, "gateway_server": "ci-n0", "threads": 2,
         "numactl": ["--cpunodebind=0", "--membind=0"]}]


def test_per_node_needs_the_node_count_and_a_known_mode():
    with pytest.raises(si.InstancesError, match="its NUMA node count is not known"):
        si.instances("per_node", "llm-1", 8080, 64, None)
    with pytest.raises(si.InstancesError, match="llama_server_instances must be one of single, per_node, got 'node'"):
        si.instances("node", "llm-1", 8080)
    with pytest.raises(si.InstancesError, match="llama_server_port must be a whole number"):
        si.instances("single", "llm-1", "80a")


def test_numa_nodes_from_the_hardware_fact():
    assert si.numa_nodes(None) is None and si.numa_nodes({}) is None and si.numa_nodes({"cores": 4}) is None
    assert si.numa_nodes({"numa_nodes": None}) == 1  # read, and the kernel shows no NUMA nodes
    assert si.numa_nodes({"numa_nodes": 2}) == 2 and si.numa_nodes({"numa_nodes": "4"}) == 4
    with pytest.raises(si.InstancesError, match=r"llm_hardware.numa_nodes must be a whole number >= 1, got 0"):
        si.numa_nodes({"numa_nodes": 0})


def test_problems_name_the_variable():
    assert si.problems("single", 65535, 1, 8, ["10.0.0.1:50052"], "cuda") == []  # single is as before
    assert si.problems("per_node", 8080, 64, 2) == []
    assert si.problems("per_node", 65534, 64, 2) == []
    assert si.problems("per_node", 65535, 64, 2) == [
        "llama_server_port must be at most 65534 with llama_server_instances: per_node on 2 NUMA nodes (the instance "
        "on node N listens on llama_server_port + N, up to 65536), got 65535"]
    assert si.problems("per_node", 8080, 3, 4) == [
        "llama_server_threads must be at least the NUMA nodes (4) with llama_server_instances: per_node (each "
        "instance gets llama_server_threads / 4), got 3"]
    [rpc] = si.problems("per_node", 8080, 64, 2, ["10.0.0.1:50052"])
    assert rpc.startswith("llama_server_rpc_workers must be empty with llama_server_instances: per_node")
    [gpu] = si.problems("per_node", 8080, 64, 2, backend="cuda")
    assert "set llama_server_gpu_offload: off" in gpu
    assert si.problems("per_node", 8080, 64, 2, backend="cuda", gpu_offload="off") == []
    assert si.problems("per_node", 65535, 1, None) == []  # node count unknown: checked once it is read
    assert si.problems("pernode", 8080, 64, 2) == ["llama_server_instances must be one of single, per_node, "
                                                   "got 'pernode'"]


def test_retired_are_this_roles_units_the_layout_no_longer_wants():
    wanted = si.instances("per_node", "llm-1", 8080, 64, 2)
    found = ["llama-server-node3.service", "llama-server.service", "llama-server-node0.service",
             "llama-server-node1.service", "llama-server-node2.service", "llama-server-extra.service",
             "llama-server.service.previous", "ollama.service", "llama-server-node01.service"]
    assert si.retired(found, wanted, 8080) == [
        {"unit": "llama-server.service", "node": None, "port": 8080},
        {"unit": "llama-server-node2.service", "node": 2, "port": 8082},
        {"unit": "llama-server-node3.service", "node": 3, "port": 8083}]
    single = si.instances("single", "llm-1", 8080)
    assert si.retired(["llama-server.service", "llama-server-node0.service"], single, 8080) == [
        {"unit": "llama-server-node0.service", "node": 0, "port": 8080}]
    assert si.retired(["llama-server.service"], single, 8080) == []  # today's hosts: nothing to stop
    assert si.retired([], wanted, 8080) == []
