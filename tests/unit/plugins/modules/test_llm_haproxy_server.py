"""The llm_haproxy_server module: its decisions on a fake runtime (check mode, idempotence, timeouts),
then through Ansible against a real HAProxy rendered from the llm_gateway role's template."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import haproxy_runtime as real
from ansible_collections.cpu_llm.infra.plugins.modules.llm_haproxy_server import run
from haproxy_lab import HAPROXY, Haproxy, Node, free_port, render, role_variables, wait_until  # tests/support

ROOT = Path(__file__).resolve().parents[4]
PARAMS = {"socket": "/run/haproxy/admin.sock", "backend": "llm_servers", "server": "llm-1", "state": None,
          "wait": True, "timeout": 5, "interval": 1.0, "fail_on_timeout": True}


class FakeRuntime:
    """The haproxy_runtime functions the module uses, over a scripted server: each reading pops the next
    (sessions, status) of `readings` once the state was set."""

    HaproxyError, drained, up = real.HaproxyError, staticmethod(real.drained), staticmethod(real.up)

    def __init__(self, state="ready", readings=((0, "UP"),)):
        self.state, self.readings, self.sets, self.check_status = state, list(readings), [], "L7OK"

    def server_state(self, _path, backend, server):
        sessions, status = self.readings[0] if len(self.readings) == 1 else self.readings.pop(0)
        return {"backend": backend, "server": server, "state": self.state, "reasons": [], "status": status,
                "check_status": self.check_status, "sessions": sessions, "queued": 0, "address": "10.0.0.5:8080"}

    def set_state(self, _path, _backend, _server, state):
        self.sets.append(state)
        self.state = state

    @staticmethod
    def wait(read, done, timeout, interval):
        waited = 0.0
        while True:
            current = read()
            if done(current):
                return current, waited, False
            if waited >= timeout:
                return current, waited, True
            waited += interval


def test_check_mode_reports_the_change_and_sets_nothing():
    fake = FakeRuntime(readings=[(3, "UP")])
    failed, result = run({**PARAMS, "state": "drain"}, check_mode=True, runtime=fake)
    assert not failed and result["changed"] and fake.sets == []
    assert (result["state"], result["previous_state"], result["sessions"]) == ("drain", "ready", 3)
    assert result["waited"] == 0.0


def test_drain_sets_then_waits_for_the_sessions():
    fake = FakeRuntime(readings=[(2, "UP"), (2, "DRAIN"), (1, "DRAIN"), (0, "DRAIN")])
    failed, result = run({**PARAMS, "state": "drain"}, check_mode=False, runtime=fake)
    assert not failed and fake.sets == ["drain"]
    assert (result["changed"], result["state"], result["sessions"], result["timed_out"]) == (True, "drain", 0, False)
    assert result["waited"] == 1.0


def test_a_second_drain_changes_nothing_and_still_waits():
    fake = FakeRuntime(state="drain", readings=[(1, "DRAIN"), (0, "DRAIN")])
    failed, result = run({**PARAMS, "state": "drain"}, check_mode=False, runtime=fake)
    assert not failed and not result["changed"] and fake.sets == [] and result["sessions"] == 0


def test_drain_timeout_fails_or_warns_and_goes_on():
    fake = FakeRuntime(readings=[(4, "DRAIN")])
    failed, result = run({**PARAMS, "state": "drain", "timeout": 3}, check_mode=False, runtime=fake)
    assert failed and result["timed_out"] and "still serves 4 request(s) (0 queued) after 3 s of drain" in result["msg"]
    warnings = []
    fake = FakeRuntime(readings=[(4, "DRAIN")])
    failed, result = run({**PARAMS, "state": "drain", "timeout": 3, "fail_on_timeout": False}, check_mode=False,
                         runtime=fake, warn=warnings.append)
    assert not failed and result["timed_out"] and "msg" not in result
    assert warnings == ["llm_servers/llm-1 still serves 4 request(s) (0 queued) after 3 s of drain; going on: "
                        "they will be cut"]


def test_ready_waits_for_the_checks_and_fails_when_they_never_pass():
    fake = FakeRuntime(state="drain", readings=[(0, "DRAIN"), (0, "DOWN"), (0, "DOWN 1/2"), (0, "UP")])
    failed, result = run({**PARAMS, "state": "ready"}, check_mode=False, runtime=fake)
    assert not failed and fake.sets == ["ready"] and result["status"] == "UP" and result["waited"] == 1.0
    fake = FakeRuntime(state="drain", readings=[(0, "DOWN")])
    failed, result = run({**PARAMS, "state": "ready", "timeout": 2}, check_mode=False, runtime=fake)
    assert failed and "llm_servers/llm-1 is not up after 2 s: status DOWN, last check L7OK" in result["msg"]
    fake.check_status = "L4CON"  # connection refused: the node listens on loopback only, or a firewall
    failed, result = run({**PARAMS, "state": "ready", "timeout": 2}, check_mode=False, runtime=fake)
    assert failed and "last check L4CON (the gateway cannot connect: the node must listen" in result["msg"]


def test_without_state_it_only_reads():
    fake = FakeRuntime(state="maint", readings=[(0, "MAINT")])
    failed, result = run(PARAMS, check_mode=False, runtime=fake)
    assert not failed and not result["changed"] and fake.sets == [] and result["state"] == "maint"


# --- Through Ansible, against a real HAProxy ----------------------------------------------------------

def module(*args, check=False):
    # The ansible beside this Python first: the tests also run without the virtualenv activated.
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(["ansible", "localhost", "-m", "cpu_llm.infra.llm_haproxy_server", "-o", "-a", " ".join(args),
                          *(["--check"] if check else [])], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=False, timeout=120)
    status = out.stdout.split("|", 1)[1].split("=>", 1)[0].strip() if "|" in out.stdout else out.stderr
    return status, json.loads(out.stdout.split("=>", 1)[1]) if "=>" in out.stdout else {}


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (scripts/setup.sh installs it)")
def test_through_ansible_check_mode_then_drain_and_ready(tmp_path):
    node = Node("llm-1")
    socket_path = str(tmp_path / "admin.sock")
    config = render("haproxy.cfg.j2", role_variables(
        {"llm-1": {"ansible_host": "127.0.0.1", "llama_server_port": node.port}}, llm_gateway_bind_address="127.0.0.1",
        llm_gateway_port=free_port(), llm_gateway_stats_port=free_port(), llm_gateway_check_interval=1,
        __llm_gateway_runtime_socket=socket_path))
    haproxy = Haproxy(config, tmp_path, socket_path)
    try:
        args = [f"socket={socket_path}", "backend=llm_servers", "server=llm-1"]
        assert wait_until(lambda: real.up(real.server_state(socket_path, "llm_servers", "llm-1")))
        status, result = module(*args, "state=drain", check=True)
        assert status == "CHANGED" and result["state"] == "drain" and result["previous_state"] == "ready"
        assert real.server_state(socket_path, "llm_servers", "llm-1")["state"] == "ready"  # check mode set nothing

        status, result = module(*args, "state=drain", "timeout=5")
        assert status == "CHANGED" and (result["state"], result["status"], result["sessions"]) == ("drain", "DRAIN", 0)
        status, result = module(*args, "state=drain")
        assert status == "SUCCESS" and not result["changed"]

        status, result = module(*args, "state=ready", "timeout=10")
        assert status == "CHANGED" and (result["state"], result["status"]) == ("ready", "UP")

        status, result = module("socket=" + socket_path, "backend=llm_servers", "server=llm-9", "state=drain")
        assert status == "FAILED!"
        assert "no server 'llm-9' in backend 'llm_servers' (its servers: llm-1)" in result["msg"]
    finally:
        node.stop()
        haproxy.stop()
