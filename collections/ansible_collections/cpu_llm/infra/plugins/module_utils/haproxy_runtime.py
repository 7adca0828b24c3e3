"""HAProxy's runtime API (the "stats socket") in plain Python: one command per connection, and the
parsers for what the gateway reads back (`show stat`, `show servers state`).

No Ansible imports: the llm_haproxy_server module and the tests use it. The protocol is HAProxy's
non-interactive CLI mode (management guide, "Unix Socket commands"): connect to the UNIX socket,
send one command line, read until HAProxy closes the connection. A command that succeeds without
output answers an empty line; errors answer a sentence ("No such server.").

Both parsers read the column names from the header line, so columns HAProxy adds in later versions
(3.0 has more `show stat` fields than 2.6) do not shift anything.
"""

import csv
import io
import re
import socket
import time

# A backend or server name the CLI reads as one word: it splits on spaces, ';' separates commands,
# '/' separates backend and server, '\' escapes.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]*")

# srv_admin_state bits (management guide, "show servers state"), by the state they mean.
MAINT_FLAGS = {0x01: "forced maintenance", 0x02: "maintenance inherited from a tracked server",
               0x04: "disabled in the configuration", 0x20: "address resolution failed"}
DRAIN_FLAGS = {0x08: "forced drain", 0x10: "drain inherited from a tracked server"}
STATES = ("ready", "drain", "maint")
# show stat's status of a server that takes traffic with every check passing ("no check": checks off).
UP = ("UP", "no check")


class HaproxyError(Exception):
    """The socket is unreachable, or HAProxy refused or did not understand a command."""


def command(path, line, timeout=10.0):
    """Send one command to the runtime socket at path and return HAProxy's whole answer as text."""
    if "\n" in line or ";" in line:
        raise ValueError(f"one command without ';' or newline expected, got {line!r}")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except FileNotFoundError as exc:
        raise HaproxyError(f"no HAProxy runtime socket at {path}: is haproxy running with this configuration?") \
            from exc
    except PermissionError as exc:
        raise HaproxyError(f"permission denied on {path}: the socket is for root and the haproxy group") from exc
    except OSError as exc:
        raise HaproxyError(f"HAProxy runtime socket {path}: {exc}") from exc
    return b"".join(chunks).decode("utf-8", "replace")


def _number(value):
    return int(value) if re.fullmatch(r"-?\d+", value or "") else value


def parse_stat(text):
    """`show stat` (CSV, header '# pxname,svname,...') -> one dict per line, numbers as int, empty as ''.

    Raises HaproxyError when the answer is not a stat dump (e.g. 'No such proxy.').
    """
    if not text.startswith("# pxname,"):
        raise HaproxyError(f"unexpected answer to show stat: {text.strip()[:200]!r}")
    rows = csv.DictReader(io.StringIO(text[2:]))
    return [{key: _number(value) for key, value in row.items() if key} for row in rows if row.get("pxname")]


def parse_servers_state(text):
    """`show servers state` (format version 1: a version line, a '# be_id be_name ...' header, then
    space-separated values) -> one dict per server, numbers as int."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1" or len(lines) < 2 or not lines[1].startswith("# be_id "):
        raise HaproxyError(f"unexpected answer to show servers state: {text.strip()[:200]!r}")
    header = lines[1][2:].split()
    return [{key: _number(value) for key, value in zip(header, line.split(), strict=False)}
            for line in lines[2:] if not line.startswith("#")]


def admin_state(flags):
    """srv_admin_state's bit mask -> 'maint', 'drain' or 'ready', and the reasons behind it."""
    maint = [why for bit, why in MAINT_FLAGS.items() if flags & bit]
    if maint:
        return "maint", maint
    drain = [why for bit, why in DRAIN_FLAGS.items() if flags & bit]
    return ("drain", drain) if drain else ("ready", [])


def _check_names(backend, server):
    for what, value in (("backend", backend), ("server", server)):
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise ValueError(f"{what} name must be letters, digits and . _ : @ + - (one word), got {value!r}")


def server_state(path, backend, server, run=command):
    """The server's state as the gateway sees it now.

    Returns {backend, server, state (ready/drain/maint), reasons, status (show stat's: UP, DOWN, DRAIN,
    MAINT, 'DOWN 1/2' while a check changes it, ...), check_status (L7OK, L4CON, ...), sessions (requests
    being served now: scur), queued (qcur), address}.
    """
    _check_names(backend, server)
    answer = run(path, f"show servers state {backend}")
    if answer.strip() in ("Can't find backend.", "No such backend.", "No such proxy."):
        raise HaproxyError(f"no backend {backend!r} in the running HAProxy configuration")
    states = [row for row in parse_servers_state(answer) if row.get("be_name") == backend]
    stats = [row for row in parse_stat(run(path, f"show stat {backend} 4 -1")) if row.get("pxname") == backend]
    state = next((row for row in states if row.get("srv_name") == server), None)
    stat = next((row for row in stats if row.get("svname") == server), None)
    if state is None or stat is None:
        known = ", ".join(str(row.get("srv_name")) for row in states) or "none"
        raise HaproxyError(f"no server {server!r} in backend {backend!r} (its servers: {known})")
    name, reasons = admin_state(int(state.get("srv_admin_state") or 0))
    return {"backend": backend, "server": server, "state": name, "reasons": reasons,
            "status": str(stat.get("status", "")), "check_status": str(stat.get("check_status", "")),
            "sessions": int(stat.get("scur") or 0), "queued": int(stat.get("qcur") or 0),
            "address": str(stat.get("addr", ""))}


def set_state(path, backend, server, state, run=command):
    """`set server <backend>/<server> state <ready|drain|maint>`; raises HaproxyError with HAProxy's answer
    when it refuses."""
    _check_names(backend, server)
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    answer = run(path, f"set server {backend}/{server} state {state}").strip()
    if answer:
        raise HaproxyError(f"HAProxy refused 'set server {backend}/{server} state {state}': {answer}")


def drained(current):
    """No request is being served or waits in the server's own queue."""
    return current["sessions"] == 0 and current["queued"] == 0


def up(current):
    """Ready and every health check passing: the server takes new requests."""
    return current["state"] == "ready" and current["status"] in UP


def wait(read, done, timeout, interval=1.0, now=time.monotonic, sleep=time.sleep):
    """Poll read() until done(state) or timeout seconds passed.

    Returns (last state, seconds waited, timed out?); now and sleep are injectable for tests.
    """
    start = now()
    while True:
        current = read()
        waited = round(now() - start, 1)
        if done(current):
            return current, waited, False
        if waited >= timeout:
            return current, waited, True
        sleep(min(interval, max(timeout - waited, 0.05)))
