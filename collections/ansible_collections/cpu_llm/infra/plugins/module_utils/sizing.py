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
- The report and the failure message: sizing_report.py words them (`render()`, `failure()`).
"""

from dataclasses import KW_ONLY, dataclass

from ansible_collections.cpu_llm.infra.plugins.module_utils import (
    fleet_sizing,
    gpu_offload,
    llm_hardware,
    memory_fit,
    sizing_report,
    throughput_model,
)
from ansible_collections.cpu_llm.infra.plugins.module_utils.memory_fit import SizingError

# What the throughput model needs to know about the host (llm_hardware fact names).
ESTIMATE_NEEDS = ("sockets", "cores", "numa_nodes", "memory_channels", "memory_speed_mts")


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
    except fleet_sizing.LayoutError as exc:
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
            if llm_hardware.physical_cores(facts):
                hardware.update(cores=llm_hardware.physical_cores(facts), sockets=int(facts["processor_count"]))
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
    except fleet_sizing.LayoutError as exc:
        raise SizingError(f"RPC split: {exc}") from None
    return {"split": split, "why_not": "", "fits": bool(split["llama_cpp"]["fits"]),
            "any_fits": split["suggested"] is not None, "n_gpu_layers": n_gpu_layers, "speed_unknowns": unknowns,
            "assumed": assumed, "how": [f"{w['endpoint']}: {w.get('how') or 'given'}" for w in workers]}


@dataclass(frozen=True)
class SizingRequest:
    """What size() sizes: the host, the model, and how the service will run it.

    hardware: llm_hardware facts (or the hardware given to playbooks/estimate.yml).
    model: {size_bytes, quant?, active_bytes?, kv_bytes_per_token?, expert_count?, expert_used_count?, ...}
    context_tokens: KV cells over all slots (llm_ctx_size x llm_parallel); threads, numa: the service's.
    overhead_bytes: RAM beyond weights and KV (llm_memory_overhead_bytes).
    disk: {free, missing, margin, path}: bytes free, bytes of the model not on disk yet, bytes to keep free;
    None when there is no disk to check.
    name, host: the model's and the host's names in the report (host localhost or None: not named).
    quant_choice: llm_choose_quant's {chosen, candidates} when the quant was chosen automatically.
    tuning: the autotune role's document from this host, when it has one (its measured bandwidth).
    gpu_vram_bytes, gpu_bandwidth_gbs: see offload_view.
    parallel: the service's slots (llm_parallel), for layouts_view.
    rpc_workers: on an RPC head, its workers (rpc_view); then the RAM fit is the split's: a model too big for
    the head alone that fits head + workers fits. Empty or None: this host alone, as before.
    rpc_layers: the head's llama_server_rpc_layers (--n-gpu-layers); None or -1: llama.cpp's default.
    """

    hardware: dict
    model: dict
    _: KW_ONLY
    context_tokens: int
    threads: int
    numa: str = "interleave"
    overhead_bytes: int = 0
    disk: dict | None = None
    name: str = "model"
    host: str | None = None
    quant_choice: dict | None = None
    tuning: dict | None = None
    gpu_vram_bytes: int = 0
    gpu_bandwidth_gbs: float = 0
    parallel: int = 1
    rpc_workers: list | None = None
    rpc_layers: int | None = None


def size(request):
    """Everything the sizing report shows for a SizingRequest, and whether the play may go on.

    Returns {estimate, unknowns, memory, ram_fits, disk, disk_fits, fits, warnings, quants, measured, offload,
    layouts, rpc, report, failure}.
    """
    if not isinstance(request, SizingRequest):
        raise SizingError(f"size() takes a SizingRequest, got {type(request).__name__}")
    hardware, model, context_tokens, threads = request.hardware, request.model, request.context_tokens, request.threads
    numa, overhead_bytes, disk, name, host = (request.numa, request.overhead_bytes, request.disk, request.name,
                                              request.host)
    parallel, rpc_workers, rpc_layers = request.parallel, request.rpc_workers, request.rpc_layers
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
        "quants": _quant_rows(hardware, model, request.quant_choice, unknowns, threads, numa),
        "measured": measured_view(request.tuning, model),
        "offload": offload_view(hardware, model, estimate, context_tokens, request.gpu_vram_bytes,
                                request.gpu_bandwidth_gbs),
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
    result["report"] = sizing_report.render(hardware, model, result, name=name, host=host,
                                            context_tokens=context_tokens)
    result["failure"] = "" if result["fits"] else sizing_report.failure(hardware, model, result, name)
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
