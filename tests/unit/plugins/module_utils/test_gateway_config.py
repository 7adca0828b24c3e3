"""The gateway's backends from the servers' fleet plans and its input rules (module_utils/gateway_config.py)."""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet_plan
from ansible_collections.cpu_llm.infra.plugins.module_utils import gateway_config as gc

KEY = "sk-" + "a1" * 10


def plans(servers):
    """{host: (mode, port, numa_nodes, address, maxconn)} -> (hosts, plans) as site.yml's first play makes them."""
    return list(servers), [fleet_plan.server_plan(h, mode, port, 8, {"numa_nodes": nodes}, address, maxconn)
                           for h, (mode, port, nodes, address, maxconn) in servers.items()]


def test_default_backends_follow_the_plans():
    hosts, made = plans({
        "llm-1": ("single", 8080, 1, "10.0.0.1", None),
        "llm-2": ("single", 8081, 1, "192.168.5.2", None),
        "llm-3.example.net": ("single", 8080, 1, None, None),
        "llm-4": ("single", "9000", 1, "fd00::4", "2"),
    })
    assert gc.default_backends(hosts, made) == [
        {"name": "llm-1", "address": "10.0.0.1", "port": 8080},
        {"name": "llm-2", "address": "192.168.5.2", "port": 8081},
        {"name": "llm-3.example.net", "address": "llm-3.example.net", "port": 8080},
        {"name": "llm-4", "address": "fd00::4", "port": 9000, "maxconn": 2},
    ]
    assert gc.default_backends([], []) == [] and gc.default_backends(None, None) == []
    assert gc.backends_problems(gc.default_backends(hosts, made)) == []


def test_a_server_without_a_plan_is_named_unless_this_play_refused_it():
    hosts, made = plans({"llm-1": ("single", 8080, 1, "10.0.0.1", None)})
    with pytest.raises(ValueError, match=r"llm-2 has no llm_server_plan: site\.yml's first play sets it"):
        gc.default_backends([*hosts, "llm-2"], [*made, {}])
    # Refused in this play: the run stops at the input play's last task, the other backends are still checked.
    assert gc.default_backends([*hosts, "llm-2"], [*made, {}], refused=["llm-2"]) == [
        {"name": "llm-1", "address": "10.0.0.1", "port": 8080}]


GOOD = [{"name": "llm-1", "address": "10.0.0.1", "port": 8080},
        {"name": "llm-1-8081", "address": "10.0.0.1", "port": 8081, "maxconn": 2},
        {"name": "llm-2", "address": "llm-2.example.net", "port": "8080"},
        {"name": "llm-3", "address": "fd00::3", "port": 8080}]


@pytest.mark.parametrize(("backends", "message"), [
    ("llm-1:8080", "llm_gateway_backends must be a list of {name, address, port}"),
    (["llm-1"], "llm_gateway_backends[0] must be a mapping {name, address, port}, got str"),
    ([{"name": "llm 1", "address": "10.0.0.1", "port": 8080}], "llm_gateway_backends[0].name must be letters, digits"),
    ([{"name": "-llm", "address": "10.0.0.1", "port": 8080}], "llm_gateway_backends[0].name must be letters"),
    ([{"name": "llm/1", "address": "10.0.0.1", "port": 8080}], "one word for HAProxy's runtime API"),
    ([GOOD[0], {**GOOD[1], "name": "llm-1"}], "llm_gateway_backends[1].name 'llm-1' is used twice"),
    ([{**GOOD[0], "port": 0}], "llm_gateway_backends[0] (llm-1).port must be 1-65535, got 0"),
    ([{**GOOD[0], "port": 70000}], "port must be 1-65535, got 70000"),
    ([{**GOOD[0], "port": "http"}], "port must be 1-65535, got 'http'"),
    ([{**GOOD[0], "port": True}], "port must be 1-65535, got True"),
    ([{"name": "llm-1", "port": 8080}],
     "llm_gateway_backends[0] (llm-1).address must be an IP address or a host name, got None"),
    ([{**GOOD[0], "address": "0.0.0.0"}], "address must be the address of one node, got '0.0.0.0'"),  # noqa: S104
    ([{**GOOD[0], "address": "[fd00::3]"}], "must be an IPv6 address without brackets"),
    ([{**GOOD[0], "address": "fe80::1%eth0"}], "without a %zone"),
    ([{**GOOD[0], "address": "10.0.0.1:8080"}], "address must be an IP address or a host name"),
    ([{**GOOD[0], "address": "-llm.example"}], "address must be an IP address or a host name"),
    ([{**GOOD[0], "address": "llm 1"}], "address must be an IP address or a host name"),
    ([{**GOOD[0], "address": "10.0.0.999"}], "address must be an IP address or a host name"),
    ([{**GOOD[0], "address": "llm\n1"}], "address must be an IP address or a host name"),
    ([GOOD[0], {**GOOD[0], "name": "llm-9"}], "10.0.0.1:8080 is listed twice"),
    ([{**GOOD[1], "maxconn": 0}], "maxconn must be 1-100000"),
    ([{**GOOD[0], "weight": 2}], "unknown key(s) weight; known: name, address, port, maxconn"),
])
def test_bad_backends_are_refused_with_the_entry_and_the_expected_form(backends, message):
    problems = gc.backends_problems(backends)
    assert any(message in p for p in problems), problems


def test_good_backends_pass():
    assert gc.backends_problems(GOOD) == [] and gc.backends_problems([]) == []


@pytest.mark.parametrize(("keys", "message"), [
    ("sk-abc", "llm_gateway_api_keys must be a list of {name, key}"),
    ([KEY], "llm_gateway_api_keys[0] must be a mapping {name, key} (the value is not shown)"),
    ([{"name": "alice", "key": "short"}], "llm_gateway_api_keys[0] (alice).key must be 16 to 512 characters long"),
    ([{"name": "alice", "key": "with a space" + "x" * 10}], "(alice).key must be printable ASCII without spaces"),
    ([{"name": "alice", "key": "tab\t" + "x" * 20}], "(alice).key must be printable ASCII"),
    ([{"name": "alice", "key": ""}], "(alice).key must be set (16 to 512 characters)"),
    ([{"name": "alice"}], "(alice).key must be set"),
    ([{"name": "alice", "key": 1234567890123456789}], "(alice).key must be a string"),
    ([{"name": "al ice", "key": KEY}], "llm_gateway_api_keys[0].name must be letters, digits and . _ @ -"),
    ([{"name": "alice", "key": KEY}, {"name": "alice", "key": KEY + "b"}], "[1].name 'alice' is used twice"),
    ([{"name": "alice", "key": KEY}, {"name": "bob", "key": KEY}],
     "(bob).key is the same as llm_gateway_api_keys[0] (alice)'s"),
    ([{"name": "alice", "key": KEY, "scope": "all"}], "unknown key(s) scope; known: name, key"),
    ([{"name": "alice", "key": "#" + KEY}], "(alice).key must not start with '#'"),
])
def test_bad_api_keys_are_refused_without_showing_a_key(keys, message):
    problems = gc.api_keys_problems(keys)
    assert any(message in p for p in problems), problems
    text = " ".join(problems)
    for entry in keys if isinstance(keys, list) else []:
        secret = entry.get("key") if isinstance(entry, dict) else entry
        if isinstance(secret, str) and len(secret) > 5:
            assert secret not in text


def test_good_api_keys_pass():
    assert gc.api_keys_problems([{"name": "alice", "key": KEY}, {"name": "ci@build-1", "key": "b" * 512}]) == []


@pytest.mark.parametrize(("path", "ok"), [
    ("/etc/haproxy/certs/gateway.pem", True), ("/etc/ssl/private/llm+gw_2024.pem", True), ("", True),
    ("certs/gateway.pem", False), ("/etc/haproxy/my cert.pem", False), ("/etc/haproxy/#x.pem", False),
    ('/etc/haproxy/"x".pem', False), ("/etc/haproxy/$CERT.pem", False), ("/etc/haproxy/../x.pem", False),
    ("/etc", False), ("-", False), (" ", False), ("/etc/x\n.pem", False)])
def test_paths_written_into_haproxy_cfg(path, ok):
    assert (gc.config_path_problems(path, "llm_gateway_tls_cert_path", required=False) == []) is ok


@pytest.mark.parametrize(("address", "ok"), [
    ("0.0.0.0", True), ("::", True), ("127.0.0.1", True), ("fd00::1", True), ("10.1.2.3", True),  # noqa: S104
    ("localhost", False), ("[::]", False), ("fe80::1%eth0", False), ("-0.0.0.0", False), ("0.0 .0.0", False),
    ("", False), (None, False)])
def test_bind_addresses(address, ok):
    assert (gc.bind_address_problems(address, "llm_gateway_bind_address") == []) is ok


@pytest.mark.parametrize("nodes", [2, 4])
def test_a_per_node_host_is_one_backend_per_numa_node(nodes):
    hosts, made = plans({
        "llm-1": ("per_node", 8080, nodes, "10.0.0.1", 4),
        "llm-2": ("per_node", "9000", nodes, "10.0.0.2", None),
        "llm-3": ("single", 8080, nodes, "10.0.0.3", None),  # single: one, as before
    })
    backends = gc.default_backends(hosts, made)
    assert backends == (
        [{"name": f"llm-1-n{n}", "address": "10.0.0.1", "port": 8080 + n, "maxconn": 4} for n in range(nodes)]
        + [{"name": f"llm-2-n{n}", "address": "10.0.0.2", "port": 9000 + n} for n in range(nodes)]
        + [{"name": "llm-3", "address": "10.0.0.3", "port": 8080}])
    assert gc.backends_problems(backends) == []


def server(host, listen="127.0.0.1", key=False):
    return fleet_plan.server_plan(host, "single", 8080, 8, None, host, None, listen, key)


ANY = "0.0.0.0"  # noqa: S104 (the gateway binds every address)


@pytest.mark.parametrize(("plans", "bind", "client_keys", "refused"), [
    ([server("gw")], ANY, False, True),  # its own keyless server, published to every address
    ([server("gw")], "10.0.0.9", False, True),
    ([server("gw", "::1")], ANY, False, True),
    ([server("gw")], ANY, True, False),  # clients need a key at the edge
    ([server("gw")], "127.0.0.1", False, False),  # the gateway is loopback-only too
    ([server("gw", key=True)], ANY, False, False),  # the server checks the client's key itself
    ([server("llm-1")], ANY, False, False),  # another host's server: not this gateway's loopback
    ([server("gw", "10.0.0.9", True)], ANY, False, False),
    ([{}], ANY, False, False),  # no plan (refused in this play): the backends check says so
])
def test_a_gateway_never_publishes_its_own_keyless_server(plans, bind, client_keys, refused):
    found = gc.exposure_problems(plans, "gw", bind, client_keys)
    assert bool(found) is refused
    if refused:
        assert found[0].startswith(f"llm_gateway_api_keys must be set when llm_gateway_bind_address is {bind}")
        assert "gw's own llama-server has no API key" in found[0]


def test_a_client_key_must_not_be_the_nodes_key_and_is_never_shown():
    keys = [{"name": "alice", "key": KEY}, {"name": "bob", "key": KEY + "b"}]
    found = gc.client_key_problems(keys, KEY)
    assert found == ["llm_gateway_api_keys[0] (alice) is the key the nodes accept (llm_gateway_backend_api_key): a "
                     "client holding it could call a node directly, past the gateway; give clients keys of their own"]
    assert gc.client_key_problems(keys, KEY + "c") == [] and gc.client_key_problems(keys, "") == []
    assert KEY not in " ".join(found)
