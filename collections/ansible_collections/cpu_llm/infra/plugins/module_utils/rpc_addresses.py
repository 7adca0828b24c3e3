"""Addresses for llama.cpp's RPC backend: where a worker listens, who may reach it, what the head connects to.

Plain Python, no Ansible imports.

ggml-rpc-server has no authentication and no encryption (tools/rpc/README.md: "Never run the RPC server
on an open network"): whoever reaches its port can allocate the worker's memory, read and write its
tensors and run graphs on it. So a worker listens on one private address of its own, and only the
head's addresses may reach it.

- `is_private(address)`: RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 4193 (fc00::/7) or loopback.
  Not Python's `ipaddress.is_private`, which also counts link-local, documentation and reserved ranges.
- `on_host(address, host_addresses)`: the address is one of the host's (Ansible's
  all_ipv4_addresses/all_ipv6_addresses, which leave out loopback: loopback is always on the host).
- `listen_address(name, value, host_addresses)`: messages for a worker's listen address.
- `allowed_sources(name, values)` and `source_networks(values)`: the head's addresses (or private
  networks), checked, then normalised and split by family for the firewall and IPAddressAllow=.
- `rpc_endpoints(name, values)`: messages for the head's `--rpc host:port,...` list.

The transport at the pinned commit (llama_cpp_version 0c1e57098bba) is IPv4 only:
ggml/src/ggml-rpc/transport.cpp opens AF_INET sockets, socket_t::create_server reads the host with
inet_addr and socket_t::connect resolves it with gethostbyname; ggml-rpc.cpp's parse_endpoint splits
"host:port" at the first ':'. An IPv6 listen address or an "[addr]:port" endpoint cannot work there,
and is refused saying so; the firewall rules handle both families anyway.
"""

import ipaddress
import re

PRIVATE = {
    "RFC 1918": tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    "RFC 4193": (ipaddress.ip_network("fc00::/7"),),
    "loopback": (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
}
PRIVATE_HINT = "RFC 1918 10/8, 172.16/12, 192.168/16; RFC 4193 fc00::/7; or loopback"
PRIVATE_HINT_IPV4 = "RFC 1918 10/8, 172.16/12, 192.168/16; or loopback 127/8"
IPV4_ONLY = ("ggml-rpc-server at the pinned llama.cpp speaks IPv4 only (ggml-rpc transport.cpp: AF_INET sockets, "
             "inet_addr/gethostbyname; parse_endpoint splits host:port at the first ':')")
# RFC 1123 host names, as gethostbyname would look them up.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")


def parse_ip(value):
    """The address value spells exactly (no zone index, no leading zeros), else None."""
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def private_kind(network):
    """'RFC 1918', 'RFC 4193' or 'loopback' for an address or network inside one of those, else None."""
    network = ipaddress.ip_network(network)
    for kind, ranges in PRIVATE.items():
        if any(network.version == r.version and network.subnet_of(r) for r in ranges):
            return kind
    return None


def is_private(address):
    return private_kind(address) is not None


def on_host(address, host_addresses):
    """Whether address is one of host_addresses (strings; an IPv6 zone index '%eth0' is ignored)."""
    address = ipaddress.ip_address(address)
    if address.is_loopback:
        return True
    return any(parse_ip(str(a).split("%", 1)[0]) == address for a in host_addresses or [])


def loopback_head(address, worker, head, same_machine):
    """Messages for a worker bound to loopback whose head (llm_rpc_head) is another machine: the head would
    connect to its own loopback, where no worker listens, and its llama-server would abort at start.
    same_machine: whether the head's inventory host is this machine (the same name or ansible_host)."""
    parsed = parse_ip(str(address))
    if parsed is None or not parsed.is_loopback or not head or same_machine:
        return []
    return [f"llm_rpc_worker_address {address} on {worker} is loopback, which only {worker} itself reaches, but "
            f"llm_rpc_head names {head}, another host: set llm_rpc_worker_address to a private address of {worker} "
            f"that {head} reaches"]


def listen_address(name, value, host_addresses, ipv4_only=True):
    """Messages for the address a worker binds: one private address of this host (IPv4 at this commit)."""
    if value is None or value == "":
        return [f"{name} is required: the private address of this host the head connects to (e.g. 10.0.0.11)"]
    address = parse_ip(value)
    if address is None:
        return [f"{name} must be an IP address of this host (e.g. 10.0.0.11), got '{value}'"]
    if address.is_unspecified:
        return [f"{name} is {value}, which listens on every address of the host; ggml-rpc-server has no "
                "authentication: name one private address of this host"]
    if ipv4_only and address.version == 6:
        return [f"{name} is {value}, an IPv6 address: {IPV4_ONLY}; use this host's private IPv4 address"]
    if not is_private(address):
        hint = PRIVATE_HINT_IPV4 if ipv4_only else PRIVATE_HINT
        return [f"{name} is {value}, not a private address ({hint}); ggml-rpc-server has no "
                "authentication and no encryption and must never face an open network"]
    if not on_host(address, host_addresses):
        have = ", ".join(str(a) for a in host_addresses or []) or "none read"
        return [f"{name} is {value}, which is not an address of this host (its addresses: {have}); "
                "ggml-rpc-server could not listen on it"]
    return []


def _network(value):
    """(network, None) for an address or a network in CIDR form, or (None, reason)."""
    if not isinstance(value, str) or not value:
        return None, "must be an IP address or network like 10.0.0.10 or 10.0.0.0/24"
    try:
        return ipaddress.ip_network(value, strict=True), None
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return None, "must be an IP address or network like 10.0.0.10 or 10.0.0.0/24"
        return None, f"has host bits set; did you mean {loose}?"


def allowed_sources(name, values):
    """Messages for the addresses or networks that may reach the worker: at least one, each private."""
    if not isinstance(values, (list, tuple)) or not values:
        return [f"{name} must list the address(es) the head's llama-server connects from (e.g. [10.0.0.10]): "
                "nothing else may reach ggml-rpc-server, which has no authentication"]
    found = []
    for index, value in enumerate(values):
        network, reason = _network(value)
        if network is None:
            found.append(f"{name}[{index}] {reason}, got '{value}'")
        elif not is_private(network):
            found.append(f"{name}[{index}] is {value}, not a private address or network ({PRIVATE_HINT})")
    return found


def source_networks(values):
    """{'ipv4': [...], 'ipv6': [...]}: the allowed sources as networks, overlaps merged, /32 and /128 as
    plain addresses (the forms nft sets and systemd's IPAddressAllow= both take). Checked values only."""
    result, networks = {}, [ipaddress.ip_network(v) for v in values or []]
    for version, key in ((4, "ipv4"), (6, "ipv6")):
        merged = ipaddress.collapse_addresses(n for n in networks if n.version == version)
        result[key] = [str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in merged]
    return result


def rpc_endpoints(name, values):
    """Messages for the head's RPC workers, "host:port" each: a private IPv4 address or a host name."""
    if not isinstance(values, (list, tuple)):
        return [f"{name} must be a list of 'host:port' strings (e.g. ['10.0.0.11:50052']), got {values!r}"]
    found, seen = [], set()
    for index, value in enumerate(values):
        where = f"{name}[{index}]"
        if not isinstance(value, str):
            found.append(f"{where} must be a 'host:port' string, got {type(value).__name__}")
            continue
        if value.startswith("[") or value.count(":") > 1:
            found.append(f"{where} is '{value}', an IPv6 endpoint: {IPV4_ONLY}; use the worker's IPv4 address")
            continue
        match = re.fullmatch(r"([^:]+):([0-9]{1,5})", value)
        if not match or not 1 <= int(match.group(2)) <= 65535:
            found.append(f"{where} must be 'host:port' with a port 1-65535 (e.g. 10.0.0.11:50052), got '{value}'")
            continue
        host = match.group(1)
        address = parse_ip(host)
        if address is None:
            # gethostbyname reads '10.1' or '010.0.0.1' as an address (inet_aton): no dotted numbers but addresses.
            if re.fullmatch(r"[0-9.]+", host) or not _HOST_NAME.fullmatch(host) or len(host) > 253:
                found.append(f"{where} must be 'host:port' with an IPv4 address or a host name as host, got '{value}'")
                continue
        elif address.is_unspecified or not is_private(address):
            found.append(f"{where} is '{value}', not a private address ({PRIVATE_HINT}): RPC carries the model's "
                         "weights and activations unauthenticated and unencrypted")
            continue
        if value in seen:
            found.append(f"{where} '{value}' is listed twice")
        seen.add(value)
    return found
