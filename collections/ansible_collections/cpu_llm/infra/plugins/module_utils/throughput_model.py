"""Expected batch-1 token generation speed of mainline llama.cpp on a CPU, from hardware facts.

Plain Python, no Ansible imports. The model, and where each constant comes from:

  t_token = max(t_memory, t_compute) + t_sync
  t_memory  = bytes read per token / effective bandwidth
  t_compute = 2 * parameters / (threads * per-core matvec FLOP rate for the quant)
  t_sync    = layers * threads * SYNC_US          (ggml's per-op thread barriers)

Effective bandwidth = min(sustained DIMM bandwidth, AMD CCD fabric limit, threads * per-thread
limit), scaled by NUMA placement:

* Sustained DIMM bandwidth is peak (channels x MT/s x 8 bytes) x efficiency: ~0.93 on dual-channel
  desktops (a Ryzen 9 7950X owner measures ~64 GB/s of 64, ik_llama.cpp PR #54), ~0.80 on
  many-channel servers (STREAM on EPYC Genoa / Xeon Sapphire Rapids reaches 75-80% of peak: AMD
  EPYC 9004 HPC tuning guide, Intel's published STREAM results).
* On AMD each CCD reaches memory through one GMI link. Measured per-CCD read bandwidth is ~45 GB/s
  on Zen 4/5 and ~37 GB/s on Zen 2/3 (about 75% of 32 B/clk x FCLK); parts with 4 or fewer CCDs
  on EPYC 9004/9005 use two links per CCD (GMI-wide, AMD 9004 architecture overview). So a
  4-CCD Threadripper 7965WX cannot use its 8 DDR5 channels fully (calibration: 4.74 tok/s, not 7).
* Per thread, one core sustains ~25 GB/s of streaming reads (latency x outstanding misses).
* NUMA: weights spread over S sockets (interleave/distribute) use all sockets' channels, less 5%
  for cross-socket synchronisation (2x EPYC 9175F, llama.cpp #11744: 4.31 tok/s on a 140 GB F16).
  Interleaved pages put (S-1)/S of each socket's reads on the socket link; a link sustains about
  half a socket's bandwidth, which for S=2 exactly balances the memory side. With no placement
  ('none') the pages sit on the node that loaded them and remote threads read over the link:
  ~0.46 of one socket (2x Xeon 6238R, llama.cpp PR #16000: 1.91 tok/s). 'isolate' uses one node.
* Bytes per token: the weights read for one token. The token-embedding table is looked up one row
  per token, not streamed, so models of 6B+ parameters (untied embeddings: Llama, Qwen, Mistral)
  read their size minus that table (vocab ~128k x d_model); smaller models tie it to the output
  layer and read it whole. Mixture-of-experts models read `active_bytes`. A filled context adds
  the KV cache: 2 (K,V) x layers x 1024 (8 KV heads x 128, GQA) x 2 bytes per token of context.
* Layers and width are estimated from the (active) parameter count (Llama/Qwen families: 32 layers and
  d_model 4096 at 8B, 80/8192 at 70B, 126/16384 at 405B) unless the model dict gives them.
* SYNC_US = 4.7 us per layer per thread, from the two EPYC 9554 Phi-4 points (Q4_K_M and Q8_0
  leave the same ~11.5 ms unexplained at 64 threads) and the Xeon 8480 point (8 ms at 52 threads).

Fitted on tests/fixtures/throughput_calibration.json (repository root); benchmarks/throughput_error.py
prints the error on every point.
"""

import math
import re

from ansible_collections.cpu_llm.infra.plugins.module_utils.llm_hardware import (
    channels_per_socket as _channels_per_socket,
)

NUMA_MODES = ("interleave", "distribute", "isolate", "none")

# Bits per weight of llama.cpp quant types, including block scales (tools/quantize/README.md).
BITS_PER_WEIGHT = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.69, "Q5_K_S": 5.54,
    "Q5_0": 5.5, "Q5_1": 6.0, "Q4_K_M": 4.85, "Q4_K_S": 4.58, "Q4_0": 4.5, "Q4_1": 5.0, "IQ4_NL": 4.5,
    "IQ4_XS": 4.25, "Q3_K_L": 4.27, "Q3_K_M": 3.91, "Q3_K_S": 3.5, "IQ3_M": 3.66, "IQ3_XXS": 3.06,
    "Q2_K": 3.35, "IQ2_M": 2.7, "IQ2_XS": 2.31, "IQ2_XXS": 2.06, "IQ1_M": 1.75, "IQ1_S": 1.56,
    "TQ1_0": 1.69, "TQ2_0": 2.06,
}
DEFAULT_BPW = 6.56  # unknown quant: assume the product's default, Q6_K

# Per-core FLOP rate of llama.cpp's quantized matrix-vector kernels (GFLOP/s), by quant family
# and vector ISA. Dequantization dominates: simple block quants (Q4_0/Q8_0) have direct integer
# dot products (VNNI), k-quants unpack 6-bit scales, i-quants decode lattice codebooks and are
# the ones that turn compute-bound on few cores (llama.cpp discussions #5962, #4861).
CORE_GFLOPS = {"simple": (60.0, 40.0), "k": (40.0, 25.0), "i": (20.0, 12.0), "float": (32.0, 16.0)}

SYNC_US = 4.7
SERVER_EFFICIENCY = 0.80
CLIENT_EFFICIENCY = 0.93
PER_THREAD_GBS = 25.0
MULTI_SOCKET_SYNC = 0.95
NUMA_NONE_FACTOR = 0.46
LINK_FRACTION = 0.5
KV_BYTES_PER_TOKEN_PER_LAYER = 2 * 1024 * 2

# CCDs (chiplets) per AMD part where it differs from cores/8: lower-core SKUs often keep all
# CCDs with fewer cores each (F parts), or use fewer CCDs. From AMD's product pages.
_CCDS = {
    "9124": 4, "9174F": 8, "9224": 4, "9254": 4, "9274F": 8, "9334": 4, "9354": 8, "9354P": 8, "9374F": 8,
    "9454": 8, "9454P": 8, "9474F": 8, "9534": 8, "9554": 8, "9554P": 8, "9634": 12, "9654": 12,
    "9654P": 12, "9684X": 12, "9734": 8, "9754": 8, "9754S": 8,
    "9015": 2, "9115": 2, "9135": 2, "9175F": 16, "9255": 4, "9275F": 8, "9335": 4, "9355": 8, "9355P": 8,
    "9365": 6, "9375F": 8, "9455": 8, "9455P": 8, "9475F": 8, "9535": 8, "9555": 8, "9555P": 8, "9565": 12,
    "9575F": 8, "9645": 8, "9655": 12, "9655P": 12, "9745": 8, "9755": 16, "9825": 12, "9845": 10,
    "9965": 12,
    "7313": 4, "7313P": 4, "7343": 4, "73F3": 8, "7373X": 8, "7413": 4, "7443": 4, "7443P": 4, "7453": 4,
    "74F3": 8, "7473X": 8, "7513": 8, "7543": 8, "7543P": 8, "75F3": 8, "7573X": 8, "7643": 8, "7663": 8,
    "7713": 8, "7713P": 8, "7763": 8, "7773X": 8, "7T83": 8, "72F3": 8,
    "7995WX": 12, "7985WX": 8, "7975WX": 4, "7965WX": 4, "7955WX": 2, "7945WX": 2, "7980X": 8, "7970X": 4,
    "7960X": 4, "5995WX": 8, "5975WX": 4, "5965WX": 4, "5955WX": 2, "5945WX": 2,
}


class InputError(ValueError):
    """Bad input; the message names the field and the expected form."""


def _number(container, key, name, required=True, minimum=0, integer=False):
    value = container.get(key)
    if value is None:
        if required:
            raise InputError(f"{name}.{key} is required (a number >= {minimum})")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{name}.{key} must be a number, got {value!r}") from None
    if value < minimum or (isinstance(value, float) and math.isnan(value)):
        raise InputError(f"{name}.{key} must be >= {minimum}, got {value!r}")
    return int(value) if integer else float(value)


def quant_of(filename):
    """The quant tag in a GGUF file name ('M-Q6_K-00001-of-00003.gguf' -> 'Q6_K'), or None.

    Longest tag first, so Q4_K_M is not read as Q4_K; a tag ends at '-', '.' or the end of the name.
    """
    for tag in sorted(BITS_PER_WEIGHT, key=len, reverse=True):
        if re.search(r"(^|[-._/])" + re.escape(tag) + r"([-.]|$)", filename or "", re.IGNORECASE):
            return tag
    return None


def quant_bits(quant):
    return BITS_PER_WEIGHT.get((quant or "").upper(), DEFAULT_BPW)


def _quant_family(quant):
    q = (quant or "").upper()
    if q.startswith("IQ") or q.startswith("TQ"):
        return "i"
    if q in ("F16", "BF16", "F32"):
        return "float"
    if "_K" in q:
        return "k"
    return "simple" if q else "k"


def _amd_fabric_gbs(cpu_model, cores_per_socket):
    """Per-socket read bandwidth the CCD links allow, or None when not an AMD chiplet part."""
    model = cpu_model or ""
    if not re.search(r"\bAMD\b|EPYC|Ryzen|Threadripper", model, re.I):
        return None
    if re.search(r"Ryzen\s+\d\s+\d{4}G\b|Ryzen.*\bPRO\s+\d{4}G", model):
        return None  # APUs are monolithic
    sku = re.search(r"(?:EPYC|Threadripper(?:\s+PRO)?|Ryzen\s+\d)\s+(\w+)", model, re.I)
    sku = sku.group(1).upper() if sku else ""
    zen4_or_later = bool(re.match(r"^(9\d{2}[45]|8\d{3}|4\d{3}|7\d{2}[05]WX|7\d{2}0X|[79]\d{3}X?3D?$)", sku)) or \
        bool(re.search(r"Ryzen\s+\d\s+[79]\d{3}", model))
    per_ccd = 45.0 if zen4_or_later else 37.0
    ccds = _CCDS.get(sku)
    if ccds is None:
        ccds = max(1, math.ceil((cores_per_socket or 8) / 8))
    if ccds <= 4 and re.match(r"^9\d{3}", sku):
        per_ccd *= 2  # GMI-wide on EPYC 9004/9005 parts with 4 or fewer CCDs
    return ccds * per_ccd


def _estimate_params(model_bytes, quant):
    return model_bytes * 8 / quant_bits(quant)


def _shape(size, active, quant, params=None, layers=None):
    """(parameters, layers, d_model) of the part of the model computed per token."""
    params = params or _estimate_params(active or size, quant)
    scale = params / 8e9
    return params, layers or max(16.0, 32 * scale ** 0.35), 4096 * scale ** 0.353


def kv_cache_bytes(model, tokens):
    """Bytes of f16 KV cache for `tokens` tokens of context (all slots together)."""
    if not isinstance(model, dict):
        raise InputError(f"model must be a dict with size_bytes, got {type(model).__name__}")
    size = _number(model, "size_bytes", "model", minimum=1)
    active = _number(model, "active_bytes", "model", required=False, minimum=1)
    layers = _number(model, "layers", "model", required=False, minimum=1)
    tokens = _number({"tokens": tokens}, "tokens", "options", minimum=0, integer=True)
    _, layers, _ = _shape(size, active, model.get("quant"), layers=layers)
    return int(KV_BYTES_PER_TOKEN_PER_LAYER * layers * tokens)


def _placed_bandwidth(peak, channels, sockets, nodes, cores, used_threads, numa, cpu_model, warnings):
    """Sustained bandwidth from channels and speed, after CCD limits and NUMA placement; (GB/s, threads)."""
    efficiency = CLIENT_EFFICIENCY if channels / sockets <= 2 else SERVER_EFFICIENCY
    socket_bw = peak / sockets * efficiency
    fabric = _amd_fabric_gbs(cpu_model, cores / sockets)
    if fabric is not None and fabric < socket_bw:
        warnings.append(
            f"The CPU's chiplet links limit each socket to ~{fabric:.0f} GB/s, below what its memory "
            f"channels deliver (~{socket_bw:.0f} GB/s): a part with more CCDs would be faster.")
        socket_bw = fabric
    if numa == "isolate":
        return socket_bw * sockets / nodes, min(used_threads, max(1, cores // nodes))
    if sockets > 1 and numa == "none":
        bandwidth = socket_bw * NUMA_NONE_FACTOR
        warnings.append(
            f"numa '{numa}' on {sockets} sockets: the model's pages sit on one node and the other socket "
            "reads them over the socket link; run under numactl --interleave=all for ~"
            f"{socket_bw * sockets * MULTI_SOCKET_SYNC / bandwidth:.1f}x the speed.")
        return bandwidth, used_threads
    if sockets > 1:
        link_limit = socket_bw * LINK_FRACTION * sockets / (sockets - 1) if numa == "interleave" else socket_bw
        return min(socket_bw, link_limit) * sockets * MULTI_SOCKET_SYNC, used_threads
    return socket_bw, used_threads


def estimate(hardware, model, threads=None, numa="interleave", context=0, bandwidth_gbs=None):
    """Expected generation speed; see the module docstring. Raises InputError on bad input.

    bandwidth_gbs: a measured sustained read bandwidth (e.g. likwid-bench under the service's NUMA
    policy) used instead of the one estimated from channels and speed, which may then be unknown.
    """
    if not isinstance(hardware, dict):
        raise InputError(f"hardware must be a dict of llm_hardware facts, got {type(hardware).__name__}")
    if not isinstance(model, dict):
        raise InputError(f"model must be a dict with size_bytes, got {type(model).__name__}")
    sockets = _number(hardware, "sockets", "hardware", minimum=1, integer=True)
    cores = _number(hardware, "cores", "hardware", minimum=1, integer=True)
    nodes = _number(hardware, "numa_nodes", "hardware", minimum=1, integer=True)
    measured = _number({"bandwidth_gbs": bandwidth_gbs}, "bandwidth_gbs", "options", required=False, minimum=0.001)
    channels = _number(hardware, "memory_channels", "hardware", minimum=1, integer=True, required=measured is None)
    speed = _number(hardware, "memory_speed_mts", "hardware", minimum=1, required=measured is None)
    memory_total = _number(hardware, "memory_total_bytes", "hardware", required=False)
    size = _number(model, "size_bytes", "model", minimum=1)
    active = _number(model, "active_bytes", "model", required=False, minimum=1)
    layers = _number(model, "layers", "model", required=False, minimum=1)
    params = _number(model, "params", "model", required=False, minimum=1)
    if numa not in NUMA_MODES:
        raise InputError(f"numa must be one of {', '.join(NUMA_MODES)}, got {numa!r}")
    threads = cores if threads is None else _number({"threads": threads}, "threads", "options", minimum=1,
                                                        integer=True)
    context = _number({"context": context or 0}, "context", "options", minimum=0, integer=True)
    cpu_model = hardware.get("cpu_model") or ""
    flags = set(hardware.get("cpu_flags") or [])
    quant = model.get("quant")
    warnings = []

    # --- sizes (a mixture-of-experts model computes, and is as deep and wide as, its active part)
    params, layers, d_model = _shape(size, active, quant, params, layers)
    if active:
        bytes_per_token = active
    else:
        embedding = 128256 * d_model * quant_bits(quant) / 8 if params >= 6e9 else 0.0
        bytes_per_token = size - embedding
    bytes_per_token += KV_BYTES_PER_TOKEN_PER_LAYER * layers * context

    # --- bandwidth
    peak = channels * speed * 8 / 1000 if channels and speed else None  # GB/s
    used_threads = min(threads, cores)
    if measured is not None:
        # Measured under the service's own placement: NUMA and fabric effects are already in it.
        bandwidth = measured
    else:
        bandwidth, used_threads = _placed_bandwidth(peak, channels, sockets, nodes, cores, used_threads, numa,
                                                    cpu_model, warnings)
    bandwidth = min(bandwidth, used_threads * PER_THREAD_GBS)

    # --- compute
    avx512 = "avx512f" in flags or (not flags and re.search(r"EPYC\s+9|Xeon.*\b\d[3-9]\d\d", cpu_model) is not None)
    rate = CORE_GFLOPS[_quant_family(quant)][0 if avx512 else 1]
    t_compute = 2 * params / (used_threads * rate * 1e9)
    t_memory = bytes_per_token / (bandwidth * 1e9)
    t_sync = layers * threads * SYNC_US * 1e-6
    t_token = max(t_memory, t_compute) + t_sync
    bound = "compute" if t_compute > t_memory else "memory"

    # --- advice
    if threads > cores:
        warnings.append(f"threads={threads} exceeds the {cores} physical cores: SMT siblings add no "
                        "memory bandwidth and slow every barrier; use one thread per core.")
    if bound == "compute":
        warnings.append("Compute-bound: this quant's kernels cannot keep up with memory on "
                        f"{used_threads} threads; more cores or a simpler quant (Q4_0/Q8_0) would be faster.")
    channels_max = hardware.get("memory_channels_max") or (
        (_channels_per_socket(cpu_model) or 0) * sockets or None)
    if channels_max and channels and speed and channels < channels_max:
        warnings.append(f"{channels} of {channels_max} memory channels are populated: filling the rest "
                        f"raises the ceiling to {channels_max * speed * 8 / 1000 / (bytes_per_token / 1e9):.2f} tok/s.")
    rated = hardware.get("memory_speed_rated_mts")
    if rated and speed and speed < rated:
        warnings.append(f"DIMMs run at {speed:.0f} MT/s, below their rated {rated:.0f} MT/s: check the BIOS "
                        "memory speed setting and the CPU's supported speed at this DIMMs-per-channel.")
    fits = None
    if memory_total:
        needed = size + KV_BYTES_PER_TOKEN_PER_LAYER * layers * max(context, 4096)
        fits = needed * 1.05 <= memory_total
        if not fits:
            warnings.append(f"The model needs ~{needed / 1e9:.0f} GB with its KV cache but the host has "
                            f"{memory_total / 1e9:.0f} GB: it would be read from disk for every token.")

    tps = 1 / t_token
    return {
        "peak_bandwidth_gbs": round(peak, 1) if peak else None,
        "effective_bandwidth_gbs": round(bandwidth, 1),
        "bytes_per_token": int(bytes_per_token),
        "tokens_per_second": round(tps, 3),
        "tokens_per_second_ceiling": round(peak * 1e9 / bytes_per_token, 3) if peak else None,
        "seconds_per_token": round(t_token, 4),
        "bound": bound,
        "fits_in_memory": fits,
        "threads": threads,
        "numa": numa,
        "memory_channels_max": channels_max,
        "warnings": warnings,
    }
