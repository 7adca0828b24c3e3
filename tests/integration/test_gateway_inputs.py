"""The llm_gateway role's input checks through Ansible: each bad value fails at a named check before
anything changes, no message shows a key, and the default backends come from the servers' fleet plans (the
llm_server_plan facts site.yml's first play sets; given here as the inventory's, made by the same function).

One ansible-playbook run: one inventory host per case (local connection), the role's validate entry point
(argument spec + tasks/validate.yml) on the `cases` group, its drain entry point's checks on `drain_cases`
(which stop before anything is sent to a gateway: the gateway group's hosts do not exist).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fleet_plans import with_plans  # tests/support

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-" + "k3y" * 8
NODE_KEY = "node-" + "n0de" * 5
PLAYBOOK = """
- name: The gateway's inputs
  hosts: cases
  gather_facts: false
  tasks:
    - name: Check the gateway's inputs
      ansible.builtin.include_role:
        name: llm_gateway
        tasks_from: validate
        public: true  # its defaults stay visible to the next task
    - name: Show the backends
      ansible.builtin.debug:
        var: llm_gateway_backends

- name: The drain's inputs
  hosts: drain_cases
  gather_facts: false
  tasks:
    - name: Drain
      ansible.builtin.include_role:
        name: llm_gateway
        tasks_from: drain
"""
LLM_SERVERS = {
    "llm-1": {"ansible_host": "10.0.0.1"},
    "llm-2": {"ansible_host": "10.0.0.2", "llama_server_port": 8081, "llm_gateway_backend_address": "192.168.7.2",
              "llm_gateway_backend_maxconn": 2},
    "llm-3.example.net": {},
}
CASES = {
    "port-range": ({"llm_gateway_port": 70000},
                   "llm_gateway_port must be a whole number from 1 to 65535 (a TCP port), got 70000"),
    "port-word": ({"llm_gateway_port": "http"}, "llm_gateway_port"),
    "check-fall-yes": ({"llm_gateway_check_fall": True},
                       "llm_gateway_check_fall must be a whole number from 1 to 10 (failed checks), got True"),
    "stats-port-same": ({"llm_gateway_stats_port": 8080}, "llm_gateway_stats_port must differ from llm_gateway_port"),
    "bind-name": ({"llm_gateway_bind_address": "gw.example.net"},
                  "llm_gateway_bind_address must be an IP address to listen on"),
    "bind-newline": ({"llm_gateway_bind_address": "0.0.0.0\n    bind :80"},
                     "llm_gateway_bind_address must not contain control characters"),
    "cert-relative": ({"llm_gateway_tls_cert_path": "certs/gw.pem"},
                      "llm_gateway_tls_cert_path must be an absolute path"),
    "cert-space": ({"llm_gateway_tls_cert_path": "/etc/haproxy/my cert.pem"},
                   "llm_gateway_tls_cert_path must be a path of letters, digits"),
    "cert-dotdot": ({"llm_gateway_tls_cert_path": "/etc/haproxy/../gw.pem"}, "must be an absolute, normalized path"),
    "timeout-server": ({"llm_gateway_timeout_server": 30},
                       "llm_gateway_timeout_server must be a whole number from 60 to 86400"),
    "timeout-client": ({"llm_gateway_timeout_client": 100000},
                       "llm_gateway_timeout_client must be a whole number from 60 to 86400"),
    "timeout-connect": ({"llm_gateway_timeout_connect": 0},
                        "llm_gateway_timeout_connect must be a whole number from 1 to 60"),
    "timeout-http-request": ({"llm_gateway_timeout_http_request": 600},
                             "llm_gateway_timeout_http_request must be a whole number from 1 to 300"),
    "timeout-queue": ({"llm_gateway_timeout_queue": 0},
                      "llm_gateway_timeout_queue must be a whole number from 1 to 86400"),
    "check-interval": ({"llm_gateway_check_interval": 0},
                       "llm_gateway_check_interval must be a whole number from 1 to 60"),
    "check-fall": ({"llm_gateway_check_fall": 11}, "llm_gateway_check_fall must be a whole number from 1 to 10"),
    "check-rise": ({"llm_gateway_check_rise": 0}, "llm_gateway_check_rise must be a whole number from 1 to 10"),
    "maxconn": ({"llm_gateway_maxconn": 0}, "llm_gateway_maxconn must be a whole number from 1 to 1000000"),
    "drain-timeout": ({"llm_gateway_drain_timeout": -1},
                      "llm_gateway_drain_timeout must be a whole number from 0 to 86400"),
    "ready-timeout": ({"llm_gateway_ready_timeout": 0},
                      "llm_gateway_ready_timeout must be a whole number from 1 to 3600"),
    "fail-on-timeout": ({"llm_gateway_drain_fail_on_timeout": "perhaps"}, "llm_gateway_drain_fail_on_timeout"),
    "backend-group": ({"llm_gateway_backend_group": "llm-servers"},
                      "llm_gateway_backend_group must be an inventory group name"),
    "gateway-group": ({"llm_gateway_group": "gw group"}, "llm_gateway_group must be an inventory group name"),
    "backend-name": ({"llm_gateway_backends": [{"name": "llm 1", "address": "10.0.0.1", "port": 8080}]},
                     "llm_gateway_backends[0].name must be letters, digits and . _ -"),
    "backend-port": ({"llm_gateway_backends": [{"name": "llm-1", "address": "10.0.0.1", "port": 0}]},
                     "llm_gateway_backends[0] (llm-1).port must be 1-65535, got 0"),
    "backend-brackets": ({"llm_gateway_backends": [{"name": "llm-1", "address": "[fd00::1]", "port": 8080}]},
                         "must be an IPv6 address without brackets"),
    "backend-any": ({"llm_gateway_backends": [{"name": "llm-1", "address": "0.0.0.0", "port": 8080}]},  # noqa: S104
                    "address must be the address of one node"),
    "backend-twice": ({"llm_gateway_backends": [{"name": "a", "address": "10.0.0.1", "port": 8080},
                                                {"name": "b", "address": "10.0.0.1", "port": 8080}]},
                      "10.0.0.1:8080 is listed twice"),
    "backend-not-list": ({"llm_gateway_backends": {"name": "llm-1"}}, "llm_gateway_backends"),
    "key-short": ({"llm_gateway_api_keys": [{"name": "alice", "key": "sk-short"}]},
                  "llm_gateway_api_keys[0] (alice).key must be 16 to 512 characters long (the value is not shown)"),
    "key-space": ({"llm_gateway_api_keys": [{"name": "alice", "key": KEY[:10] + " " + KEY[10:]}]},
                  "(alice).key must be printable ASCII without spaces"),
    "key-shared": ({"llm_gateway_api_keys": [{"name": "alice", "key": KEY}, {"name": "bob", "key": KEY}]},
                   "(bob).key is the same as llm_gateway_api_keys[0] (alice)'s"),
    "key-name": ({"llm_gateway_api_keys": [{"name": "alice smith", "key": KEY}]},
                 "llm_gateway_api_keys[0].name must be letters, digits"),
    "node-key-alone": ({"llm_gateway_backend_api_key": NODE_KEY},
                       "llm_gateway_backend_api_key needs llm_gateway_api_keys when llm_gateway_bind_address is not"),
    "node-key-short": ({"llm_gateway_backend_api_key": "n0de", "llm_gateway_api_keys": [{"name": "a", "key": KEY}]},
                       "llm_gateway_backend_api_key must be 16 to 512 characters long"),
}
GOOD = {
    "good": {},
    "good-everything": {"llm_gateway_tls_cert_path": "/etc/haproxy/certs/gw.pem", "llm_gateway_bind_address": "::",
                        "llm_gateway_api_keys": [{"name": "alice", "key": KEY}],
                        "llm_gateway_backend_api_key": NODE_KEY},
    "good-loopback-node-key": {"llm_gateway_bind_address": "127.0.0.1", "llm_gateway_backend_api_key": NODE_KEY},
    "good-other-group": {"llm_gateway_backend_group": "other_servers"},
}
DRAIN_CASES = {
    "drain-no-server": ({}, "llm_gateway_server"),
    "drain-bad-server": ({"llm_gateway_server": "llm 1"}, "llm_gateway_server must be the node's backend server name"),
    "drain-no-gateway": ({"llm_gateway_server": "llm-1", "llm_gateway_group": "no_such_group"},
                         "llm_gateway_group ('no_such_group') must be an inventory group holding the gateway host(s)"),
}


def failures(result):
    """{host: (first failed task's name, its result)} over every play of a json-callback run."""
    first = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed") and host not in first:
                    first[host] = (task["task"]["name"], res)
    return first


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gateway-inputs")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {"vars": local, "children": {
        "cases": {"hosts": {**{name: values for name, (values, _) in CASES.items()}, **GOOD}},
        "drain_cases": {"hosts": {name: values for name, (values, _) in DRAIN_CASES.items()}},
        "llm_servers": {"hosts": with_plans(LLM_SERVERS)},
        "other_servers": {"hosts": with_plans({"gpu-box": {"ansible_host": "10.9.9.9", "llama_server_port": 9090}})},
    }}}
    (folder / "hosts.json").write_text(json.dumps(inventory))
    (folder / "play.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(["ansible-playbook", str(folder / "play.yml"), "-i", str(folder / "hosts.json"), "-f", "16"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600)
    return json.loads(out.stdout), out.stdout + out.stderr


@pytest.mark.parametrize("host", list(CASES) + list(DRAIN_CASES))
def test_a_bad_value_fails_at_a_named_check(run, host):
    result, _ = run
    _, expected = {**CASES, **DRAIN_CASES}[host]
    assert host in failures(result), f"{host} passed every check"
    task, res = failures(result)[host]
    assert task.split(" : ")[-1].startswith(("Validating arguments", "Check ")), task
    assert expected in json.dumps(res), res.get("msg")
    # Nothing ran on a gateway: every drain case stopped before the module.
    assert "llm_haproxy_server" not in json.dumps(res)


def test_no_key_is_ever_shown(run):
    _, output = run
    for secret in (KEY, KEY[:10] + " " + KEY[10:], NODE_KEY, "sk-short", "n0de\""):
        assert secret not in output


def backends_of(result, host):
    task = next(t for t in result["plays"][0]["tasks"] if t["task"]["name"] == "Show the backends")
    return task["hosts"][host]["llm_gateway_backends"]


def test_good_settings_pass_and_the_backends_come_from_the_plans(run):
    result, _ = run
    assert not set(GOOD) & set(failures(result))
    assert backends_of(result, "good") == [
        {"name": "llm-1", "address": "10.0.0.1", "port": 8080},
        {"name": "llm-2", "address": "192.168.7.2", "port": 8081, "maxconn": 2},
        {"name": "llm-3.example.net", "address": "llm-3.example.net", "port": 8080}]
    assert backends_of(result, "good-other-group") == [{"name": "gpu-box", "address": "10.9.9.9", "port": 9090}]
