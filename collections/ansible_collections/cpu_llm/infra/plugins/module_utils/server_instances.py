"""The llama-server instances of one host: one over every NUMA node (today's layout), or one per NUMA node.

Plain Python, no Ansible imports. The llama_server role renders, starts, health-checks, rolls back and retires
the instances listed here; the llm_gateway role makes each one a backend server and drains them by the same
names. One function for both, so the two roles cannot number or name them differently.

  single    llama-server.service on llama_server_port, numactl and threads as configured (the default).
  per_node  llama-server-node<N>.service for each NUMA node N = 0 .. nodes-1: on llama_server_port + N, under
            numactl --cpunodebind=N --membind=N (its threads run on node N and its pages, the model's copy and
            its KV cache, come from node N's memory only), with llama_server_threads // nodes threads (the
            node's physical cores when llama_server_threads is the host's, its default). Behind a gateway its
            server name is <host>-n<N>. Each instance holds a whole copy of the model: it must fit one node.

Why one unit file per node rather than a template unit (llama-server@.service): an instance differs from the
next in its port and thread count, which systemd cannot derive from %i; each file is complete (systemctl cat
shows what runs), is backed up and put back by the rollback exactly as llama-server.service is, and the
single layout stays the file it always was.
"""

import re
from collections.abc import Mapping

MODES = ("single", "per_node")
SINGLE_UNIT = "llama-server.service"
# The unit files of either layout, in /etc/systemd/system; a file named otherwise is not this role's.
UNIT_FILE = re.compile(r"llama-server(?:-node(0|[1-9][0-9]{0,2}))?\.service")
MAX_PORT = 65535


class InstancesError(ValueError):
    """Bad input; the message names the variable and the expected form."""


def node_unit(node):
    return f"llama-server-node{node}.service"


def gateway_server(host, node):
    """The backend server name of host's instance on NUMA node ``node`` (None: the single instance)."""
    return host if node is None else f"{host}-n{node}"


def numa_nodes(hardware):
    """NUMA nodes from the llm_hardware fact: None when it has not been read on this host; 1 when it was read and
    the host shows none (a kernel without NUMA has one memory domain)."""
    if not isinstance(hardware, Mapping) or "numa_nodes" not in hardware:
        return None
    value = hardware["numa_nodes"]
    if value is None:
        return 1
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        raise InstancesError(f"llm_hardware.numa_nodes must be a whole number >= 1, got {value!r}")
    return int(value)


def _whole(value, name):
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise InstancesError(f"{name} must be a whole number, got {value!r}")
    return int(str(value).strip())


def _mode(mode):
    if mode not in MODES:
        raise InstancesError(f"llama_server_instances must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def instances(mode, host, port, threads=None, nodes=None):
    """The instances to run, in node order: [{unit, node, port, gateway_server[, threads, numactl]}].

    single: one entry, node None, nothing that overrides the unit's settings (no threads, no numactl).
    per_node: one entry per node with its port, threads (when ``threads`` is given) and numactl arguments.
    nodes: the host's NUMA nodes (numa_nodes()); required for per_node.
    """
    port = _whole(port, "llama_server_port")
    if _mode(mode) == "single":
        return [{"unit": SINGLE_UNIT, "node": None, "port": port, "gateway_server": gateway_server(host, None)}]
    if nodes is None:
        raise InstancesError(f"llama_server_instances: per_node on {host}: its NUMA node count is not known "
                             "(llm_hardware.numa_nodes, read by cpu_llm.infra.llm_hardware_facts)")
    nodes = _whole(nodes, "llm_hardware.numa_nodes")
    per_node_threads = None if threads is None else max(1, _whole(threads, "llama_server_threads") // nodes)
    found = []
    for node in range(nodes):
        entry = {"unit": node_unit(node), "node": node, "port": port + node,
                 "gateway_server": gateway_server(host, node),
                 "numactl": [f"--cpunodebind={node}", f"--membind={node}"]}
        if per_node_threads is not None:
            entry["threads"] = per_node_threads
        found.append(entry)
    return found


def problems(mode, port, threads, nodes=None, rpc_workers=(), backend="cpu", gpu_offload="auto"):
    """Messages (empty: fine), each naming the variable. nodes None: the node count is not known yet (the checks
    before the hardware is read), and what depends on it is checked later."""
    if mode not in MODES:
        return [f"llama_server_instances must be one of {', '.join(MODES)}, got {mode!r}"]
    if mode == "single":
        return []
    found = []
    if rpc_workers:
        found.append("llama_server_rpc_workers must be empty with llama_server_instances: per_node (one copy of the "
                     "model per NUMA node is for a model that fits one node's memory; RPC workers are for one that "
                     "fits no host)")
    if backend not in ("cpu", "", None) and gpu_offload == "auto":
        found.append(f"llama_server_instances: per_node serves from RAM: each instance would plan the whole GPU for "
                     f"itself; set llama_server_gpu_offload: off, or llama_server_instances: single for this "
                     f"{backend} build")
    if nodes is None:
        return found
    try:
        port, threads, nodes = (_whole(port, "llama_server_port"), _whole(threads, "llama_server_threads"),
                                _whole(nodes, "llm_hardware.numa_nodes"))
    except InstancesError as exc:
        return [*found, str(exc)]
    if port + nodes - 1 > MAX_PORT:
        found.append(f"llama_server_port must be at most {MAX_PORT - nodes + 1} with llama_server_instances: per_node "
                     f"on {nodes} NUMA nodes (the instance on node N listens on llama_server_port + N, up to "
                     f"{port + nodes - 1}), got {port}")
    if threads < nodes:
        found.append(f"llama_server_threads must be at least the NUMA nodes ({nodes}) with llama_server_instances: "
                     f"per_node (each instance gets llama_server_threads / {nodes}), got {threads}")
    return found


def retired(unit_files, wanted, port):
    """The instances of the other layout (or of nodes the host no longer has) whose unit files exist:
    [{unit, node, port}] for every name in unit_files that is one of this role's units and not in wanted.

    unit_files: file names found in /etc/systemd/system; wanted: instances(); port: llama_server_port (a retired
    instance's port, for the health check when a rollback starts it again).
    """
    port = _whole(port, "llama_server_port")
    keep = {entry["unit"] for entry in wanted}
    found = []
    for name in unit_files or []:
        match = UNIT_FILE.fullmatch(str(name))
        if not match or name in keep:
            continue
        node = None if match.group(1) is None else int(match.group(1))
        found.append({"unit": name, "node": node, "port": port + (node or 0)})
    return sorted(found, key=lambda e: -1 if e["node"] is None else e["node"])
