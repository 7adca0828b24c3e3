"""A fleet behind a gateway: requests spread over the servers, and a fleet-wide model upgrade under load
without a failed request.

The gateway (HAProxy, llm_gateway role) listens on fleet-gw:8080; the servers fleet-a/b/c listen on their
addresses of the scenario's internal network. Everything here runs inside the containers: the load
generator (load.py) in the gateway's, next to HAProxy.
"""

import json
import os
import shlex
import time
from pathlib import Path

import playbook  # molecule/shared/playbook.py (on the path through pytest.ini)
import testinfra

HERE = Path(__file__).resolve().parent
SERVERS = ["fleet-a", "fleet-b", "fleet-c"]
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
    assert {name for name in servers if name not in ("BACKEND",)} == set(SERVERS), servers
    assert all(servers[name]["status"] == "UP" for name in SERVERS), servers


def test_requests_through_the_gateway_reach_every_server(host):
    before = stat(host)
    for _ in range(9):
        assert host.check_output(f"python3 -c {shlex.quote(CHAT)} {GATEWAY} {KEY}") == "200"
    after = stat(host)
    served = {name: int(after[name]["stot"]) - int(before[name]["stot"]) for name in SERVERS}
    assert all(count > 0 for count in served.values()), served


def test_a_fleet_wide_upgrade_under_load_fails_no_request(host):
    """Model A -> model B on every server, one after another, while 4 streams run through the host."""
    host.check_output("rm -f /root/llm-load.stop /root/llm-load.json && printf %s " + KEY + " > /root/llm-load.key")
    host.check_output("systemd-run --unit=llm-load --collect /usr/bin/python3 /srv/fleet-tests/load.py "
                         f"--url {GATEWAY} --key-file /root/llm-load.key --out /root/llm-load.json "
                         "--concurrency 4 --max-seconds 1500")
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
    assert all(s["status"] == "UP" for n, s in stat(host).items() if n in SERVERS)
