"""Do the project's listeners on one host collide? Plain Python, no Ansible imports.

A host can be a server, a gateway, an RPC worker and the fleet's model source at once; each role checks its
own port, and only here are they compared. Two listeners collide when they share a TCP port and their
addresses overlap: the same address, or either one a wildcard (0.0.0.0, ::, empty), which takes the port on
every address (bind(2) then fails with EADDRINUSE, whichever starts second). A host name is not resolved
here: it counts as overlapping every address, so a collision is never missed.

listeners: [{"name": the variable, "address": where it listens, "ports": [int, ...], "what": optional text}].
"""

import ipaddress

WILDCARDS = ("", "0.0.0.0", "::", "*")  # noqa: S104 (recognised, not bound)


def _address(value):
    text = str(value or "").strip().strip("[]")
    if text in WILDCARDS:
        return None  # every address
    if text == "localhost":
        return ipaddress.ip_address("127.0.0.1")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None  # a name: may be any of the host's addresses


def _overlap(a, b):
    return a is None or b is None or a == b


def _ports(listener):
    ports = listener.get("ports") or []
    return [int(p) for p in ports]


def _label(listener):
    ports = _ports(listener)
    span = str(ports[0]) if len(ports) == 1 else f"{ports[0]}-{ports[-1]}"
    what = f", {listener['what']}" if listener.get("what") else ""
    return f"{listener['name']} ({span} on {listener.get('address') or '*'}{what})"


def conflicts(host, listeners):
    """Messages, one per colliding pair, naming both variables and the port; empty when none collide."""
    found = []
    listeners = [entry for entry in listeners if _ports(entry)]
    for i, first in enumerate(listeners):
        for second in listeners[i + 1:]:
            shared = sorted(set(_ports(first)) & set(_ports(second)))
            if shared and _overlap(_address(first.get("address")), _address(second.get("address"))):
                found.append(
                    f"{_label(first)} and {_label(second)} would both listen on port {shared[0]} of {host}: "
                    f"give one of them another port (or both distinct addresses).")
    return found
