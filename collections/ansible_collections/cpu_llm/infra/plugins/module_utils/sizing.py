"""Sizing: can the speed be estimated, does the model fit RAM and disk, and the report that says so.

Plain Python, no Ansible imports. One answer per question, used by every caller: the preflight
role's report and its stop, and playbooks/estimate.yml (hardware that does not exist yet).

- Is the hardware known enough to estimate speed? `hardware_unknowns()`: the facts the
  throughput model needs (sockets, cores, NUMA nodes, populated channels, DIMM speed).
- Does the model fit in RAM, on disk? memory_fit.py's `memory_need()` and `disk_need()` (weights +
  KV cache + overhead; the bytes not on disk yet + a margin), the same arithmetic fleet_sizing counts.
- The fleet parts (module_utils/fleet_sizing.py's arithmetic): `layouts_view()`, one interleaved
  llama-server vs one per NUMA node for the configured slots; `rpc_view()`, on an RPC head, the model
  split over the head and its workers, whose fit then replaces the head's own RAM fit.
"""

from ansible_collections.cpu_llm.infra.plugins.module_utils import (
    fleet_sizing,
    gpu_offload,
    memory_fit,
    throughput_model,
)
from ansible_collections.cpu_llm.infra.plugins.module_utils.memory_fit import SizingError

GB = 1e9
# What the throughput model needs to know about the host (llm_hardware fact names).
ESTIMATE_NEEDS = ("sockets", "cores", "numa_nodes", "memory_channels", "memory_speed_mts")
OVERRIDE_HINT = "set llm_hardware_overrides, e.g. {memory_channels: 12, memory_speed_mts: 4800}"


def hardware_unknowns(hardware):
    """The facts the estimate needs but the host did not show (empty: the estimate can run)."""
    return [key for key in ESTIMATE_NEEDS if hardware.get(key) in (None, "", 0)]


def _warnings(hardware):
    """What the facts show that a person can act on, beyond the throughput model's own advice."""
    out = []
    if hardware.get("numa_balancing"):
        out.append("kernel.numa_balancing is on: it migrates the pages of the model and stalls generation; "
                   "the os_tuning role turns it off")
    if hardware.get("smt_active"):
        out.append(f"SMT is on: the service uses one thread per physical core ({hardware.get('cores')}), "
                   "which is right for memory-bound generation; SMT can stay on")
    inferred = any(d.get("size_bytes") and d.get("channel") is None for d in hardware.get("dimms") or [])
    if "memory_channels" in (hardware.get("sources") or {}) and inferred:
        out.append("The channel count is inferred from slot numbering: confirm it against the board manual")
    return out


def measured_view(tuning, model):
    """What this host measured (the autotune role's tuning document), applied to this model.

    The effective bandwidth is the measured generation speed x the bytes the measured model reads per
    token: what generation really achieved here, below the memory's peak (per-token overheads weigh
    more on small models, so a small model's figure under-predicts a large one's speed).
    """
    if not isinstance(tuning, dict) or not tuning.get("effective_bandwidth_bytes_per_s"):
        return None
    bandwidth = float(tuning["effective_bandwidth_bytes_per_s"])
    active = model.get("active_bytes") or model.get("size_bytes")
    return {"bandwidth_bytes_per_s": bandwidth, "measured_at": str(tuning.get("measured_at", ""))[:10],
            "tokens_per_second_measured": (tuning.get("tokens_per_second") or {}).get("tg"),
            "tokens_per_second": bandwidth / active if active else None}


def offload_view(hardware, model, estimate, context_tokens, vram_bytes=0, bandwidth_gbs=0):
    """Partial GPU offload on this host's GPU (hardware's gpus) or a given VRAM budget: {gpu, plan,
    prediction}, or None without a GPU or without the model's per-layer bytes (a header not read).
    The prediction needs the CPU-only estimate and the GPU's bandwidth (known cards, or given)."""
    try:
        gpu = gpu_offload.sizing_gpu(hardware.get("gpus"), vram_bytes=vram_bytes, bandwidth_gbs=bandwidth_gbs)
        if gpu is None or not isinstance(model.get("layers"), dict):
            return None
        plan = gpu_offload.plan(model["layers"], vram_bytes=gpu["vram_bytes"], context_tokens=context_tokens)
        prediction = None
        if estimate.get("tokens_per_second") and gpu["bandwidth_gbs"]:
            prediction = gpu_offload.predict(plan, cpu_estimate=estimate, gpu_bandwidth_gbs=gpu["bandwidth_gbs"])
    except gpu_offload.OffloadError as exc:
        raise SizingError(f"GPU offload: {exc}") from None
    return {"gpu": gpu, "plan": plan, "prediction": prediction}


def layouts_view(hardware, model, estimate, *, context_tokens, parallel, threads, numa, overhead_bytes):
    """One interleaved llama-server vs one per NUMA node, as aggregate tokens/s for `parallel` slots
    (fleet_sizing.instances_view), or None when it would say nothing the report does not: the speed is
    unknown (no estimate), or the host has one NUMA node and the service one slot (both layouts are then
    the Tokens/s line's). With one node and several slots it gives the slots' aggregate, which the batch-1
    Tokens/s line does not."""
    nodes = hardware.get("numa_nodes") or 1
    if not estimate or (int(nodes) <= 1 and parallel <= 1):
        return None
    try:
        return fleet_sizing.instances_view(hardware, model, context_tokens=context_tokens, parallel=parallel,
                                           threads=threads, numa=numa, overhead_bytes=overhead_bytes)
    except fleet_sizing.FleetError as exc:
        raise SizingError(f"layouts: {exc}") from None


# What a worker given only its RAM ({memory_total_bytes}) takes from the head: its CPU and memory layout.
# ASSUMED (said in the report): the workers are built like the head.
WORKER_LAYOUT_KEYS = ("cpu_model", "sockets", "cores", "threads", "numa_nodes", "memory_type", "memory_channels",
                      "memory_channels_max", "memory_speed_mts")


def _endpoint_host(endpoint):
    return str(endpoint).split(":", 1)[0]


def worker_hardware(endpoints, given, inventory):
    """Each RPC worker's hardware for rpc_view: [{endpoint, hardware, how}] in the order of endpoints.

    given      one dict per endpoint (llm_hardware facts or at least {memory_total_bytes}), or empty: then
    inventory  {inventory host: {ansible_host, endpoint (its llm_rpc_worker_endpoint), llm_hardware (the
               llm_hardware facts), memtotal_mb, processor_cores, processor_count (Ansible's facts)}} gives
               them: the host whose endpoint is this one, else whose name or ansible_host is its address;
               its llm_hardware facts, else Ansible's memtotal_mb (the kernel's MemTotal) and core counts.
    A worker found nowhere gets {} and a `how` that says why; rpc_view then names the setting to give.
    """
    if given:
        if len(given) != len(endpoints):
            raise SizingError(f"preflight_rpc_worker_hardware must list one entry per worker of preflight_rpc_workers "
                              f"({len(endpoints)}), in the same order, got {len(given)}")
        return [{"endpoint": e, "hardware": dict(h or {}), "how": "preflight_rpc_worker_hardware"}
                for e, h in zip(endpoints, given, strict=True)]
    out = []
    for endpoint in endpoints:
        address = _endpoint_host(endpoint)
        matches = [n for n, v in inventory.items() if v.get("endpoint") == endpoint] or [
            n for n, v in inventory.items() if address in (n, v.get("ansible_host"))]
        if not matches:
            out.append({"endpoint": endpoint, "hardware": {}, "how": f"no inventory host has the address {address}"})
            continue
        name, facts = matches[0], inventory[matches[0]]
        if isinstance(facts.get("llm_hardware"), dict) and facts["llm_hardware"].get("memory_total_bytes"):
            out.append({"endpoint": endpoint, "hardware": dict(facts["llm_hardware"]),
                        "how": f"llm_hardware facts of {name}"})
        elif facts.get("memtotal_mb"):
            hardware = {"memory_total_bytes": int(facts["memtotal_mb"]) * 2**20}
            if facts.get("processor_cores") and facts.get("processor_count"):
                hardware.update(cores=int(facts["processor_cores"]) * int(facts["processor_count"]),
                                sockets=int(facts["processor_count"]))
            out.append({"endpoint": endpoint, "hardware": hardware, "how": f"Ansible facts of {name} (memtotal_mb)"})
        else:
            out.append({"endpoint": endpoint, "hardware": {},
                        "how": f"inventory host {name} has no facts in this run"})
    return out


def rpc_view(hardware, model, workers, *, context_tokens, parallel, threads, numa, overhead_bytes, host=None,
             n_gpu_layers=None):
    """The model split over this host (the head) and its RPC workers (fleet_sizing.rpc_split), for the
    report and the fit rule.

    workers: [{endpoint: "host:port", hardware: llm_hardware facts or at least {memory_total_bytes}}, ...] in
    --rpc order. Keys of WORKER_LAYOUT_KEYS a worker lacks are the head's (ASSUMED: built like the head).
    n_gpu_layers: the head's --n-gpu-layers (llama_server_rpc_layers), None for llama.cpp's default (every layer
    on the workers). The fit is that placement's, the one the service will load; the suggested one is advice.
    Returns {split (rpc_split's result, or None), why_not (why there is no split: the fit is then the head's
    alone), fits (the configured placement fits every host; None without a split), any_fits (some placement
    does: the suggested one), n_gpu_layers, speed_unknowns ([] when every host's speed is predicted), assumed
    (worker endpoints whose layout is the head's)}.
    """
    if not isinstance(workers, (list, tuple)):
        raise SizingError(f"rpc_workers must be a list of {{endpoint, hardware}}, got {type(workers).__name__}")
    hosts, assumed, unknowns = [], [], []
    names = [_endpoint_host(w.get("endpoint") if isinstance(w, dict) else w) for w in workers]
    for index, worker in enumerate(workers):
        if not isinstance(worker, dict) or not worker.get("endpoint"):
            raise SizingError(f"rpc_workers[{index}] must be {{endpoint: host:port, hardware: {{...}}}}, "
                              f"got {worker!r}")
        endpoint, own = str(worker["endpoint"]), worker.get("hardware")
        if not isinstance(own, dict) or not own.get("memory_total_bytes"):
            raise SizingError(
                f"RPC worker {endpoint}: its memory size is unknown ({worker.get('how') or 'no hardware given'}); "
                "give it in preflight_rpc_worker_hardware, one entry per worker in preflight_rpc_workers' order, "
                "e.g. [{memory_total_bytes: 206158430208}], or run the play with the worker's facts gathered")
        ram = memory_fit.whole(own, "memory_total_bytes", f"rpc_workers[{index}].hardware")
        layout = {key: hardware[key] for key in WORKER_LAYOUT_KEYS if hardware.get(key) not in (None, "", 0)}
        merged = dict(layout, **{key: value for key, value in own.items() if value not in (None, "")})
        if any(own.get(key) in (None, "", 0) for key in ESTIMATE_NEEDS):
            assumed.append(endpoint)
        name = names[index] if names.count(names[index]) == 1 else endpoint
        hosts.append({"name": name, "endpoint": endpoint, "ram_bytes": ram, "hardware": merged,
                      "numa": "interleave"})
        unknowns += [f"{endpoint} {key}" for key in hardware_unknowns(merged)]
    head_ram = hardware.get("memory_total_bytes")
    if not head_ram:
        return {"split": None, "why_not": "the head's RAM is unknown", "fits": None, "speed_unknowns": [],
                "assumed": assumed}
    if not isinstance(model.get("layers"), dict):
        return {"split": None, "why_not": "the model's per-layer bytes are unknown (its GGUF header was not read)",
                "fits": None, "speed_unknowns": [], "assumed": assumed}
    head_name = host if host and host not in names else "head"
    head = {"name": head_name, "ram_bytes": int(head_ram), "hardware": hardware, "threads": threads,
            "numa": numa}
    unknowns = [f"{head_name} {key}" for key in hardware_unknowns(hardware)] + unknowns
    hosts = [head, *hosts]
    if unknowns:
        # The fit needs no speed: every host gets the same stand-in bandwidth, so the placement is chosen by
        # fit alone (fewest workers, most RAM left), and the report shows no speed.
        hosts = [dict(h, hardware=None, bandwidth_gbs=1.0, threads=None) for h in hosts]
    try:
        split = fleet_sizing.rpc_split(model, hosts, context_tokens=context_tokens, parallel=parallel,
                                       overhead_bytes=overhead_bytes, n_gpu_layers=n_gpu_layers)
    except fleet_sizing.FleetError as exc:
        raise SizingError(f"RPC split: {exc}") from None
    return {"split": split, "why_not": "", "fits": bool(split["llama_cpp"]["fits"]),
            "any_fits": split["suggested"] is not None, "n_gpu_layers": n_gpu_layers, "speed_unknowns": unknowns,
            "assumed": assumed, "how": [f"{w['endpoint']}: {w.get('how') or 'given'}" for w in workers]}


def size(hardware, model, *, context_tokens, threads, numa="interleave", overhead_bytes=0, disk=None,
         name="model", host=None, quant_choice=None, tuning=None, gpu_vram_bytes=0, gpu_bandwidth_gbs=0,
         parallel=1, rpc_workers=None, rpc_layers=None):
    """Everything the sizing report shows, and whether the play may go on.

    model: {size_bytes, quant?, active_bytes?, kv_bytes_per_token?, expert_count?, expert_used_count?, ...}
    disk: {free, missing, margin, path}: bytes free, bytes of the model not on disk yet, bytes to keep free;
    None when there is no disk to check.
    quant_choice: llm_choose_quant's {chosen, candidates} when the quant was chosen automatically.
    tuning: the autotune role's document from this host, when it has one (its measured bandwidth).
    gpu_vram_bytes, gpu_bandwidth_gbs: see offload_view.
    parallel: the service's slots (llm_parallel), for layouts_view.
    rpc_workers: on an RPC head, its workers (rpc_view); then the RAM fit is the split's: a model too big for
    the head alone that fits head + workers fits. Empty or None: this host alone, as before.
    rpc_layers: the head's llama_server_rpc_layers (--n-gpu-layers); None or -1: llama.cpp's default.
    Returns {estimate, unknowns, memory, ram_fits, disk, disk_fits, fits, warnings, quants, measured, offload,
    layouts, rpc, report, failure}.
    """
    if not isinstance(hardware, dict) or not isinstance(model, dict):
        raise SizingError("hardware and model must be mappings (llm_hardware facts; size_bytes, quant, ...)")
    unknowns = hardware_unknowns(hardware)
    estimate = {} if unknowns else throughput_model.estimate(hardware, model, threads=threads, numa=numa)
    memory = memory_fit.memory_need(model, context_tokens, overhead_bytes)
    total_ram = hardware.get("memory_total_bytes")
    ram_fits = None if not total_ram else memory["total"] <= int(total_ram)
    disk_view = None
    if disk is not None:
        needed = memory_fit.disk_need(memory_fit.whole(disk, "missing", "disk", memory["model"]),
                                      memory_fit.whole(disk, "margin", "disk", 0))
        disk_view = {"free": memory_fit.whole(disk, "free", "disk"), "needed": needed, "path": disk.get("path", "")}
    disk_fits = None if disk_view is None else disk_view["needed"] <= disk_view["free"]
    warnings = list(estimate.get("warnings", [])) + _warnings(hardware)
    result = {
        "estimate": estimate, "unknowns": unknowns, "memory": memory, "ram_fits": ram_fits,
        "disk": disk_view, "disk_fits": disk_fits, "fits": ram_fits is not False and disk_fits is not False,
        "warnings": warnings,
        "quants": _quant_rows(hardware, model, quant_choice, unknowns, threads, numa),
        "measured": measured_view(tuning, model),
        "offload": offload_view(hardware, model, estimate, context_tokens, gpu_vram_bytes, gpu_bandwidth_gbs),
        "layouts": None, "rpc": None,
    }
    parallel = memory_fit.whole({"parallel": parallel}, "parallel", "options")
    if parallel < 1:
        raise SizingError(f"parallel (slots) must be at least 1, got {parallel}")
    if rpc_workers:
        # An RPC head: the split is the layout, so the per-NUMA-node comparison (one host's) is not shown.
        result["rpc"] = rpc_view(hardware, model, rpc_workers, context_tokens=context_tokens, parallel=parallel,
                                 threads=threads, numa=numa, overhead_bytes=overhead_bytes, host=host,
                                 n_gpu_layers=None if rpc_layers is None or int(rpc_layers) < 0 else int(rpc_layers))
        if result["rpc"]["fits"] is not None:
            result["fits"] = result["rpc"]["fits"] and disk_fits is not False
    else:
        result["layouts"] = layouts_view(hardware, model, estimate, context_tokens=context_tokens, parallel=parallel,
                                         threads=threads, numa=numa, overhead_bytes=overhead_bytes)
    result["report"] = render(hardware, model, result, name=name, host=host, context_tokens=context_tokens)
    result["failure"] = "" if result["fits"] else _failure(hardware, model, result, name)
    return result


def _quant_rows(hardware, model, quant_choice, unknowns, threads, numa):
    """Each candidate quant with its size, RAM need, fit and the speed it would give (same model, scaled)."""
    if not quant_choice or not quant_choice.get("candidates"):
        return []
    rows, size = [], model.get("size_bytes") or 1
    for candidate in quant_choice["candidates"]:
        scale = candidate["size_bytes"] / size
        scaled = {key: value for key, value in model.items() if key != "quant_mix"}
        scaled.update(size_bytes=candidate["size_bytes"], quant=candidate["quant"])
        if model.get("active_bytes"):
            scaled["active_bytes"] = int(model["active_bytes"] * scale)
        tps = None if unknowns else throughput_model.estimate(hardware, scaled, threads=threads,
                                                              numa=numa)["tokens_per_second"]
        rows.append({"quant": candidate["quant"], "size_bytes": candidate["size_bytes"],
                     "memory_needed_bytes": candidate["memory_needed_bytes"], "fits": candidate["fits"],
                     "tokens_per_second": tps, "chosen": candidate["quant"] == quant_choice.get("chosen")})
    return rows


def _gb(value, digits=1):
    return f"{(value or 0) / GB:.{digits}f}"


def _q(value):
    return "?" if value in (None, "") else value


def render(hardware, model, result, *, name, host, context_tokens):
    """The sizing report as a person reads it, one line per fact."""
    hw, est, mem = hardware, result["estimate"], result["memory"]
    channels_max = hw.get("memory_channels_max") or est.get("memory_channels_max")
    lines = [
        "Sizing report" + (f" for {host}" if host and host != "localhost" else ""),
        f"  CPU      {hw.get('cpu_model') or 'unknown'}: {_q(hw.get('sockets'))} socket(s), "
        f"{_q(hw.get('cores'))} cores, {_q(hw.get('threads'))} threads, {_q(hw.get('numa_nodes'))} NUMA node(s)",
        f"  Memory   {hw.get('memory_type') or 'type unknown'}, {_q(hw.get('memory_channels'))} of "
        f"{_q(channels_max)} channels populated, {_q(hw.get('memory_speed_mts'))} MT/s (rated "
        f"{_q(hw.get('memory_speed_rated_mts'))}), {_gb(hw.get('memory_total_bytes'))} GB",
        f"  Model    {name}: {_gb(mem['model'], 2)} GB" + (f", {model['quant']}" if model.get("quant") else ""),
    ]
    if model.get("expert_count"):
        lines.append(f"  Experts  mixture of experts: {model.get('expert_used_count')} of {model['expert_count']} "
                     f"used per token, {_gb(model.get('active_bytes'), 2)} GB read per token")
    elif model.get("active_bytes"):
        lines.append(f"  Active   {_gb(model['active_bytes'], 2)} GB read per token")
    if result["quants"]:
        lines.append("  Quants     auto: the highest quality whose weights + KV cache + overhead fit RAM")
        for row in result["quants"]:
            speed = f"{row['tokens_per_second']:.2f} tok/s" if row["tokens_per_second"] else "? tok/s"
            lines.append(f"             {row['quant']:<8} {_gb(row['size_bytes']):>7} GB, needs "
                         f"{_gb(row['memory_needed_bytes']):>7} GB: {'fits' if row['fits'] else 'does not fit'}, "
                         f"{speed}" + ("  <- chosen" if row["chosen"] else ""))
    if est:
        lines += [
            f"  Bandwidth  peak {est['peak_bandwidth_gbs']} GB/s, expected effective {est['effective_bandwidth_gbs']}"
            f" GB/s (numa {est['numa']}, {est['threads']} threads)",
            f"  Tokens/s   expected {est['tokens_per_second']:.2f}"
            + (f" (likely {est['tokens_per_second_low']:.2f}-{est['tokens_per_second_high']:.2f}, the held-out error"
               " on published measurements)" if est.get("tokens_per_second_low") else "")
            + (f", ceiling {est['tokens_per_second_ceiling']:.2f}" if est.get("tokens_per_second_ceiling") else "")
            + f", {est['seconds_per_token']:.3f} s per token, {est['bound']}-bound",
        ]
    elif not result["measured"]:
        lines.append(f"  Tokens/s   unknown: {', '.join(result['unknowns'])} unknown "
                     f"({hw.get('dmi_status') or 'not given'}); {OVERRIDE_HINT}")
    measured = result["measured"]
    if measured:
        peak = (f"; DIMM arithmetic says {est['peak_bandwidth_gbs']} GB/s peak" if est
                else "; no DIMM arithmetic (memory layout unknown)")
        gbs = measured["bandwidth_bytes_per_s"] / GB
        lines.append(f"  Measured   expected {measured['tokens_per_second']:.2f} tok/s from the measured "
                     f"{gbs:.1f} GB/s effective (autotune {measured['measured_at']}, "
                     f"generation x bytes per token){peak}")
    lines.append(f"  RAM        needs {_gb(mem['total'])} GB (model + {_gb(mem['kv'], 2)} GB KV cache for "
                 f"{context_tokens} tokens, {mem['kv_how']}, + {_gb(mem['overhead'])} GB overhead), has "
                 f"{_gb(hw.get('memory_total_bytes'))} GB")
    disk = result["disk"]
    if disk is not None:
        lines.append(f"  Disk       needs {_gb(disk['needed'])} GB more under {disk['path']}, "
                     f"{_gb(disk['free'])} GB free")
    offload = result.get("offload")
    if offload:
        gpu = offload["gpu"]
        lines.append(f"  GPU        {gpu['name']}: {_gb(gpu['vram_bytes'])} GB ({gpu['how']}), "
                     + (f"{gpu['bandwidth_gbs']} GB/s" if gpu["bandwidth_gbs"]
                        else "bandwidth unknown (no speed prediction)"))
        lines += gpu_offload.render_lines(offload["plan"], offload["prediction"])
    if result.get("layouts"):
        lines += _layouts_lines(result["layouts"])
    if result.get("rpc"):
        lines += _rpc_lines(result["rpc"], mem)
    lines += [f"  WARNING    {warning}" for warning in result["warnings"]]
    return "\n".join(lines)


LIKELY = (min(throughput_model.LOO_RATIO_P10, 0.99), max(throughput_model.LOO_RATIO_P90, 1.01))


def _layouts_lines(view):
    """fleet_sizing's Instances lines and how far to trust them (the form of the Tokens/s line)."""
    low, high = LIKELY
    best = view[view["recommended"]] if view[view["recommended"]]["fits"] is not False else view["interleaved"]
    how = (f"             how: throughput_model per layout (the Tokens/s line's, per node: numa isolate on its "
           f"share of the cores and bandwidth); likely {best['tokens_per_second'] * low:.2f}-"
           f"{best['tokens_per_second'] * high:.2f} tok/s for the {view['recommended'].replace('_', ' ')} layout, "
           "the held-out error at one slot")
    compared = view["numa_nodes"] > 1 and view["per_node"]["fits"] is not False  # the N x slots lines are shown
    notes = []
    if view["parallel"] > 1 or compared:
        notes.append("several slots decoded as one batch (weights read once per step, the same rate per FLOP) is "
                     "ASSUMED, not calibrated on a measured batch sweep")
    if compared:
        notes.append("the interleaved figure is outside the calibration on more than one socket, so the "
                     "per-node gain may be understated (llama.cpp #5377 measured almost x2 on 4 nodes)")
    return fleet_sizing.render_lines(view) + [how] + [f"             trust: {note}" for note in notes if note]


def _rpc_lines(view, mem):
    """The RPC split (fleet_sizing's lines when every host's speed is known, else the fit alone) and how far
    to trust it."""
    if view["split"] is None:
        return [f"  RPC split  not computed: {view['why_not']}; the fit below is this host's alone"]
    split = view["split"]
    lines = []
    if view["speed_unknowns"]:
        lines += _rpc_fit_lines(split)
        lines.append(f"             speed: unknown ({', '.join(view['speed_unknowns'])} unknown); "
                     "set llm_hardware_overrides on the head and the layout in preflight_rpc_worker_hardware")
    else:
        lines += fleet_sizing.render_lines(split)
        best = split["suggested"] or split["llama_cpp"]
        hosts, net = sum(best["parts"]["hosts"].values()), best["parts"]["latency"] + best["parts"]["transfer"]
        low, high = LIKELY
        lines.append(f"             how: each host's share (by bytes read) of throughput_model's time for the whole "
                     f"model on that host, one after the other, + the network; likely "
                     f"{1 / (hosts / low + net):.2f}-{1 / (hosts / high + net):.2f} tok/s, the held-out error on "
                     "the hosts' part")
        lines.append(f"             trust: the network ({split['latency_s'] * 1e3:.2f} ms per round trip, "
                     f"{split['link_gbps']:g} Gbit/s) is ASSUMED, not measured (ping your hosts), and no CPU split "
                     "is measured yet: read it as a floor (one GPU split measured +2.6 ms per boundary)")
    lines.append(f"             workers' hardware: {'; '.join(view['how'])}")
    if view["assumed"]:
        lines.append(f"             assumed: {', '.join(view['assumed'])} built like the head (CPU and memory "
                     "layout; only the RAM size was given)")
    configured = ("llama_server_rpc_layers " + str(view["n_gpu_layers"]) if view.get("n_gpu_layers") is not None
                  else "llama.cpp's default, every layer on the workers")
    lines.append(f"             fit: the split's as the service loads it ({configured}), not the RAM line's: " + (
        "fits every host" if view["fits"]
        else "DOES NOT FIT; the suggested placement does (its --n-gpu-layers as llama_server_rpc_layers)"
        if view.get("any_fits") else "no placement fits every host's RAM"))
    return lines


def _rpc_fit_lines(split):
    """The split without speeds: where each layer goes and whether each host's RAM holds it."""
    hosts = split["llama_cpp"]["hosts"]
    lines = [f"  RPC split  {len(hosts)} hosts ({hosts[0]['name']}: llama-server; "
             f"{', '.join(h['name'] for h in hosts[1:])}: ggml-rpc-server), {_gb(split['model_bytes'])} GB of "
             f"weights + {_gb(split['kv_bytes'])} GB KV"]
    for label, plan in (("default", split["llama_cpp"]), ("suggested", split["suggested"])):
        if plan is None:
            lines.append("             suggested: none; the hosts' RAM cannot hold the model + KV + overhead")
            continue
        lines.append(f"             {label}: llama-server {' '.join(plan['flags']['head']) or '(no --rpc)'}")
        for row in plan["hosts"]:
            held = (["token_embd"] if row["input"] else []) + (
                [f"blocks {fleet_sizing._span(row['blocks'])}"] if row["blocks"] else []) + (
                ["output"] if row["output"] else [])
            lines.append(f"               {row['role']} {row['name']}: {' + '.join(held) or 'nothing'}; "
                         f"{_gb(row['weights_bytes'])} GB weights + {_gb(row['kv_bytes'])} GB KV + "
                         f"{_gb(row['overhead_bytes'])} GB overhead of {_gb(row['ram_bytes'])} GB: "
                         f"{'fits' if row['fits'] else 'DOES NOT FIT'}")
    return lines


def _failure(hardware, model, result, name):
    """Why it does not fit: only the checks that failed."""
    mem, disk, parts = result["memory"], result["disk"] or {}, []
    rpc = result.get("rpc") or {}
    if rpc.get("fits") is False and rpc.get("any_fits"):
        split = rpc["split"]
        short = ", ".join(f"{h['role']} {h['name']}" for h in split["llama_cpp"]["hosts"] if not h["fits"])
        flags = split["suggested"]["flags"]["head"]
        layers = flags[flags.index("--n-gpu-layers") + 1] if "--n-gpu-layers" in flags else "0"
        configured = (f"llama_server_rpc_layers {rpc['n_gpu_layers']}" if rpc.get("n_gpu_layers") is not None
                      else "llama_server_rpc_layers -1, llama.cpp's default: every layer on the workers")
        parts.append(f"{name} does not fit its RPC split as configured ({configured}): {short} cannot hold "
                     f"its share. Set llama_server_rpc_layers: {layers} on the head (the report's suggested "
                     "placement, which fits every host).")
    elif rpc.get("fits") is False:
        split = rpc["split"]
        hosts = split["llama_cpp"]["hosts"]
        has = ", ".join(f"{h['role']} {h['name']} {_gb(h['ram_bytes'])} GB" for h in hosts)
        parts.append(f"{name} does not fit its RPC split: {_gb(split['model_bytes'])} GB of weights + "
                     f"{_gb(split['kv_bytes'])} GB KV cache + {_gb(split['overhead_bytes'])} GB overhead on each of "
                     f"{len(hosts)} hosts, and no placement of its layers fits every host's RAM ({has}; "
                     f"{_gb(sum(h['ram_bytes'] for h in hosts))} GB in all); more RPC workers "
                     "(preflight_rpc_workers) would add room.")
    elif result["ram_fits"] is False and rpc.get("fits") is not True:
        parts.append(f"{name} needs {_gb(mem['total'])} GB of RAM (model {_gb(mem['model'])} GB + KV cache "
                     f"{_gb(mem['kv'])} GB + overhead); the host has {_gb(hardware.get('memory_total_bytes'))} GB.")
    if result["disk_fits"] is False:
        parts.append(f"Disk: needs {_gb(disk['needed'])} GB free under {disk['path']}, has {_gb(disk['free'])} GB.")
    parts.append("Choose a smaller quant or model, add memory or disk, "
                 "or set preflight_ignore_fit: true to run anyway.")
    return " ".join(parts)
