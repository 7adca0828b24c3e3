"""The sizing report: every line of it is rendered here.

Plain Python, no Ansible imports. Text only: the numbers come from the modules that compute them
(sizing.size's result, memory_fit, throughput_model, fleet_sizing's instances_view and rpc_split,
gpu_offload's plan and predict); this module words them, so every line has the same two-space indent,
label and text column (13), and one GB rounding.

  render()         the whole report of sizing.size()'s result, one line per fact
  failure()        why it does not fit: only the checks that failed
  fleet_lines()    fleet_sizing.instances_view()'s or rpc_split()'s result
  offload_lines()  gpu_offload.plan()'s result and, when given, predict()'s
"""

from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet_sizing, throughput_model

GB = 1e9
OVERRIDE_HINT = "set llm_hardware_overrides, e.g. {memory_channels: 12, memory_speed_mts: 4800}"


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
        lines += offload_lines(offload["plan"], offload["prediction"])
    if result.get("layouts"):
        lines += _layouts_lines(result["layouts"])
    if result.get("rpc"):
        lines += _rpc_view_lines(result["rpc"], mem)
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
    return fleet_lines(view) + [how] + [f"             trust: {note}" for note in notes if note]


def _rpc_view_lines(view, mem):
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
        lines += fleet_lines(split)
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
    lines = [_split_head(split)]
    for label, plan in (("default", split["llama_cpp"]), ("suggested", split["suggested"])):
        if plan is None:
            lines.append("             suggested: none; the hosts' RAM cannot hold the model + KV + overhead")
            continue
        lines.append(f"             {label}: llama-server {' '.join(plan['flags']['head']) or '(no --rpc)'}")
        for row in plan["hosts"]:
            lines.append(f"               {row['role']} {row['name']}: {' + '.join(_held(row)) or 'nothing'}; "
                         f"{_row_bytes(row)}")
    return lines


def failure(hardware, model, result, name):
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


# --- fleet_sizing: per-NUMA-node instances, RPC splits

def fleet_lines(result):
    """Lines of fleet_sizing.instances_view()'s or rpc_split()'s result."""
    if not isinstance(result, dict) or result.get("kind") not in ("instances", "rpc"):
        raise fleet_sizing.LayoutError("result must be what instances_view() or rpc_split() returns")
    lines = _instances_lines(result) if result["kind"] == "instances" else _split_lines(result)
    return lines + [f"             note: {w}" for w in result["warnings"]]


def _instances_lines(view):
    nodes, slots = view["numa_nodes"], view["parallel"]
    one, node, same = view["interleaved"], view["per_node"], view["same_slots"]

    def speed(layout):
        return (f"{layout['tokens_per_second']:.2f} tok/s for {layout['instances'] * layout['slots']} "
                f"stream(s) ({layout['per_sequence_tokens_per_second']:.2f} each, {layout['bound']}-bound)")

    def fit(layout, of):
        if layout["fits"] is None:
            return f"needs {_gb(layout['memory_bytes'])} GB {of} (RAM unknown)"
        return (f"needs {_gb(layout['memory_bytes'])} of {_gb(layout['memory_available_bytes'])} GB {of}: "
                + ("fits" if layout["fits"] else "does not fit"))

    lines = [f"  Instances  one over all {nodes} NUMA node(s) (numactl --{view['numa']}, {one['threads']} threads, "
             f"{slots} slot(s)): {speed(one)}; {fit(one, 'of the host')}"]
    if nodes == 1:
        lines.append("             one per NUMA node: the same layout on a one-node host")
        return lines
    head = (f"             one per NUMA node ({nodes} x numactl --cpunodebind=N --membind=N, {node['threads']} "
            f"threads, {slots} slot(s) each): ")
    if node["fits"] is False:
        lines.append(head + f"not possible, {fit(node, 'per node')}")
    else:
        lines.append(head + f"{speed(node)}, x{view['gain']:.2f}; {fit(node, 'per node')}")
        lines.append(f"             one interleaved with {nodes * slots} slots: {speed(same)}; "
                     f"{fit(same, 'of the host')}")
    lines.append(f"             -> {view['recommended'].replace('_', ' ')}: {view['why']}")
    return lines


def _span(indices):
    """'0-39' for consecutive block indices, '7' for one."""
    return f"{indices[0]}-{indices[-1]}" if len(indices) > 1 else str(indices[0])


def _plan_lines(plan):
    lines = []
    for row in plan["hosts"]:
        parts = _held(row)
        if row["role"] == "worker" and not parts:
            listed = row["endpoint"] in " ".join(plan["flags"]["head"])
            lines.append(f"             worker {row['name']}: " + ("holds nothing" if listed else
                                                                     "not needed (not in --rpc)"))
            continue
        lines.append(f"             {row['role']} {row['name']}: {' + '.join(parts)}; {_row_bytes(row)}, "
                     f"{row['seconds_per_token'] * 1e3:.0f} ms/token")
    parts = plan["parts"]
    lines.append(f"             predicted {plan['tokens_per_second']:.2f} tok/s: "
                 f"{sum(parts['hosts'].values()) * 1e3:.0f} ms on the hosts one after the other + "
                 f"{(parts['latency'] + parts['transfer']) * 1e3:.2f} ms network ({plan['rpc_devices']} round "
                 f"trip(s), {plan['wire_bytes_per_token'] / 1e3:.0f} KB on the wire)")
    return lines


def _split_lines(split):
    current, suggested, single = split["llama_cpp"], split["suggested"], split["single_host"]
    hosts = current["hosts"]
    lines = [_split_head(split) + ": adds capacity, not speed",
             f"             {current['placement']}: llama-server {' '.join(current['flags']['head'])}"]
    lines += _plan_lines(current)
    if suggested is None:
        lines.append("             suggested: none; the hosts' RAM cannot hold the model + KV + overhead")
    elif not suggested["rpc_devices"]:
        lines.append(f"             suggested: no split, {hosts[0]['name']} holds the model alone (llama-server "
                     f"without --rpc): {suggested['tokens_per_second']:.2f} tok/s")
    elif suggested["flags"]["head"] != current["flags"]["head"]:
        lines.append(f"             suggested: llama-server {' '.join(suggested['flags']['head'])}")
        lines += _plan_lines(suggested)
    best = suggested or current
    slower = best["seconds_per_token"] * single["tokens_per_second"] - 1
    lines.append(f"             one host with all the RAM at {single['name']}'s speed: "
                 f"{single['tokens_per_second']:.2f} tok/s; the split is {slower:.1%} slower and loads "
                 f"{_gb(best['load_bytes_over_network'])} GB over the network at every start "
                 "(ggml-rpc-server -c caches it on the workers' disks)")
    return lines


def _held(row):
    """What one host of an RPC plan holds: token_embd, a span of blocks, the output."""
    return (["token_embd"] if row["input"] else []) + (
        [f"blocks {_span(row['blocks'])}"] if row["blocks"] else []) + (["output"] if row["output"] else [])


def _row_bytes(row):
    """One host's bytes of an RPC plan against its RAM, and whether they fit."""
    return (f"{_gb(row['weights_bytes'])} GB weights + {_gb(row['kv_bytes'])} GB KV + "
            f"{_gb(row['overhead_bytes'])} GB overhead of {_gb(row['ram_bytes'])} GB: "
            f"{'fits' if row['fits'] else 'DOES NOT FIT'}")


def _split_head(split):
    """The first line of an RPC split: its hosts and the bytes they hold."""
    hosts = split["llama_cpp"]["hosts"]
    return (f"  RPC split  {len(hosts)} hosts ({hosts[0]['name']}: llama-server; "
            f"{', '.join(h['name'] for h in hosts[1:])}: ggml-rpc-server), {_gb(split['model_bytes'])} GB of "
            f"weights + {_gb(split['kv_bytes'])} GB KV")


# --- gpu_offload: partial offload

def _where(offload_plan):
    """What the plan puts where, in words."""
    mode, n_layer = offload_plan["mode"], offload_plan["n_layer"]
    flags = " ".join(offload_plan["args"])
    if mode == "cpu":
        return f"nothing offloaded ({flags})"
    n_gpu = len(offload_plan["gpu_blocks"])
    ram_experts = len(offload_plan["ram_expert_blocks"])
    if offload_plan["ngl"] > n_layer:
        where = f"all {n_gpu} layers on the GPU"
    else:
        where = f"the last {n_gpu} of {n_layer} layers and the output on the GPU"
    if mode == "n_cpu_moe":
        where += (f", routed experts of {ram_experts} layers (blocks 0-{offload_plan['n_cpu_moe'] - 1}) "
                  "in RAM")
    elif mode == "cpu_moe":
        where += ", every routed expert in RAM"
    return f"{where} ({flags})"


def offload_lines(offload_plan, prediction=None):
    """Lines of gpu_offload.plan()'s result and gpu_offload.predict()'s prediction (None: no speed)."""
    gpu, ram = offload_plan["gpu"], offload_plan["ram"]
    lines = [f"  GPU offload {_gb(offload_plan['vram_bytes'])} GB free VRAM: {_where(offload_plan)}"]
    if offload_plan["mode"] != "cpu":
        lines.append(f"             {_gb(offload_plan['gpu_bytes'])} GB on GPU (weights {_gb(gpu['weights'])}, "
                     f"KV {_gb(gpu['kv'])}, compute {_gb(gpu['compute'])}, margin {_gb(gpu['margin'])}), "
                     f"{_gb(offload_plan['ram_bytes'])} GB in RAM (weights {_gb(ram['weights'])}, "
                     f"KV {_gb(ram['kv'])})")
    lines.append(f"             why: {offload_plan['why']}")
    if prediction:
        parts = prediction["seconds_per_token_parts"]
        lines.append(f"             predicted {prediction['tokens_per_second']:.1f} tok/s vs "
                     f"{prediction['cpu_only_tokens_per_second']:.1f} CPU-only (x{prediction['speedup']:.1f}): "
                     f"per token {parts['gpu'] * 1e3:.1f} ms GPU, {parts['ram'] * 1e3:.1f} ms RAM, "
                     f"{parts['transfer'] * 1e3:.1f} ms transfers")
    return lines
