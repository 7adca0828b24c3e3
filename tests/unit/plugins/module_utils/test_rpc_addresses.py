"""Where an RPC worker may listen, who may reach it and what the head connects to: each refusal names the variable."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import (
    llm_allowed_networks,
    llm_listen_address_check,
    llm_rpc_endpoints_check,
)
from ansible_collections.cpu_llm.infra.plugins.module_utils import rpc_addresses as ra

# A worker's addresses as Ansible reads them (all_ipv4_addresses/all_ipv6_addresses: no loopback).
HOST = ["10.0.0.11", "203.0.113.7", "192.168.122.5", "fd00:1::11", "fe80::5054:ff:fe12:3456%eth0"]


@pytest.mark.parametrize(("value", "private"), [
    ("10.0.0.1", True), ("10.255.255.255", True), ("172.16.0.1", True), ("172.31.255.254", True),
    ("192.168.1.1", True), ("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("fd12:3456::1", True),
    ("fc00::1", True), ("172.32.0.1", False), ("172.15.255.255", False), ("8.8.8.8", False),
    ("203.0.113.7", False), ("169.254.1.1", False), ("100.64.0.1", False), ("0.0.0.0", False),  # noqa: S104
    ("::", False), ("fe80::1", False), ("2001:db8::1", False), ("::ffff:10.0.0.1", False),
    ("10.0.0.0/24", True), ("10.0.0.0/7", False), ("0.0.0.0/0", False),
])
def test_is_private_means_rfc1918_rfc4193_or_loopback(value, private):
    assert ra.is_private(value) is private


def test_on_host_compares_addresses_and_counts_loopback_as_present():
    assert ra.on_host("10.0.0.11", HOST) and ra.on_host("fd00:1:0::11", HOST)  # another spelling of the same
    assert ra.on_host("fe80::5054:ff:fe12:3456", HOST)  # the zone index is not part of the address
    assert ra.on_host("127.0.0.1", []) and ra.on_host("::1", None)
    assert not ra.on_host("10.0.0.12", HOST)


@pytest.mark.parametrize("value", ["10.0.0.11", "192.168.122.5", "127.0.0.1"])
def test_good_listen_addresses(value):
    assert ra.listen_address("v", value, HOST) == []


@pytest.mark.parametrize(("value", "expected"), [
    ("", "v is required"),
    (None, "v is required"),
    ("0.0.0.0", "v is 0.0.0.0, which listens on every address of the host"),  # noqa: S104 (refused)
    ("::", "v is ::, which listens on every address"),
    ("203.0.113.7", "v is 203.0.113.7, not a private address"),
    ("10.0.0.12", "v is 10.0.0.12, which is not an address of this host (its addresses: 10.0.0.11, 203.0.113.7"),
    ("fd00:1::11", "v is fd00:1::11, an IPv6 address: ggml-rpc-server at the pinned llama.cpp speaks IPv4 only"),
    ("worker-1.lan", "v must be an IP address of this host"),
    ("010.0.0.11", "v must be an IP address"),  # inet_addr would read 010 as octal 8
    ("10.0.0.11 ", "v must be an IP address"), ("-10.0.0.11", "v must be an IP address"),
    ("10.0.0.11\n", "v must be an IP address"), ("10.0.0.11/24", "v must be an IP address"),
])
def test_bad_listen_addresses(value, expected):
    problems = ra.listen_address("v", value, HOST)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_ipv6_listen_address_when_the_transport_allows_it():
    assert ra.listen_address("v", "fd00:1::11", HOST, ipv4_only=False) == []
    assert "not an address of this host" in ra.listen_address("v", "fd00:1::12", HOST, ipv4_only=False)[0]


def test_the_filter_takes_the_facts_as_ansible_gives_them():
    assert llm_listen_address_check("10.0.0.11", "llm_rpc_worker_address", HOST) == []
    assert llm_listen_address_check("10.0.0.11", "llm_rpc_worker_address", None)[0].endswith(
        "(its addresses: none read); ggml-rpc-server could not listen on it")


@pytest.mark.parametrize("values", [["10.0.0.10"], ["10.0.0.10", "10.0.0.0/24", "fd00:1::10"], ["127.0.0.1"],
                                    ("192.168.0.0/16",)])
def test_good_sources(values):
    assert ra.allowed_sources("s", values) == []


@pytest.mark.parametrize(("values", "expected"), [
    ([], "s must list the address(es) the head's llama-server connects from"),
    (None, "s must list"), ("10.0.0.10", "s must list"),
    (["10.0.0.10", "8.8.8.8"], "s[1] is 8.8.8.8, not a private address or network"),
    (["0.0.0.0/0"], "s[0] is 0.0.0.0/0, not a private"),
    (["::/0"], "s[0] is ::/0, not a private"),
    (["10.0.0.5/24"], "s[0] has host bits set; did you mean 10.0.0.0/24?"),
    (["head-1"], "s[0] must be an IP address or network"),
    (["10.0.0.10 10.0.0.11"], "s[0] must be an IP address or network"),
    (["-10.0.0.10"], "s[0] must be an IP address or network"),
    ([""], "s[0] must be an IP address or network"), ([5], "s[0] must be an IP address or network"),
])
def test_bad_sources(values, expected):
    problems = ra.allowed_sources("s", values)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_sources_split_by_family_and_merged():
    assert ra.source_networks(["10.0.0.10", "fd00::10/128", "10.0.0.0/24", "10.0.1.7", "fd00::/64"]) == {
        "ipv4": ["10.0.0.0/24", "10.0.1.7"], "ipv6": ["fd00::/64"]}
    assert ra.source_networks(["10.0.0.10"]) == {"ipv4": ["10.0.0.10"], "ipv6": []}
    assert llm_allowed_networks(["127.0.0.1"]) == {"ipv4": ["127.0.0.1"], "ipv6": []}
    with pytest.raises(AnsibleFilterError, match="not a private"):
        llm_allowed_networks(["8.8.8.8"])


@pytest.mark.parametrize("values", [[], ["10.0.0.11:50052"], ["10.0.0.11:50052", "10.0.0.12:50052"],
                                    ["worker-1:50052", "worker-2.lan:6000"], ["127.0.0.1:1"], ("192.168.1.2:65535",)])
def test_good_endpoints(values):
    assert ra.rpc_endpoints("w", values) == []


@pytest.mark.parametrize(("values", "expected"), [
    ("10.0.0.11:50052", "w must be a list of 'host:port' strings"),
    ([5], "w[0] must be a 'host:port' string"),
    (["10.0.0.11"], "w[0] must be 'host:port' with a port 1-65535"),
    (["10.0.0.11:0"], "w[0] must be 'host:port' with a port 1-65535"),
    (["10.0.0.11:65536"], "w[0] must be 'host:port'"), (["10.0.0.11:"], "w[0] must be 'host:port'"),
    ([":50052"], "w[0] must be 'host:port'"), (["10.0.0.11:5005x"], "w[0] must be 'host:port'"),
    (["[fd00::11]:50052"], "w[0] is '[fd00::11]:50052', an IPv6 endpoint: ggml-rpc-server at the pinned llama.cpp"),
    (["fd00::11:50052"], "w[0] is 'fd00::11:50052', an IPv6 endpoint"),
    (["8.8.8.8:50052"], "w[0] is '8.8.8.8:50052', not a private address"),
    (["0.0.0.0:50052"], "w[0] is '0.0.0.0:50052', not a private address"),
    (["10.1:50052"], "w[0] must be 'host:port' with an IPv4 address or a host name"),
    (["010.0.0.11:50052"], "w[0] must be 'host:port' with an IPv4 address or a host name"),
    (["-worker:50052"], "w[0] must be 'host:port' with an IPv4 address or a host name"),
    (["wor ker:50052"], "w[0] must be 'host:port' with an IPv4 address or a host name"),
    (["a,b:50052"], "w[0] must be 'host:port' with an IPv4 address or a host name"),
    (["worker_1:50052"], "w[0] must be 'host:port' with an IPv4 address or a host name"),
    (["10.0.0.11:50052\n"], "w[0] must be 'host:port'"),
    (["10.0.0.11:50052", "10.0.0.11:50052"], "w[1] '10.0.0.11:50052' is listed twice"),
])
def test_bad_endpoints(values, expected):
    problems = llm_rpc_endpoints_check(values, "w")
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize(("address", "head", "same", "refused"), [
    ("127.0.0.1", "llm-1", False, True),
    ("127.0.0.2", "llm-1", False, True),
    ("::1", "llm-1", False, True),
    ("127.0.0.1", "llm-1", True, False),  # the head is this machine: loopback reaches it
    ("10.0.0.7", "llm-1", False, False),
    ("127.0.0.1", "", False, False),  # no head: the llm role's check names llm_rpc_head
])
def test_a_loopback_worker_must_serve_a_head_on_its_own_machine(address, head, same, refused):
    found = ra.loopback_head(address, "worker-1", head, same)
    assert bool(found) is refused
    if refused:
        assert found[0].startswith(f"llm_rpc_worker_address {address} on worker-1 is loopback")
        assert "llm_rpc_head names llm-1" in found[0]
