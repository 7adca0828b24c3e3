"""A fleet behind a gateway: requests spread over the servers, a model split over two hosts with llama.cpp's
RPC backend, a fleet-wide model upgrade under load without a failed request, one WAN download per file.

The gateway (HAProxy, llm_gateway role) listens on fleet-gw:8080; the servers fleet-a/b/c listen on their
addresses of the scenario's internal network; fleet-c's model is split with the RPC worker fleet-w.
Everything here runs inside the containers: the load generator (load.py) in the gateway's, next to HAProxy,
and the test hub (the "WAN") there too.
"""

import json
import os
import re
import shlex
import time
from collections import defaultdict
from pathlib import Path

import playbook  # molecule/shared/playbook.py (on the path through pytest.ini)
import testinfra

HERE = Path(__file__).resolve().parent
SERVERS = ["fleet-a", "fleet-b", "fleet-c"]
# Their names in the gateway: fleet-a runs one llama-server per NUMA node (host_vars: per_node; one node here).
BACKENDS = ["fleet-a-n0", "fleet-b", "fleet-c"]
ADDRESS = {"fleet-a": "10.89.64.11", "fleet-b": "10.89.64.12", "fleet-c": "10.89.64.13", "fleet-w": "10.89.64.14"}
HEADER_BYTES = 8 << 20  # a GGUF header read (tokenizer included) of this model, with room to spare
WORKER = f"{ADDRESS['fleet-w']}:50052"  # host_vars/fleet-w.yml, the role's default port
GATEWAY = "http://127.0.0.1:8080"
KEY = "fleet-test-key-0123456789"  # host_vars: the servers' llama_server_api_key
CACHE = Path(os.environ.get("LLM_CACHE_DIR", "/var/cache/llm-cpu-infra"))
MANIFEST = json.loads((CACHE / "manifest.json").read_text())

SHOW_STAT = """
import csv, io, socket, sys, json
s = socket.socket(socket.AF_UNIX); s.connect("/run/haproxy/admin.sock"); s.sendall(b"show stat\\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
keep = ("status", "scur", "stot")
print(json.dumps({r["svname"]: {k: r[k] for k in keep} for r in rows if r["pxname"] == "llm_servers"}))
"""

CHAT = """
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/v1/chat/completions", headers={"Content-Type": "application/json",
    "Authorization": "Bearer " + sys.argv[2]}, data=json.dumps({"messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 4, "temperature": 0}).encode())
with urllib.request.urlopen(req, timeout=120) as r:
    print(r.status)
"""

# Run once, from the gateway: molecule's verifier would run each test on every host.
testinfra_hosts = ["ansible://fleet-gw"]


def stat(host):
    return json.loads(host.check_output(f"python3 -c {shlex.quote(SHOW_STAT)}"))


def test_every_server_is_up_in_the_gateway(host):
    servers = stat(host)
    assert {name for name in servers if name not in ("BACKEND",)} == set(BACKENDS), servers
    assert all(servers[name]["status"] == "UP" for name in BACKENDS), servers


def test_requests_through_the_gateway_reach_every_server(host):
    before = stat(host)
    for _ in range(9):
        assert host.check_output(f"python3 -c {shlex.quote(CHAT)} {GATEWAY} {KEY}") == "200"
    after = stat(host)
    served = {name: int(after[name]["stot"]) - int(before[name]["stot"]) for name in BACKENDS}
    assert all(count > 0 for count in served.values()), served


def test_a_per_node_server_runs_one_instance_bound_to_its_node(host):
    """fleet-a (llama_server_instances: per_node): llama-server-node0.service instead of llama-server.service,
    its memory policy bind:0 (numactl --membind=0) on every mapping the kernel reports, not interleave."""
    node = testinfra.get_host("podman://fleet-a")
    assert node.service("llama-server-node0.service").is_running
    assert not node.service("llama-server.service").is_running
    pid = node.check_output("systemctl show --property MainPID --value llama-server-node0.service")
    policies = {line.split()[1] for line in node.check_output(f"cat /proc/{pid}/numa_maps").splitlines()}
    assert policies == {"bind:0"}, policies


def test_the_split_model_answers_and_the_worker_holds_its_layers(host):
    """fleet-c serves with --rpc fleet-w and 15 of its 30 layers there: connected, answering, the weights split.

    Read on both sides: the head's llama-server holds a TCP connection to the worker, and the worker's log
    (GGML_RPC_DEBUG=1) has a set_tensor per weight it received since that connection was accepted: about
    half of the model's bytes (blocks 16-29 and the output tensor), not all of them.
    """
    assert host.check_output(f"python3 -c {shlex.quote(CHAT)} http://{ADDRESS['fleet-c']}:8080 {KEY}") == "200"
    sockets = testinfra.get_host("podman://fleet-c").check_output("ss -tnpH state established")
    assert re.search(rf"{re.escape(WORKER)}\s.*\"llama-server\"", sockets), sockets
    log = testinfra.get_host("podman://fleet-w").check_output("journalctl -u llama-rpc-server -o cat --no-pager")
    current = log.rsplit("Accepted client connection", 1)[-1]  # the running head's load
    sizes = [int(n) for n in re.findall(r"^\[set_tensor\] .*size: (\d+)$", current, re.MULTILINE)]
    model = sum(f["size"] for f in MANIFEST["models"]["sharded"])
    assert len(sizes) >= 15 and 0.3 * model < sum(sizes) < 0.9 * model, (len(sizes), sum(sizes), model)


def test_only_the_head_reaches_the_rpc_worker(host):
    """ggml-rpc-server has no authentication: fleet-a (not the head) is dropped by the worker's own table."""
    table = testinfra.get_host("podman://fleet-w").check_output("nft list table inet llm_rpc_worker")
    assert ADDRESS["fleet-c"] in table and "drop" in table, table
    probe = ("import socket, sys; s = socket.socket(); s.settimeout(3)\n"
             "try:\n    s.connect((sys.argv[1], 50052)); print('connected')\n"
             "except OSError as e:\n    print(type(e).__name__)")
    other = testinfra.get_host("podman://fleet-a").check_output(
        f"python3 -c {shlex.quote(probe)} {ADDRESS['fleet-w']}")
    assert other in ("TimeoutError", "timeout"), other  # dropped, not refused: nothing answers fleet-a


def test_a_fleet_wide_upgrade_under_load_fails_no_request(host):
    """Model A -> model B on every server, one after another, while 4 streams run through the host.

    A failure is an error, a refused or reset connection or a stream cut short; slowness is not (the client
    waits up to 15 min, as the gateway's own server timeout allows 30): on a busy 2-core CI host a queued
    12-token answer took over 120 s, which is latency, reported as p50/p99, not a failed request.
    """
    host.check_output("rm -f /root/llm-load.stop /root/llm-load.json && printf %s " + KEY + " > /root/llm-load.key")
    host.check_output("systemd-run --unit=llm-load --collect /usr/bin/python3 /srv/fleet-tests/load.py "
                         f"--url {GATEWAY} --key-file /root/llm-load.key --out /root/llm-load.json "
                         "--concurrency 4 --max-seconds 1500 --timeout 900")
    time.sleep(5)  # the load is running before the first node is drained
    try:
        rc, changed, failures = playbook.run(HERE.parent / "converge.yml", {
            "gguf_model_revision": "v2", "gguf_model_files": [], "gguf_model_quant": "Q4_1"})
    finally:
        host.check_output("touch /root/llm-load.stop")
    for _ in range(300):  # the running requests end, then it writes its summary (bounded: 5 min)
        if host.file("/root/llm-load.json").exists:
            break
        time.sleep(1)
    summary = json.loads(host.file("/root/llm-load.json").content_string)
    print(f"\nload during the upgrade: {summary['requests']} requests in {summary['seconds']:.0f} s, "
          f"{summary['failed']} failed, latency p50 {summary['latency_s']['p50']:.2f} s, "
          f"p99 {summary['latency_s']['p99']:.2f} s")
    assert rc == 0 and not failures, failures
    assert any("Point the current link" in name for name in changed)
    assert summary["requests"] >= 20, summary
    assert summary["failed"] == 0, summary["failures"]
    for name in SERVERS:  # every server serves B
        node = testinfra.get_host(f"podman://{name}")
        assert node.file("/srv/llm/models/current").linked_to.endswith("/v2")
    assert all(s["status"] == "UP" for n, s in stat(host).items() if n in BACKENDS)


def test_each_model_file_crossed_the_wan_once_for_the_whole_fleet(host):
    """The hub's request log: each model file (both revisions) was downloaded once, by the fleet's source.

    Every server reads the files' GGUF headers from the hub before the download (the sizing report runs
    before anything is fetched): growing HTTP Range reads of a few MB, bounded here by HEADER_BYTES.
    """
    per_client = defaultdict(lambda: defaultdict(int))
    for line in host.file("/var/log/llm-test-hub.jsonl").content_string.splitlines():
        entry = json.loads(line)
        if entry["method"] == "GET" and "/resolve/" in entry["path"] and entry["status"] in (200, 206):
            per_client[entry["path"].split("?")[0]][entry["client"]] += entry["bytes"]
    revisions = {path.split("/resolve/")[1].split("/")[0] for path in per_client}
    assert revisions == {MANIFEST["model_revision"], "v2"}, sorted(per_client)
    source = ADDRESS["fleet-a"]
    for path, clients in per_client.items():
        size = host.file(f"/srv/hub/www{path}").size
        assert size <= clients[source] <= size + HEADER_BYTES, (path, size, dict(clients))  # once, whole
        others = {client: sent for client, sent in clients.items() if client != source}
        assert all(sent <= HEADER_BYTES for sent in others.values()), (path, size, others)  # headers only
    total = sum(sum(clients.values()) for clients in per_client.values())
    print(f"\nWAN: {len(per_client)} files, {total} bytes from the hub for {len(SERVERS)} servers; "
          f"each file once, to {source}")
