"""Read-only audit of what the OS cannot fix: memory population, DIMM speed, NUMA mode, SMT.

Plain Python, no Ansible imports. Input: the llm_hardware fact (plugins/modules/llm_hardware_facts.py),
including its per-slot `dimms`. Output: findings, each with what was seen and the concrete action.
"""

from collections import defaultdict


def _socket_label(socket, sockets_in_order):
    return f"socket {sockets_in_order.index(socket)}" if socket is not None else "the board"


def _finding(key, severity, seen, action):
    return {"check": key, "severity": severity, "seen": seen, "action": action}


def _channel_findings(hw):
    """Empty channels by name where the slot names tell them, by count otherwise."""
    out = []
    dimms = hw.get("dimms") or []
    channels, channels_max = hw.get("memory_channels"), hw.get("memory_channels_max")
    named = [d for d in dimms if d.get("channel") is not None]
    if dimms and len(named) == len(dimms):
        by_socket = defaultdict(lambda: defaultdict(list))
        for dimm in dimms:
            by_socket[dimm.get("socket")][dimm["channel"]].append(dimm)
        sockets = sorted(by_socket, key=lambda s: (s is None, str(s)))
        for socket in sockets:
            empty = sorted(ch for ch, slots in by_socket[socket].items() if not any(d.get("size_bytes") for d in slots))
            if empty:
                names = ", ".join(ch.split("/")[-1] if "/" in ch else ch for ch in empty)
                where = _socket_label(socket, sockets)
                out.append(_finding(
                    "memory_channels", "warning",
                    f"{len(empty)} memory channel(s) on {where} have no DIMM: {names}",
                    f"populate channel(s) {names} on {where} (one DIMM each, same size and speed as the others): "
                    "every channel adds its full bandwidth to every token"))
        if out or not (channels and channels_max and channels < channels_max):
            return out
    if channels and channels_max and channels < channels_max:
        out.append(_finding(
            "memory_channels", "warning", f"{channels} of {channels_max} memory channels populated",
            f"populate the {channels_max - channels} empty channel(s), one DIMM each, following the board manual's "
            "population order: tokens/s scale with populated channels"))
    return out


def _speed_findings(hw):
    speed, rated = hw.get("memory_speed_mts"), hw.get("memory_speed_rated_mts")
    if speed and rated and speed < rated:
        return [_finding(
            "memory_speed", "warning", f"DIMMs run at {speed} MT/s, rated {rated} MT/s",
            f"set the memory speed to {rated} MT/s in the BIOS (or 'Auto' with the performance profile); if the CPU "
            "or the DIMMs-per-channel cannot run it, this is the ceiling")]
    return []


def _population_findings(hw):
    dimms = [d for d in hw.get("dimms") or [] if d.get("size_bytes")]
    out = []
    sizes = {d["size_bytes"] for d in dimms}
    if len(sizes) > 1:
        gib = sorted(s >> 30 for s in sizes)
        out.append(_finding(
            "dimm_sizes", "warning", f"DIMMs of different sizes: {', '.join(f'{g} GB' for g in gib)}",
            "use DIMMs of one size in every channel: mixed sizes leave part of the memory outside the channel "
            "interleave, and pages there are read at a fraction of the bandwidth"))
    per_socket = defaultdict(int)
    for dimm in dimms:
        per_socket[dimm.get("socket")] += 1
    if len(per_socket) > 1 and len(set(per_socket.values())) > 1:
        counts = ", ".join(f"{count}" for _, count in sorted(per_socket.items(), key=lambda kv: str(kv[0])))
        out.append(_finding(
            "dimm_balance", "warning", f"uneven DIMMs per socket ({counts})",
            "populate every socket identically: numactl --interleave spreads pages evenly, so the socket with "
            "fewer channels sets the pace for all"))
    return out


def _numa_findings(hw):
    out = []
    sockets, nodes = hw.get("sockets"), hw.get("numa_nodes")
    if sockets and nodes and nodes > sockets:
        per = nodes // sockets
        vendor = (hw.get("cpu_vendor") or "").lower()
        mode = f"NPS{per}" if vendor == "amd" else f"SNC{per}" if vendor == "intel" else f"{per} nodes per socket"
        bios = ("set 'NUMA nodes per socket' to NPS1" if vendor == "amd" else
                "disable Sub-NUMA Clustering (SNC)" if vendor == "intel" else "set one NUMA node per socket")
        out.append(_finding(
            "numa_per_socket", "info", f"{nodes} NUMA nodes on {sockets} socket(s) ({mode})",
            f"{bios} in the BIOS so the memory controller interleaves every channel in hardware; the service's "
            "numactl --interleave=all spreads the model over all nodes either way"))
    if hw.get("numa_balancing"):
        out.append(_finding(
            "numa_balancing", "warning", "kernel.numa_balancing is on",
            "turn it off (the os_tuning sysctl does; the kernel parameter numa_balancing=disable keeps it off "
            "from boot)"))
    return out


def _smt_findings(hw):
    if hw.get("smt_active") is None:
        return []
    if hw["smt_active"]:
        return [_finding("smt", "info", "SMT (Hyper-Threading) is on",
                         f"nothing to do: the service runs one thread per physical core ({hw.get('cores')}); "
                         "SMT siblings add no memory bandwidth")]
    return [_finding("smt", "info", "SMT (Hyper-Threading) is off", "nothing to do for token generation")]


def audit(hw):
    """Findings for the llm_hardware fact, worst first."""
    if not isinstance(hw, dict):
        raise ValueError(f"audit needs the llm_hardware fact (a dict), got {type(hw).__name__}")
    findings = (_channel_findings(hw) + _speed_findings(hw) + _population_findings(hw) + _numa_findings(hw)
                + _smt_findings(hw))
    if not (hw.get("dimms") or hw.get("memory_channels")):
        findings.append(_finding(
            "dmi", "info", f"memory layout unknown ({hw.get('dmi_status', 'no DMI data')})",
            "run on the bare-metal host as root with dmidecode installed, or state memory_channels and "
            "memory_speed_mts in llm_hardware_overrides"))
    order = {"warning": 0, "info": 1}
    return sorted(findings, key=lambda f: order[f["severity"]])
