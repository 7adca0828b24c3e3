"""module_utils/host_ports.py: which of one host's listeners collide."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import llm_port_conflicts
from ansible_collections.cpu_llm.infra.plugins.module_utils.host_ports import conflicts


def listener(name, address, *ports, what=""):
    return {"name": name, "address": address, "ports": list(ports), "what": what}


SERVER = listener("llama_server_port", "127.0.0.1", 8080)


@pytest.mark.parametrize(("other", "collides"), [
    (listener("llm_gateway_port", "0.0.0.0", 8080), True),  # noqa: S104 (a wildcard takes the port everywhere)
    (listener("llm_gateway_port", "::", 8080), True),
    (listener("llm_gateway_port", "", 8080), True),
    (listener("llm_gateway_port", "127.0.0.1", 8080), True),
    (listener("llm_gateway_port", "localhost", 8080), True),
    (listener("llm_gateway_port", "gw.example", 8080), True),  # a name may be any address of the host
    (listener("llm_gateway_port", "10.0.0.5", 8080), False),  # another address: both can bind
    (listener("llm_gateway_port", "0.0.0.0", 8081), False),  # noqa: S104
])
def test_a_shared_port_collides_only_where_the_addresses_overlap(other, collides):
    assert bool(conflicts("llm-1", [SERVER, other])) is collides


def test_the_message_names_both_variables_the_port_and_the_host():
    [message] = conflicts("llm-1", [SERVER, listener("llm_gateway_port", "0.0.0.0", 8080)])  # noqa: S104
    assert message.startswith("llama_server_port (8080 on 127.0.0.1) and llm_gateway_port (8080 on 0.0.0.0) would "
                              "both listen on port 8080 of llm-1")


def test_a_per_node_range_collides_on_any_of_its_ports():
    per_node = listener("llama_server_port", "0.0.0.0", 8080, 8081, 8082, 8083, what="one per NUMA node")  # noqa: S104
    [message] = conflicts("llm-1", [per_node, listener("gguf_model_fleet_port", "", 8083)])
    assert "llama_server_port (8080-8083 on 0.0.0.0, one per NUMA node)" in message and "port 8083 " in message
    assert not conflicts("llm-1", [per_node, listener("gguf_model_fleet_port", "", 8084)])


def test_every_colliding_pair_is_reported_and_empty_ports_are_ignored():
    three = [listener("a", "", 9000), listener("b", "", 9000), listener("c", "", 9000), listener("d", "", )]
    assert len(conflicts("h", three)) == 3


def test_the_filter_refuses_what_is_not_a_list_of_listeners():
    with pytest.raises(AnsibleFilterError, match="expected a list of listeners"):
        llm_port_conflicts("8080", "h")
    with pytest.raises(AnsibleFilterError, match="llm_port_conflicts"):
        llm_port_conflicts([{"name": "a", "ports": ["http"]}], "h")


def test_random_hosts_collide_exactly_where_a_port_and_an_address_are_shared():
    """Property, 2000 seeded random hosts of the project's listeners (the server's per-node range, the gateway and
    its stats port, an RPC worker, the model source) on a few ports and addresses: a pair is reported if and only
    if it shares a port and their addresses can meet (equal, or either one every address or a name)."""
    import random
    rng = random.Random(20261207)  # noqa: S311 (a seeded test sample, no secret)
    names = ["llama_server_port", "llm_gateway_port", "llm_gateway_stats_port", "llm_rpc_worker_port",
             "gguf_model_fleet_port"]
    addresses = ["127.0.0.1", "10.0.0.5", "0.0.0.0", "::", "", "localhost", "node-1.lan", "10.0.0.6"]  # noqa: S104
    every = {"0.0.0.0", "::", "", "node-1.lan"}  # noqa: S104 (a name may be any of the host's addresses)
    for _ in range(2000):
        listeners = []
        for name in rng.sample(names, rng.randint(2, len(names))):
            first = rng.choice([8080, 8081, 8000, 50052])
            count = rng.choice([1, 1, 2, 4]) if name == "llama_server_port" else 1
            ports = list(range(first, first + count))
            listeners.append({"name": name, "address": rng.choice(addresses), "ports": ports})
        expected = set()
        for i, a in enumerate(listeners):
            for b in listeners[i + 1:]:
                same = {a["address"], b["address"]} <= {"127.0.0.1", "localhost"} or a["address"] == b["address"]
                if set(a["ports"]) & set(b["ports"]) and (same or a["address"] in every or b["address"] in every):
                    expected.add((a["name"], b["name"]))
        found = conflicts("h1", listeners)
        assert len(found) == len(expected), (listeners, found)
        for first, second in expected:
            assert any(m.startswith(f"{first} (") and f" and {second} (" in m for m in found), (listeners, found)
