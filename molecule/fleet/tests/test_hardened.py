"""fleet-b's service, with an API key and two slots: the key enforced, kept out of the command line and the logs.

Run on fleet-b itself, against its address on the fleet's network (where the gateway reaches it).
"""

import json
import shlex

import generation  # molecule/shared/generation.py (on the path through pytest.ini)

KEY = "fleet-test-key-0123456789"  # host_vars/fleet-b.yml
BASE = "http://10.89.64.12:8080"  # host_vars/fleet-b.yml: llama_server_host
KEY_FILE = "/etc/llama-server/api-key"

testinfra_hosts = ["ansible://fleet-b"]

REQUEST = """
import json, sys, urllib.request, urllib.error
url, key = sys.argv[1], sys.argv[2]
if key == "@file":  # read the real key here, so no command line (or the journal logging it) carries it
    key = open("/etc/llama-server/api-key").read().strip()
chat = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
body = json.dumps(chat).encode() if "chat" in url else None
headers = {"Content-Type": "application/json"}
if key:
    headers["Authorization"] = "Bearer " + key
try:
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=120) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
"""


def status(host, path, key=""):
    """HTTP status of a request made inside the server; key '@file' sends the service's own key."""
    url = BASE + path
    return int(host.check_output(f"python3 -c {shlex.quote(REQUEST)} {shlex.quote(url)} {shlex.quote(key)}"))


def test_api_requires_the_key_and_health_stays_open(host):
    assert status(host, "/v1/chat/completions") == 401
    assert status(host, "/v1/chat/completions", "wrong-key-wrong-key") == 401
    assert status(host, "/v1/chat/completions", "@file") == 200
    assert status(host, "/health") == 200


def test_key_file_is_root_owned_and_readable_by_the_service_group_only(host):
    key_file = host.file(KEY_FILE)
    assert key_file.user == "root" and key_file.group == "llama" and key_file.mode == 0o640
    assert key_file.content_string == KEY


def test_key_is_not_on_the_command_line_nor_in_the_journal(host):
    pid = host.check_output("systemctl show --property MainPID --value llama-server.service")
    cmdline = host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    assert "--api-key-file" in cmdline and KEY not in cmdline
    assert KEY not in host.check_output("ps -eo args")
    assert KEY not in host.check_output("journalctl --no-pager -o cat")
    assert KEY not in host.check_output("systemctl cat llama-server.service")


def test_two_slots_take_four_concurrent_requests(host):
    script = """
import json, sys, threading, urllib.request
key = open("/etc/llama-server/api-key").read().strip()
body = json.dumps({"messages": [{"role": "user", "content": "Count to three."}], "max_tokens": 8}).encode()
codes = []
def ask():
    req = urllib.request.Request(sys.argv[1] + "/v1/chat/completions", data=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
    with urllib.request.urlopen(req, timeout=120) as r:
        codes.append(r.status)
threads = [threading.Thread(target=ask) for _ in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps(codes))
"""
    assert json.loads(host.check_output(f"python3 -c {shlex.quote(script)} {BASE}")) == [200] * 4


def test_metrics_endpoint_serves_prometheus_text(host):
    assert status(host, "/metrics", "@file") == 200


def test_service_with_a_key_serves_llama_cpps_own_greedy_output(host):
    served, direct, details = generation.faithful(host.check_output, base=BASE, key_file=KEY_FILE)
    assert served.strip() and served == direct, details
