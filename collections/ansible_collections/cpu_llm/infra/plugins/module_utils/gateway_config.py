"""The gateway's (roles/llm_gateway) backends and input rules, in plain Python.

No Ansible imports. default_backends() builds llm_gateway_backends from the servers' fleet plans; the *_problems
functions return messages (empty: fine), each naming the variable and the expected form, never a key.
Every value checked here is written into haproxy.cfg or a map file, whose syntax splits on spaces and
treats # " ' \\ and $ specially: what passes needs no quoting there.
"""

import ipaddress
import re

from ansible_collections.cpu_llm.infra.plugins.module_utils import input_checks

# A backend server's name: one word for the runtime API (set server <backend>/<name> ...) and the logs.
SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# An API key's name, logged with each request it authorizes (never the key).
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                       r"[A-Za-z0-9])?)*\.?")
# Characters a path may hold in haproxy.cfg without quoting.
CONFIG_PATH = re.compile(r"/[A-Za-z0-9._/+@:,=-]+")
BACKEND_KEYS = {"name", "address", "port", "maxconn"}
KEY_MIN, KEY_MAX = 16, 512


def default_backends(hosts, plans, refused=()):
    """One backend per llama-server instance of each server, from its fleet plan (module_utils/fleet_plan.py,
    the llm_server_plan fact site.yml's first play sets): named after the instance (the host, or <host>-n<N>
    for NUMA node N of a per_node server), at the plan's address, on the instance's port; the plan's maxconn
    when set.

    hosts: the server names in order; plans: each one's plan in the same order (empty: none was made);
    refused: hosts whose inputs this play refused (no plan, and the run stops before any change): left out.
    """
    hosts, plans = list(hosts or []), list(plans or [])
    if len(hosts) != len(plans):
        raise ValueError(f"{len(hosts)} servers but {len(plans)} plans: one plan per server, in their order")
    backends = []
    for host, plan in zip(hosts, plans, strict=True):
        if not plan and host in (refused or ()):
            continue
        if not plan:
            raise ValueError(f"{host} has no llm_server_plan: site.yml's first play sets it on the servers it runs "
                             "on once their inputs pass (is this play not site.yml, or is the host outside --limit "
                             "or llm_hosts?); list llm_gateway_backends to run the gateway without it")
        for instance in plan["instances"]:
            entry = {"name": instance["gateway_server"], "address": plan["address"], "port": instance["port"]}
            if plan.get("maxconn") is not None:
                entry["maxconn"] = plan["maxconn"]
            backends.append(entry)
    return backends


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _loopback(address):
    text = str(address or "").strip("[]")
    return text in LOOPBACK or text.startswith("127.")


def exposure_problems(plans, gateway_host, bind_address, client_keys):
    """A gateway must not publish a llama-server that has no API key: such a server listens on loopback only
    (the llama_server role allows no other address without a key), so only a gateway on the same host reaches
    it, and one bound beyond loopback without client keys (llm_gateway_api_keys) would serve it to everyone who
    reaches the gateway. (A gateway key for the nodes without client keys is refused on its own.)

    plans: the servers' fleet plans (module_utils/fleet_plan.py; empty ones are skipped); gateway_host: the
    gateway's inventory name; client_keys: whether llm_gateway_api_keys is set.
    """
    if client_keys or _loopback(bind_address):
        return []
    found = []
    for plan in plans or []:
        if not plan or plan.get("api_key") or plan.get("host") != gateway_host or not _loopback(plan.get("listen")):
            continue
        found.append(f"llm_gateway_api_keys must be set when llm_gateway_bind_address is {bind_address}: "
                     f"{gateway_host}'s own llama-server has no API key (llama_server_api_key) and listens on "
                     f"{plan['listen']} only, and the gateway would serve it to everyone who reaches "
                     f"{bind_address}; set client keys, bind the gateway to loopback, or give the server a key")
    return found


def client_key_problems(api_keys, backend_key):
    """A client key (llm_gateway_api_keys) must differ from the key the nodes accept (llm_gateway_backend_api_key):
    whoever holds it could call a node directly, past the gateway's limits and log. Never shows a key."""
    if not backend_key or not isinstance(api_keys, list):
        return []
    return [f"llm_gateway_api_keys[{i}] ({entry.get('name')}) is the key the nodes accept "
            "(llm_gateway_backend_api_key): a client holding it could call a node directly, past the gateway; "
            "give clients keys of their own"
            for i, entry in enumerate(api_keys) if isinstance(entry, dict) and entry.get("key") == backend_key]


def _integer(value):
    """value as an int when it is a whole number (an int, or digits from an INI inventory), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def address_problem(value, what):
    """'' when value is an IP address or a host name HAProxy can connect to; else why not."""
    if not isinstance(value, str) or not value:
        return f"{what} must be an IP address or a host name, got {value!r}"
    if value.startswith("[") and value.endswith("]"):
        return f"{what} must be an IPv6 address without brackets (e.g. fd00::5), got '{value}'"
    if "%" in value:
        return f"{what} must be an address without a %zone (a link-local address needs one: use another), got '{value}'"
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        if HOST_NAME.fullmatch(value) and not value.replace(".", "").isdigit():
            return ""
        return f"{what} must be an IP address or a host name (e.g. 10.0.0.5, fd00::5, llm-1.example.net), got {value!r}"
    if ip.is_unspecified or ip.is_multicast:
        # 0.0.0.0 means 'the address the client connected to' in a server line: a transparent proxy, not a node.
        return f"{what} must be the address of one node, got '{value}'"
    return ""


def backends_problems(value, name="llm_gateway_backends"):
    """A list of {name, address, port[, maxconn]}: names unique words, addresses IPs or host names, ports
    1-65535, each (address, port) once. An empty list passes (the role's main tasks insist)."""
    if value is None or value == []:
        return []
    if not isinstance(value, list):
        return [f"{name} must be a list of {{name, address, port}}, e.g. "
                "[{name: llm-1, address: 10.0.0.5, port: 8080}]"]
    found, names, places = [], set(), set()
    for i, entry in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(entry, dict):
            found.append(f"{where} must be a mapping {{name, address, port}}, got {type(entry).__name__}")
            continue
        unknown = sorted(set(entry) - BACKEND_KEYS)
        if unknown:
            found.append(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: name, address, port, maxconn")
        server = entry.get("name")
        if not isinstance(server, str) or not SERVER_NAME.fullmatch(server):
            found.append(f"{where}.name must be letters, digits and . _ - (up to 100, one word for HAProxy's runtime "
                         f"API, e.g. llm-1 or llm-1-8081), got {server!r}")
        elif server in names:
            found.append(f"{where}.name '{server}' is used twice: server names must be unique")
        else:
            names.add(server)
            where = f"{name}[{i}] ({server})"
        problem = address_problem(entry.get("address"), f"{where}.address")
        if problem:
            found.append(problem)
        port = _integer(entry.get("port"))
        if port is None or not 1 <= port <= 65535:
            found.append(f"{where}.port must be 1-65535, got {entry.get('port')!r}")
        elif not problem:
            place = (str(entry["address"]).lower(), port)
            if place in places:
                found.append(f"{where}: {entry['address']}:{port} is listed twice (one llama-server counted as two)")
            places.add(place)
        if "maxconn" in entry:
            maxconn = _integer(entry["maxconn"])
            if maxconn is None or not 1 <= maxconn <= 100000:
                found.append(f"{where}.maxconn must be 1-100000 (concurrent requests sent to it; its slots), "
                             f"got {entry['maxconn']!r}")
    return found


def api_keys_problems(value, name="llm_gateway_api_keys"):
    """A list of {name, key}: names unique words (they are logged), keys printable ASCII without spaces,
    16-512 characters, not starting with '#', each used once. Never shows a key, its length or which
    characters are wrong."""
    if value is None or value == []:
        return []
    if not isinstance(value, list):
        return [f"{name} must be a list of {{name, key}} (the key from Ansible Vault), e.g. "
                "[{name: alice, key: '{{ vault_alice_key }}'}]"]
    found, names, keys = [], set(), {}
    for i, entry in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(entry, dict):
            found.append(f"{where} must be a mapping {{name, key}} (the value is not shown)")
            continue
        unknown = sorted(set(entry) - {"name", "key"})
        if unknown:
            found.append(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: name, key")
        label = entry.get("name")
        if not isinstance(label, str) or not KEY_NAME.fullmatch(label):
            found.append(f"{where}.name must be letters, digits and . _ @ - (up to 64; it is logged with each "
                         f"request, the key never), got {label!r}")
        elif label in names:
            found.append(f"{where}.name '{label}' is used twice: key names must be unique")
        else:
            names.add(label)
            where = f"{name}[{i}] ({label})"
        key = entry.get("key")
        problems = input_checks.secret(f"{where}.key", key, KEY_MIN, KEY_MAX, required=True)
        if not problems and key.startswith("#"):
            problems = [f"{where}.key must not start with '#' (HAProxy reads that line of the map file as a comment; "
                        "the value is not shown)"]
        found += problems
        if isinstance(key, str) and key:
            if key in keys:
                found.append(f"{where}.key is the same as {keys[key]}'s (the value is not shown): give each client "
                             "its own key")
            keys.setdefault(key, where)
    return found


def config_path_problems(value, name, required=True):
    """An absolute, normalized path that haproxy.cfg can hold unquoted."""
    found = input_checks.path(name, value, required=required)
    if not found and value and not CONFIG_PATH.fullmatch(value):
        found.append(f"{name} must be a path of letters, digits and . _ / + @ : , = - only (haproxy.cfg splits on "
                     f"spaces and treats # \" ' \\ $ specially), got '{value}'")
    return found


def bind_address_problems(value, name):
    """An IPv4 or IPv6 address to listen on (0.0.0.0 and :: for every address)."""
    try:
        ipaddress.ip_address(value if isinstance(value, str) and "%" not in value else "")
    except ValueError:
        return [f"{name} must be an IP address to listen on (0.0.0.0 or :: for every address, 127.0.0.1 for "
                f"this host only), got {value!r}"]
    return []
