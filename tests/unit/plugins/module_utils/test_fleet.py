"""module_utils/fleet.py: who fetches the model from where, and what a fleet source serves to whom."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.filter.gguf_model_fleet import gguf_model_fleet
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import llm_host_check
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet

SHA1, SHA2 = "1" * 64, "2" * 64
FILES = [{"name": "m-Q6_K-00001-of-00002.gguf", "path": "Q6_K/m-Q6_K-00001-of-00002.gguf", "sha256": SHA1,
          "size": 50_000_000_000},
         {"name": "m-Q6_K-00002-of-00002.gguf", "path": "Q6_K/m-Q6_K-00002-of-00002.gguf", "sha256": SHA2,
          "size": "21000000000"}]  # set_fact may hand over a number as a string


def host(name, source="llm-1", **overrides):
    """A declaration as main.yml sets it; llm-N has the address 10.0.0.N."""
    number = name.rsplit("-", 1)[1]
    return {"source": source, "repo": "org/m-GGUF", "revision": "main", "dir": "/srv/llm/models/org--m-GGUF/main",
            "files": FILES, "address": f"10.0.0.{number}", "port": 8089, "connections": 8,
            "addresses": [f"10.0.0.{number}", "172.17.0.1", f"fd00::{number}", "fe80::1%eth0"], "needs": True,
            **overrides}


def fleet_of(*names, **per_host):
    return {name: host(name, **per_host.get(name.replace("-", "_"), {})) for name in names}


def test_the_source_downloads_from_the_hub_and_serves_the_others():
    declarations = fleet_of("llm-1", "llm-2", "llm-3", llm_1={"needs": False})
    source = fleet.plan(declarations, "llm-1")
    assert (source["fetch"], source["source"], source["active"], source["serving"]) == ("hub", "", True, True)
    seed = source["seed"]
    assert seed["followers"] == ["llm-2", "llm-3"]
    # Each follower's addresses and the source's own, IPv4 first, once each, zones dropped.
    assert seed["allow"] == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "172.17.0.1", "fd00::1", "fd00::2", "fd00::3",
                             "fe80::1"]
    assert seed["bind"] == seed["listening"] == "10.0.0.1" and seed["port"] == 8089
    manifest = seed["manifest"]
    assert manifest["root"] == "/srv/llm/models/org--m-GGUF/main" and manifest["repo"] == "org/m-GGUF"
    assert [f["size"] for f in manifest["files"]] == [50_000_000_000, 21_000_000_000]
    assert manifest["threads"] == 8 + 8 + 2 and manifest["idle_exit_seconds"] == fleet.IDLE_EXIT_SECONDS


def test_a_follower_fetches_from_the_source_with_its_address_and_port():
    declarations = fleet_of("llm-1", "llm-2", llm_1={"port": 9000})
    follower = fleet.plan(declarations, "llm-2")
    assert (follower["fetch"], follower["source"], follower["host"], follower["port"]) == ("source", "llm-1",
                                                                                         "10.0.0.1", 9000)
    assert follower["base_url"] == "http://10.0.0.1:9000/org/m-GGUF/resolve/main"
    assert follower["seed"] is None and follower["note"] == ""


def test_the_sources_address_counts_and_an_ipv6_one_goes_in_brackets():
    declarations = fleet_of("llm-1", "llm-2", llm_1={"address": "fd00::1", "addresses": ["fd00::1"]},
                            llm_2={"address": "ignored.example"})
    assert fleet.plan(declarations, "llm-2")["base_url"] == "http://[fd00::1]:8089/org/m-GGUF/resolve/main"
    assert fleet.plan(declarations, "llm-1")["seed"]["bind"] == "fd00::1"


@pytest.mark.parametrize("address", ["llm-1.example", "203.0.113.7"])  # a name; an address NAT puts in front
def test_the_source_listens_on_all_addresses_when_the_followers_address_is_not_one_of_its_own(address):
    declarations = fleet_of("llm-1", "llm-2", llm_1={"address": address})
    seed = fleet.plan(declarations, "llm-1")["seed"]
    assert (seed["bind"], seed["listening"]) == ("", "127.0.0.1")
    assert fleet.plan(declarations, "llm-2")["host"] == address


def test_nothing_is_served_when_every_follower_has_its_files():
    declarations = fleet_of("llm-1", "llm-2", "llm-3", llm_2={"needs": False}, llm_3={"needs": False})
    for name in declarations:
        part = fleet.plan(declarations, name)
        assert part["active"] and not part["serving"] and part["seed"] is None
    assert fleet.plan(declarations, "llm-3")["fetch"] == "source"  # its files are verified: nothing is fetched


def test_only_the_followers_that_lack_files_are_admitted():
    declarations = fleet_of("llm-1", "llm-2", "llm-3", llm_2={"needs": False})
    seed = fleet.plan(declarations, "llm-1")["seed"]
    assert seed["followers"] == ["llm-3"] and "10.0.0.2" not in seed["allow"] and "10.0.0.3" in seed["allow"]
    assert seed["manifest"]["threads"] == 8 + 2


@pytest.mark.parametrize("source", ["", "llm-1"])
def test_a_single_host_or_an_empty_source_downloads_from_the_hub_as_before(source):
    declarations = fleet_of("llm-1", llm_1={"source": source})
    assert fleet.plan(declarations, "llm-1") == {
        "active": False, "serving": False, "fetch": "hub", "source": "", "base_url": None, "host": "", "port": 0,
        "note": "", "seed": None}


def test_every_host_downloading_from_the_hub():
    declarations = {name: host(name, source="") for name in ("llm-1", "llm-2")}
    assert not any(fleet.plan(declarations, name)["active"] for name in declarations)


def test_one_source_per_site():
    declarations = {**fleet_of("llm-1", "llm-2"), **{n: host(n, source="llm-3") for n in ("llm-3", "llm-4")}}
    assert fleet.plan(declarations, "llm-1")["seed"]["followers"] == ["llm-2"]
    assert fleet.plan(declarations, "llm-3")["seed"]["followers"] == ["llm-4"]
    assert fleet.plan(declarations, "llm-4")["base_url"].startswith("http://10.0.0.3:8089/")


def test_a_host_with_another_model_downloads_from_the_hub_with_a_note():
    other = [dict(FILES[0], sha256="3" * 64), FILES[1]]
    declarations = fleet_of("llm-1", "llm-2", "llm-3", llm_2={"files": other}, llm_3={"revision": "v2"})
    notes = {}
    for name in ("llm-2", "llm-3"):
        part = fleet.plan(declarations, name)
        assert part["fetch"] == "hub" and part["base_url"] is None
        notes[name] = part["note"]
    assert notes == {
        "llm-2": "llm-2 downloads from gguf_model_endpoint itself: llm-1 (its gguf_model_fleet_source) does not have "
                 "Q6_K/m-Q6_K-00001-of-00002.gguf of org/m-GGUF@main with the same sha256 and size",
        "llm-3": "llm-3 downloads from gguf_model_endpoint itself: its model org/m-GGUF@v2 is not org/m-GGUF@main, "
                 "the one its gguf_model_fleet_source llm-1 has"}
    assert fleet.plan(declarations, "llm-1")["seed"] is None


def test_a_follower_of_a_subset_of_the_files_still_follows():
    declarations = fleet_of("llm-1", "llm-2", llm_2={"files": FILES[:1]})
    assert fleet.plan(declarations, "llm-2")["fetch"] == "source"


def test_a_source_that_is_gone_leaves_the_follower_without_a_url():
    """The play stops the follower with a message (fleet_source.yml); the plan does not hide it."""
    declarations = fleet_of("llm-2", "llm-3")
    part = fleet.plan(declarations, "llm-2")
    assert (part["fetch"], part["source"], part["base_url"], part["serving"]) == ("source", "llm-1", None, False)


def test_a_chain_of_sources_is_refused_naming_the_variable():
    declarations = {"llm-1": host("llm-1", source="llm-2"), "llm-2": host("llm-2", source="llm-3"),
                    "llm-3": host("llm-3", source="")}
    with pytest.raises(fleet.DownloadSourceError,
                       match="gguf_model_fleet_source of llm-1 is llm-2, but llm-2 fetches from llm-3 itself"):
        fleet.plan(declarations, "llm-3")


def test_a_follower_without_addresses_fails_itself_not_its_source():
    declarations = fleet_of("llm-1", "llm-2", "llm-3", llm_3={"addresses": []})
    with pytest.raises(fleet.DownloadSourceError,
                       match=r"llm-3 fetches the model from llm-1 .* its facts list no IP address"):
        fleet.plan(declarations, "llm-3")
    assert fleet.plan(declarations, "llm-1")["seed"]["followers"] == ["llm-2", "llm-3"]
    assert "10.0.0.2" in fleet.plan(declarations, "llm-1")["seed"]["allow"]


def test_the_threads_stay_within_the_servers_limit():
    declarations = {name: host(name, connections=64) for name in (f"llm-{n}" for n in range(1, 10))}
    assert fleet.plan(declarations, "llm-1")["seed"]["manifest"]["threads"] == fleet.MAX_THREADS


def test_the_filter_names_the_problem():
    with pytest.raises(AnsibleFilterError, match="gguf_model_fleet_port of llm-1 must be 1-65535"):
        gguf_model_fleet(fleet_of("llm-1", "llm-2", llm_1={"port": "http"}), "llm-2")
    with pytest.raises(AnsibleFilterError, match="expects"):
        gguf_model_fleet(["llm-1"], "llm-1")


@pytest.mark.parametrize("value", ["10.0.0.5", "fd00::5", "::1", "llm-1", "llm-1.example.", "a" * 63 + ".example"])
def test_good_hosts(value):
    assert llm_host_check(value, "v") == []


@pytest.mark.parametrize(("value", "expected"), [
    ("", "v must be an IP address or a host name"), ("-llm-1", "got '-llm-1'"), ("llm 1", "host name"),
    ("llm-1:8089", "host name"), ("http://llm-1", "host name"), ("[fd00::5]", "host name"), ("a" * 64, "host name"),
    ("llm-1\nExecStart=/bin/sh", "control characters"), (None, "host name"), ("llm_1", "host name"),
])
def test_bad_hosts(value, expected):
    problems = llm_host_check(value, "v")
    assert len(problems) == 1 and problems[0].startswith("v must") and expected in problems[0]


def test_the_address_of_a_source_is_checked_where_it_goes_into_a_url():
    """A source whose own gguf_model_fleet_source is '' skips validate.yml's address check."""
    declarations = fleet_of("llm-1", "llm-2", llm_1={"source": "", "address": "llm-1:8089/x"})
    for name in declarations:  # every host stops, before any download
        with pytest.raises(fleet.DownloadSourceError,
                           match="gguf_model_fleet_address of llm-1 must be an IP address or a "):
            fleet.plan(declarations, name)
