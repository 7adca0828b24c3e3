"""The llm_rpc_worker role's validate entry point (argument spec + tasks/validate.yml), run by ansible-playbook
against one inventory host per case: a bad value is refused before anything changes, naming the variable.

The worker's addresses are facts given to each host (set_fact cacheable, as the setup module would), so the
listen-address rule is checked against a known host: 10.0.0.11 and a public 203.0.113.7 on it, 10.0.0.12 not.
"""

from pathlib import Path

import pytest
import yaml
from playbook_json import assert_refused, case_hosts, run_checks  # tests/support (on the path through pytest.ini)

ROOT = Path(__file__).resolve().parents[2]
FACTS = {"all_ipv4_addresses": ["10.0.0.11", "203.0.113.7"], "all_ipv6_addresses": ["fd00:1::11"],
         "processor_nproc": 8}
GOOD_VARS = {"llm_rpc_worker_address": "10.0.0.11", "llm_rpc_worker_allowed_sources": ["10.0.0.10"],
             "llm_rpc_worker_binary": "/opt/llama.cpp/current/bin/ggml-rpc-server", "llm_rpc_worker_threads": 8}
BAD = {
    "address-missing": ({"llm_rpc_worker_address": ""}, "llm_rpc_worker_address is required"),
    "address-any": ({"llm_rpc_worker_address": "0.0.0.0"}, "llm_rpc_worker_address is 0.0.0.0, which listens on every"),  # noqa: S104
    "address-any6": ({"llm_rpc_worker_address": "::"}, "llm_rpc_worker_address is ::, which listens on every"),
    "address-public": ({"llm_rpc_worker_address": "203.0.113.7"}, "llm_rpc_worker_address is 203.0.113.7, not a"),
    "address-elsewhere": ({"llm_rpc_worker_address": "10.0.0.12"}, "10.0.0.12, which is not an address of this host"),
    "address-ipv6": ({"llm_rpc_worker_address": "fd00:1::11"}, "llm_rpc_worker_address is fd00:1::11, an IPv6 address"),
    "address-name": ({"llm_rpc_worker_address": "worker-1"}, "llm_rpc_worker_address must be an IP address"),
    "sources-missing": ({"llm_rpc_worker_allowed_sources": []}, "llm_rpc_worker_allowed_sources must list"),
    "sources-public": ({"llm_rpc_worker_allowed_sources": ["10.0.0.10", "8.8.8.8"]},
                       "llm_rpc_worker_allowed_sources[1] is 8.8.8.8, not a private"),
    "sources-everyone": ({"llm_rpc_worker_allowed_sources": ["0.0.0.0/0"]}, "llm_rpc_worker_allowed_sources[0]"),
    "port": ({"llm_rpc_worker_port": 70000}, "llm_rpc_worker_port must be a whole number from 1 to 65535"),
    "threads": ({"llm_rpc_worker_threads": 9}, "llm_rpc_worker_threads must be a whole number from 1 to 8"),
    "start-timeout-off": ({"llm_rpc_worker_start_timeout": False},
                          "llm_rpc_worker_start_timeout must be a whole number of at least 1 (seconds), got False"),
    "user-shared": ({"llm_rpc_worker_user": "www-data"},
                    "llm_rpc_worker_user 'www-data' is an existing account the role did not create"),
    "user-root": ({"llm_rpc_worker_user": "root"}, "llm_rpc_worker_user must be a system user name other than root"),
    "numactl-command": ({"llm_rpc_worker_numactl_args": ["all"]}, "llm_rpc_worker_numactl_args must be numactl"),
    "env-cache": ({"llm_rpc_worker_environment": {"LLAMA_CACHE": "/tmp"}}, "llm_rpc_worker_environment must map"),  # noqa: S108
    "env-name": ({"llm_rpc_worker_environment": {"A-B": "1"}}, "llm_rpc_worker_environment must map"),
    "binary-relative": ({"llm_rpc_worker_binary": "ggml-rpc-server"}, "llm_rpc_worker_binary must be an absolute path"),
    "cache-word": ({"llm_rpc_worker_cache": "perhaps"}, "llm_rpc_worker_cache"),
    "newline": ({"llm_rpc_worker_group": "lla\nma"}, "llm_rpc_worker_group must not contain control characters"),
}
GOOD = {
    "defaults": {},
    "loopback": {"llm_rpc_worker_address": "127.0.0.1", "llm_rpc_worker_allowed_sources": ["127.0.0.1"]},
    "networks": {"llm_rpc_worker_allowed_sources": ["10.0.0.0/24", "192.168.7.2", "fd00:1::/64"],
                 "llm_rpc_worker_cache": True, "llm_rpc_worker_nftables_enabled": False,
                 "llm_rpc_worker_environment": {"GGML_RPC_DEBUG": "1"}, "llm_rpc_worker_numactl_args": []},
    "no-binary-yet": {"llm_rpc_worker_binary": ""},  # main.yml insists, after the llama_cpp role had its turn
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{host: (failed task name or None, its result)} from one ansible-playbook run of the role's checks."""
    hosts = case_hosts(BAD, GOOD)
    tmp = tmp_path_factory.mktemp("validate")
    tasks = [{"name": "Give the host its addresses", "ansible.builtin.set_fact": {**FACTS, "cacheable": True}},
             {"name": "Check", "ansible.builtin.include_role": {"name": "llm_rpc_worker", "tasks_from": "validate"}}]
    return run_checks(tmp, hosts, tasks, "Check llm_rpc_worker's inputs", GOOD_VARS)


@pytest.mark.parametrize("case", BAD)
def test_bad_value_is_refused_naming_the_variable(outcomes, case):
    assert_refused(outcomes[f"bad-{case}"], *BAD[case])


@pytest.mark.parametrize("case", GOOD)
def test_good_values_pass(outcomes, case):
    assert outcomes[f"good-{case}"] == (None, None)


def test_the_addresses_are_read_when_the_run_has_none(tmp_path):
    """Without facts (the role on its own, tests/validate.yml) the check reads this host's addresses first;
    a loopback address needs none."""
    tasks = yaml.safe_load((ROOT / "roles" / "llm_rpc_worker" / "tasks" / "validate.yml").read_text())
    (read,) = [t for t in tasks if "ansible.builtin.setup" in t]
    assert read["ansible.builtin.setup"]["filter"] == ["ansible_all_ipv4_addresses", "ansible_all_ipv6_addresses"]
    assert "ansible_facts.all_ipv4_addresses is not defined" in read["when"]
