"""HAProxy's runtime API in plain Python: the parsers on captured real answers (tests/fixtures/haproxy),
the state logic on bad answers, and the whole drain / ready cycle against a real HAProxy rendered from
the llm_gateway role's template, on a socket in a temporary directory and loopback ports the kernel picks."""

import http.client
import re
import threading
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import haproxy_runtime as rt
from haproxy_lab import HAPROXY, Haproxy, Node, free_port, render, role_variables, wait_until  # tests/support

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "haproxy"
STAT_26 = (FIXTURES / "2.6" / "show_stat.csv").read_text()
STATE_26 = (FIXTURES / "2.6" / "show_servers_state.txt").read_text()


def test_show_stat_from_haproxy_2_6():
    rows = rt.parse_stat(STAT_26)
    assert [(r["pxname"], r["svname"]) for r in rows] == [
        ("llm", "FRONTEND"), ("llm_servers", "llm-1"), ("llm_servers", "llm-2"), ("llm_servers", "llm-3"),
        ("llm_servers", "BACKEND")]
    servers = {r["svname"]: r for r in rows if r["pxname"] == "llm_servers"}
    assert (servers["llm-1"]["status"], servers["llm-1"]["scur"], servers["llm-1"]["check_status"]) == ("UP", 1, "L7OK")
    assert (servers["llm-2"]["status"], servers["llm-2"]["scur"], servers["llm-2"]["qcur"]) == ("DRAIN", 1, 0)
    assert servers["llm-3"]["status"] == "MAINT" and servers["llm-3"]["scur"] == 0
    assert servers["BACKEND"]["scur"] == 2 and servers["BACKEND"]["algo"] == "leastconn"
    assert servers["llm-1"]["addr"].startswith("127.0.0.1:") and servers["llm-1"]["slim"] == ""
    # The trailing comma of HAProxy's CSV adds no column.
    assert "" not in rows[0]


def test_show_servers_state_from_haproxy_2_6():
    rows = rt.parse_servers_state(STATE_26)
    assert [(r["srv_name"], r["srv_admin_state"], r["srv_op_state"]) for r in rows] == [
        ("llm-1", 0, 2), ("llm-2", 8, 2), ("llm-3", 1, 0)]
    assert rows[0]["be_name"] == "llm_servers" and rows[0]["srv_fqdn"] == "-"


@pytest.mark.parametrize(("flags", "state", "reason"), [
    (0x00, "ready", None), (0x08, "drain", "forced drain"), (0x10, "drain", "drain inherited from a tracked server"),
    (0x01, "maint", "forced maintenance"), (0x04, "maint", "disabled in the configuration"),
    (0x20, "maint", "address resolution failed"), (0x09, "maint", "forced maintenance"), (0x40, "ready", None)])
def test_admin_state_bits(flags, state, reason):
    name, reasons = rt.admin_state(flags)
    assert name == state and (reason in reasons if reason else reasons == [])


def fake_runtime(answers):
    """run(path, line) answering from {command: text}, recording the commands sent."""
    sent = []

    def run(_path, line):
        sent.append(line)
        return answers[line]
    return run, sent


def test_server_state_reads_both_answers():
    run, sent = fake_runtime({"show servers state llm_servers": STATE_26, "show stat llm_servers 4 -1": STAT_26})
    state = rt.server_state("/x", "llm_servers", "llm-2", run=run)
    assert state == {"backend": "llm_servers", "server": "llm-2", "state": "drain", "reasons": ["forced drain"],
                     "status": "DRAIN", "check_status": "L7OK", "sessions": 1, "queued": 0,
                     "address": state["address"]}
    assert sent == ["show servers state llm_servers", "show stat llm_servers 4 -1"]
    assert not rt.drained(state) and not rt.up(state)
    one = rt.server_state("/x", "llm_servers", "llm-1", run=run)
    assert rt.up(one) and not rt.drained(one)


def test_unknown_server_and_backend_say_what_exists():
    run, _ = fake_runtime({"show servers state llm_servers": STATE_26, "show stat llm_servers 4 -1": STAT_26,
                           "show servers state other": "Can't find backend.\n\n"})
    known = re.escape("no server 'llm-9' in backend 'llm_servers' (its servers: llm-1, llm-2, llm-3)")
    with pytest.raises(rt.HaproxyError, match=known):
        rt.server_state("/x", "llm_servers", "llm-9", run=run)
    with pytest.raises(rt.HaproxyError, match="no backend 'other'"):
        rt.server_state("/x", "other", "llm-1", run=run)


def test_refusals_and_bad_answers():
    run, _ = fake_runtime({"set server llm_servers/llm-9 state drain": "No such server.\n\n"})
    with pytest.raises(rt.HaproxyError, match=r"No such server\."):
        rt.set_state("/x", "llm_servers", "llm-9", "drain", run=run)
    with pytest.raises(ValueError, match="state must be one of"):
        rt.set_state("/x", "llm_servers", "llm-1", "down", run=run)
    for name in ("a b", "a;shutdown", "x/y", "", "-x", "a\nb"):
        with pytest.raises(ValueError, match="server name"):
            rt.set_state("/x", "llm_servers", name, "drain", run=run)
    with pytest.raises(ValueError):
        rt.command("/x", "show stat; shutdown sessions")
    with pytest.raises(rt.HaproxyError, match="unexpected answer to show stat"):
        rt.parse_stat("No such proxy.\n\n")
    with pytest.raises(rt.HaproxyError, match="unexpected answer to show servers state"):
        rt.parse_servers_state("Permission denied\n")


def test_a_missing_socket_says_so(tmp_path):
    with pytest.raises(rt.HaproxyError, match="no HAProxy runtime socket at"):
        rt.command(str(tmp_path / "admin.sock"), "show info")


class Clock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


def test_wait_returns_at_the_condition_or_the_timeout():
    clock, readings = Clock(), iter([3, 2, 0])
    assert rt.wait(lambda: next(readings), lambda n: n == 0, 10, 1.0, clock.now, clock.sleep) == (0, 2.0, False)
    clock = Clock()
    assert rt.wait(lambda: 1, lambda n: n == 0, 5, 2.0, clock.now, clock.sleep) == (1, 5.0, True)
    clock = Clock()
    assert rt.wait(lambda: 1, lambda n: n == 0, 0, 1.0, clock.now, clock.sleep) == (1, 0.0, True)


# --- Against a real HAProxy -------------------------------------------------------------------------

needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (scripts/setup.sh installs it)")


@pytest.fixture
def gateway(tmp_path):
    """A real HAProxy from the role's template in front of two nodes: (haproxy, socket path, nodes, port)."""
    nodes = [Node("llm-1"), Node("llm-2")]
    port, socket_path = free_port(), str(tmp_path / "admin.sock")
    inventory = {node.name: {"ansible_host": "127.0.0.1", "llama_server_port": node.port} for node in nodes}
    config = render("haproxy.cfg.j2", role_variables(
        inventory, llm_gateway_bind_address="127.0.0.1", llm_gateway_port=port, llm_gateway_stats_port=free_port(),
        llm_gateway_check_interval=1, __llm_gateway_runtime_socket=socket_path))
    haproxy = Haproxy(config, tmp_path, socket_path)
    # Both nodes pass their checks before a test starts.
    assert wait_until(lambda: all(rt.up(rt.server_state(socket_path, "llm_servers", n.name)) for n in nodes))
    yield haproxy, socket_path, nodes, port
    for node in nodes:
        node.stop()
    haproxy.stop()


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read().decode()


@needs_haproxy
def test_live_show_stat_parses(gateway):
    _, socket_path, nodes, _ = gateway
    rows = rt.parse_stat(rt.command(socket_path, "show stat"))
    servers = [r for r in rows if r["pxname"] == "llm_servers" and r["svname"] not in ("BACKEND",)]
    assert [r["svname"] for r in servers] == [n.name for n in nodes]
    assert all(r["status"] == "UP" and r["check_status"] == "L7OK" for r in servers)
    state = rt.parse_servers_state(rt.command(socket_path, "show servers state llm_servers"))
    assert [(r["srv_name"], r["srv_admin_state"], r["srv_port"]) for r in state] == [(n.name, 0, n.port) for n in nodes]


@needs_haproxy
def test_live_drain_waits_for_the_running_stream_and_sends_new_requests_elsewhere(gateway):
    _, socket_path, nodes, port = gateway
    results = []
    streaming = threading.Thread(target=lambda: results.append(get(port, "/stream")))
    streaming.start()
    assert wait_until(lambda: sum(n.streams for n in nodes) == 1)
    busy = next(n for n in nodes if n.streams)
    other = next(n for n in nodes if n is not busy)
    assert rt.server_state(socket_path, "llm_servers", busy.name)["sessions"] == 1

    rt.set_state(socket_path, "llm_servers", busy.name, "drain")
    state = rt.server_state(socket_path, "llm_servers", busy.name)
    assert (state["state"], state["status"], state["sessions"]) == ("drain", "DRAIN", 1)
    # New requests go to the other node; the stream keeps flowing on the drained one.
    assert {get(port, "/v1/models")[1] for _ in range(4)} == {f'{{"node": "{other.name}", "authorization": null}}'}
    # A wait shorter than the generation times out, saying how many requests still run.
    read = lambda: rt.server_state(socket_path, "llm_servers", busy.name)  # noqa: E731
    last, waited, timed_out = rt.wait(read, rt.drained, 1, 0.2)
    assert timed_out and last["sessions"] == 1 and waited >= 1
    # The generation ends: the drain completes.
    busy.release.set()
    streaming.join(10)
    assert results and results[0][0] == 200 and results[0][1].endswith("data: [DONE]\n\n")
    last, waited, timed_out = rt.wait(read, rt.drained, 10, 0.2)
    assert not timed_out and last["sessions"] == 0 and last["state"] == "drain"


@needs_haproxy
def test_live_ready_waits_for_the_checks_after_a_restart(gateway):
    _, socket_path, nodes, _ = gateway
    node = nodes[0]
    read = lambda: rt.server_state(socket_path, "llm_servers", node.name)  # noqa: E731
    rt.set_state(socket_path, "llm_servers", node.name, "drain")
    node.health = 503  # restarted, loading its model: /health answers 503
    assert wait_until(lambda: read()["status"].startswith("DOWN"))
    rt.set_state(socket_path, "llm_servers", node.name, "ready")
    last, _, timed_out = rt.wait(read, rt.up, 1.5, 0.2)
    assert timed_out and last["state"] == "ready" and last["status"].startswith("DOWN")
    assert last["check_status"] == "L7STS"  # a check answered, with the wrong status
    node.health = 200  # loaded
    last, waited, timed_out = rt.wait(read, rt.up, 15, 0.2)
    assert not timed_out and last["status"] == "UP" and waited >= 1  # rise 2 at 1 s
