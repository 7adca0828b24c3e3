"""One WAN download per fleet: which host fetches the model from where. Plain Python, no Ansible imports.

gguf_model_fleet_source names, per host, the host it fetches the model from. That source downloads
from the hub (gguf_model_endpoint) and verifies as a lone host does; it then serves the verified
files read-only (roles/gguf_model/files/gguf_model_seed.py, under the Hub's URL layout) and the
hosts that name it fetch them over the LAN with the same resumable, sha256-verifying download:
only the base URL differs. A 400 GB model on 8 hosts crosses the WAN once instead of 8 times.

Every host of the play declares (a fact the others read through hostvars):
  source        its gguf_model_fleet_source ("" or itself: it downloads from the hub)
  repo, revision, dir, files   its model (gguf_model_plan) and the directory holding it
  address, port how the hosts that name it reach it (its gguf_model_fleet_address and _port)
  addresses     its own IP addresses (facts): what its source admits
  connections   its gguf_model_download_connections (the source's server gets as many threads)
  needs         whether it still lacks a verified file (the download module in check mode)
"""

import ipaddress

from ansible_collections.cpu_llm.infra.plugins.module_utils import input_checks

# A source that was left serving (the play was interrupted) stops after this long without a request.
# Followers request without pause while they download (a 64 MiB chunk per request), so a quarter of
# an hour of silence means nobody is coming.
IDLE_EXIT_SECONDS = 900
MAX_THREADS = 256  # the server's own limit (gguf_model_seed.MAX_THREADS)


class DownloadSourceError(ValueError):
    """A fleet that cannot be served as declared; the message names the variable and the fix."""


def ip_address(value):
    """The IP address in value (an IPv6 zone dropped), as a string; None when value is not one."""
    try:
        return str(ipaddress.ip_address(str(value).split("%", 1)[0]))
    except ValueError:
        return None


def url_host(address):
    """address as the host part of a URL: an IPv6 address goes in brackets."""
    ip = ip_address(address)
    return f"[{ip}]" if ip and ":" in ip else str(address)


def _port(declaration, host):
    port = declaration.get("port")
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = 0
    if not 1 <= port <= 65535:
        raise DownloadSourceError(f"gguf_model_fleet_port of {host} must be 1-65535, got {declaration.get('port')!r}")
    return port


def _files(declaration):
    """{path: (sha256, size)} of a declared model."""
    return {entry["path"]: (entry.get("sha256") or None, _size(entry)) for entry in declaration.get("files") or []}


def _size(entry):
    return None if entry.get("size") in (None, "") else int(entry["size"])


def _route(declarations, host):
    """("hub", "", why) or ("source", source host, "") for one host."""
    mine = declarations[host]
    source = mine.get("source") or ""
    if source in ("", host):
        return "hub", "", ""
    theirs = declarations.get(source)
    if theirs is None:
        return "source", source, ""  # not running any more: the play stops this host with a message
    if (theirs.get("source") or "") not in ("", source):
        raise DownloadSourceError(f"gguf_model_fleet_source of {host} is {source}, but {source} fetches from "
                                  f"{theirs['source']} itself: a source downloads from gguf_model_endpoint. Name "
                                  f"{theirs['source']} instead, or set gguf_model_fleet_source of {source} to {source}")
    wanted, offered = _files(mine), _files(theirs)
    model, their_model = f"{mine.get('repo')}@{mine.get('revision')}", f"{theirs.get('repo')}@{theirs.get('revision')}"
    if model != their_model:
        differs = f"its model {model} is not {their_model}, the one its gguf_model_fleet_source {source} has"
    else:
        missing = sorted(path for path, spec in wanted.items() if offered.get(path) != spec)
        differs = (f"{source} (its gguf_model_fleet_source) does not have {', '.join(missing[:3])}"
                   f"{' ...' if len(missing) > 3 else ''} of {model} with the same sha256 and size") if missing else ""
    if differs:
        return "hub", "", f"{host} downloads from gguf_model_endpoint itself: {differs}"
    return "source", source, ""


def _addresses(declaration):
    """The declared IP addresses of a host, IPv4 first, each once."""
    found = {ip for ip in map(ip_address, declaration.get("addresses") or []) if ip}
    return sorted(found, key=lambda ip: (ipaddress.ip_address(ip).version, ipaddress.ip_address(ip)))


def seed(declarations, source, followers):
    """What `source` serves to `followers` (hosts that lack files): its server's manifest and who may connect."""
    mine = declarations[source]
    own = _addresses(mine)
    # The followers, and the source itself (it checks that its server listens before they connect).
    allow = _addresses({"addresses": [ip for host in followers for ip in _addresses(declarations[host])] + own})
    # Listen on the address the followers use when it is one of this host's; else on all of them
    # (a name, or an address NAT puts in front of the host), the unit's IP filter admitting only `allow`.
    bind = ip_address(mine.get("address")) if ip_address(mine.get("address")) in own else ""
    connections = sum(max(int(declarations[host].get("connections") or 1), 1) for host in followers)
    files = [{"path": entry["path"], "name": entry.get("name") or entry["path"].rsplit("/", 1)[-1],
              "sha256": entry.get("sha256") or None, "size": _size(entry)}
             for entry in mine.get("files") or []]
    port = _port(mine, source)
    return {"followers": sorted(followers), "allow": allow, "bind": bind, "port": port,
            "listening": bind or "127.0.0.1",  # where the source sees its own server answer
            "manifest": {"root": mine["dir"], "repo": mine["repo"], "revision": mine["revision"], "files": files,
                         "bind": bind, "port": port, "threads": min(max(connections + 2, 4), MAX_THREADS),
                         "idle_exit_seconds": IDLE_EXIT_SECONDS}}


def plan(declarations, me):
    """This host's part in the fleet, from every running host's declaration.

    Returns {active, serving, fetch, source, base_url, host, port, note, seed}:
      active    some host of the play fetches from a source (the fleet's tasks run)
      serving   some source serves in this run (one of its followers lacks a file)
      fetch     "hub" (gguf_model_endpoint) or "source"
      source, host, port, base_url   with fetch "source": the source and where its server answers
                (base_url None when the source is no longer running)
      note      why this host downloads from the hub although it names a source (another model)
      seed      when this host serves: {followers, allow, bind, port, listening, manifest}, else None
    """
    if me not in declarations:
        raise DownloadSourceError(f"{me} has not declared its model (gguf_model role, main.yml)")
    routes = {host: _route(declarations, host) for host in declarations}
    # Checked here too (validate.yml checks it only on hosts that name a source): it goes into a URL.
    for source in sorted({source for fetch, source, _ in routes.values() if fetch == "source"} & set(declarations)):
        problems = input_checks.host(f"gguf_model_fleet_address of {source}", declarations[source].get("address"))
        if problems:
            raise DownloadSourceError(problems[0])
    needing = {}
    for host, (fetch, source, _) in routes.items():
        if fetch == "source" and source in declarations and declarations[host].get("needs"):
            needing.setdefault(source, []).append(host)
    fetch, source, note = routes[me]
    if me in needing.get(source, []) and not _addresses(declarations[me]):
        raise DownloadSourceError(f"{me} fetches the model from {source} (gguf_model_fleet_source), but its facts "
                                  f"list no IP address for {source} to admit: gather facts (the network subset), or "
                                  f"set gguf_model_fleet_source of {me} to '' to download from gguf_model_endpoint")
    result = {"active": any(route[0] == "source" for route in routes.values()), "serving": bool(needing),
              "fetch": fetch, "source": source, "base_url": None, "host": "", "port": 0, "note": note,
              "seed": seed(declarations, me, needing[me]) if me in needing else None}
    if fetch == "source" and source in declarations:
        theirs = declarations[source]
        address = str(theirs["address"])
        port = _port(theirs, source)
        result.update(host=address, port=port,
                      base_url=f"http://{url_host(address)}:{port}/{theirs['repo']}/resolve/{theirs['revision']}")
    return result
