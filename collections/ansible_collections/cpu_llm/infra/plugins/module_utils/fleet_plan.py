"""The fleet plan: what one llm_servers host runs and where the others reach it, decided once per run.

Plain Python, no Ansible imports. site.yml's first play, once every host's inputs passed their checks, sets it
on each server as the fact llm_server_plan (cpu_llm.infra.llm_server_plan), from that host's own settings and
hardware. The roles then read the plan instead of another host's role variables:

  llama_server   runs, health-checks and retires plan.instances (its own computation only when the role runs
                 without site.yml, through the same function);
  llm_gateway    makes every instance of every server a backend (name, address, port, maxconn), and drains a
                 node by its instances' names;
  site.yml       compares a host's listeners (the instances' ports) with its other roles' ports.

A server's plan (a dict; every value plain data, so it reads the same in hostvars and in a test):

  host         the inventory name
  mode         llama_server_instances (single, per_node)
  address      where a gateway reaches it: llm_gateway_backend_address, else ansible_host, else host
  maxconn      llm_gateway_backend_maxconn (None: unset)
  listen       llama_server_host, the address its llama-server binds
  api_key      whether its llama-server requires an API key (llama_server_api_key set; never the key)
  numa_nodes   its NUMA nodes as read (llm_hardware.numa_nodes; None when this run has not read them)
  threads      llama_server_threads, the whole host's
  instances    server_instances.instances(): [{unit, node, port, gateway_server[, threads, numactl]}]
"""

from . import server_instances


class PlanError(ValueError):
    """Bad input; the message names the variable and the expected form."""


def _maxconn(value):
    if value in (None, "", 0):
        return None
    if isinstance(value, bool) or not str(value).isdigit():
        return value  # the gateway's backends check names it (llm_gateway_backend_maxconn)
    return int(value)


def server_plan(host, mode, port, threads, hardware=None, address=None, maxconn=None, listen="127.0.0.1",
                api_key=False):
    """One server's plan (see the module's docstring). mode, port, threads: its llama_server_instances,
    llama_server_port and llama_server_threads; hardware: its llm_hardware fact ({} or None: not read);
    listen: llama_server_host; api_key: whether llama_server_api_key is set."""
    mode = mode or "single"
    try:
        nodes = server_instances.numa_nodes(hardware)
        threads = None if threads in (None, "") else int(str(threads).strip())
        found = server_instances.instances(mode, host, port, threads, nodes if mode == "per_node" else None)
    except (server_instances.InstancesError, ValueError) as exc:
        raise PlanError(f"{host}: {exc}") from None
    return {"host": host, "mode": mode, "address": str(address or host), "maxconn": _maxconn(maxconn),
            "listen": str(listen), "api_key": api_key in (True, "true", "True"), "numa_nodes": nodes,
            "threads": threads, "instances": found}


def gateway_server_names(base, plan):
    """A node's backend server names for drain and ready: base (llm_gateway_server) for its single instance,
    <base>-n<N> for each NUMA node N of a per_node plan; [base] without a plan (the role run on its own)."""
    if not plan:
        return [base]
    return [server_instances.gateway_server(base, entry["node"]) for entry in plan["instances"]]


def listener_ports(plan):
    """The ports a server's llama-server instances listen on, in node order."""
    return [entry["port"] for entry in plan["instances"]]
