"""Expected batch-1 token generation speed of mainline llama.cpp on a CPU, from hardware facts and a model profile.

Plain Python, no Ansible imports. estimate() composes five named steps:

  model_profile()        what is read and computed per token: from the GGUF header reader's profile
                         (active_bytes, n_layer, kv_bytes_per_token, expert counts ...), or, for old-style
                         model dicts (size_bytes/size_gb, quant, active_bytes, params, layers), estimated from the
                         size and quant as v1 did -- with a warning saying so.
  bytes_per_token()      weights read per token, split into routed-expert bytes and the rest, plus the KV cache.
  effective_bandwidth()  sustained read bandwidth after DIMM efficiency, AMD CCD links, NUMA placement and the
                         per-thread limit (or a measured bandwidth_gbs).
  compute_time()         2 x active parameters / (threads x per-core matvec rate of the quant family).
  sync_time()            graph nodes per token x threads x the cost of one thread in one ggml barrier.

  t_token = max(t_memory, t_compute) + t_sync
  t_memory = (dense bytes + KV) / bandwidth + routed-expert bytes / (bandwidth x EXPERT_EFFICIENCY)

Sourced constants (a source or a physical reason, not fitted to the calibration points):
* SERVER_EFFICIENCY 0.80 / CLIENT_EFFICIENCY 0.93: sustained fraction of peak (channels x MT/s x 8 B). STREAM on
  EPYC Genoa / Xeon Sapphire Rapids reaches 75-80% (AMD EPYC 9004 HPC tuning guide, Intel's STREAM results); a
  Ryzen 9 7950X owner measures ~64 of 64 GB/s dual-channel (ik_llama.cpp PR #54).
* AMD CCD links: ~45 GB/s per CCD on Zen 4/5, ~37 GB/s on Zen 2/3 (~75% of 32 B/clk x FCLK); EPYC 9004/9005 parts
  with <= 4 CCDs have two links per CCD (GMI-wide, AMD 9004 architecture overview). CCD counts: AMD product pages.
* PER_THREAD_GBS 25: one core's streaming reads (outstanding L2 misses x 64 B / DRAM latency, with prefetch).
* NUMA: interleaved/distributed weights use every socket's channels; a socket link sustains about half a
  socket's bandwidth (LINK_FRACTION), which for 2 sockets balances. 'none' (pages where first touched) reaches
  NUMA_NONE_FACTOR 0.5 of ONE socket: llamafile #765 measures 8 t/s pinned to one socket and 4 t/s unpinned over
  two on the same box and engine (a ratio, so the engine cancels); llama.cpp PR #16000 (2x Xeon 6238R) agrees
  (0.46). MULTI_SOCKET_SYNC 0.95: the cross-socket share of barrier/cache traffic on 2x EPYC 9175F (llama.cpp
  #11744); it is read off that one calibration point, so that point's held-out error is optimistic.
* Bytes per token: the profile's active_bytes = all weights but token_embd (looked up one row per token), with
  routed experts at used/total. Routed-expert bytes are recovered from the profile as
  (size - active) / (1 - used/total) x used/total (exact but for token_embd, which is < 1% of a MoE model).
  KV: kv_bytes_per_token x context tokens.
* CORE_GFLOPS: per-core rate of llama.cpp's quantized matvec kernels by quant family and ISA (llama.cpp
  discussions #5962, #4861: i-quants decode lattice codebooks and turn compute-bound on few cores).
* Graph nodes per layer (what the barrier count follows): a dense llama-style layer is ~24 ggml nodes at batch 1
  (2 norms + 2 muls, q/k/v/o and gate/up/down matmuls, 2 ropes, 2 KV-cache copies, 3 attention ops, glu, 2 residual
  adds, and the reshapes/views/permutes between them; llama.cpp src/llama-model.cpp, build_attn/build_ffn), and
  ggml's CPU backend runs a barrier after every node (ggml-cpu.c ggml_graph_compute_thread). A MoE layer adds
  ~10 nodes for routing (router matmul, softmax, argsort/top-k view, get_rows of the weights, normalisation,
  mul_mat_id x 3 instead of 3 matmuls, weighting) and 2 per used expert (the view + add that sums each expert's
  output; build_moe_ffn).

Fitted constants (FITTED; refitted by fit() on the used calibration points; the held-out error is what
benchmarks/throughput_error.py prints):
* barrier_ns: cost of one ggml barrier per participating thread. Cross-check: llama.cpp PR #9598's test-barrier
  on an EPYC takes 2.0-3.0 us per (tiny) node at 4-8 threads, i.e. 250-500 ns per thread.
* expert_efficiency: fraction of the streaming bandwidth that routed-expert matvecs reach. Each used expert is a
  separate small matrix (DeepSeek: 2048 x 7168) whose rows are split over all threads, one expert after the
  other, so every thread streams many short blocks; ikawrakow (ik_llama.cpp PR #287) notes that mainline
  DeepSeek-R1 results on 400+ GB/s EPYC/Xeon are "far from saturating the memory bandwidth", and fairydreaming
  (llama.cpp PR #11446) that the 7168 x 2048 expert matrices are too small to gain from a second socket.

Range: tokens_per_second_low/high = the point estimate x the 10th/90th percentile of measured/predicted over the
leave-one-out predictions of the calibration points (LOO_RATIO_P10/P90; tests check they match the fixtures).
Warnings name inputs outside what the used calibration points cover (CALIBRATION_COVERAGE, checked likewise).

Calibration: tests/fixtures/throughput_calibration.json and throughput_more.json (points with "use": true; each
point says why). benchmarks/throughput_error.py prints the naive, in-sample and leave-one-out errors.
"""

import math
import re
import statistics

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



# --- sourced constants (module docstring gives each one's source)
SERVER_EFFICIENCY = 0.80
CLIENT_EFFICIENCY = 0.93
PER_THREAD_GBS = 25.0
MULTI_SOCKET_SYNC = 0.95
NUMA_NONE_FACTOR = 0.5
LINK_FRACTION = 0.5
DENSE_LAYER_NODES = 24
MOE_ROUTING_NODES = 10
MOE_NODES_PER_USED_EXPERT = 2

# --- fallbacks for old-style model dicts (no profile); each use is reported in `warnings`
# KV per token per layer of the Llama/Qwen GQA families: 2 (K, V) x 8 KV heads x 128 x 2 bytes (f16).
FALLBACK_KV_BYTES_PER_LAYER = 2 * 1024 * 2
# Vocabulary of the Llama-3 family, for the token_embd table that is not streamed (untied models of 6B+).
FALLBACK_VOCAB = 128256
# Share of a MoE model's active bytes that are routed experts when the expert counts are unknown: DeepSeek-V3
# 0.57, Llama-4-Scout 0.47, Mixtral 0.89 (profiles in tests/fixtures) -> ~0.6, and 8 used experts (DeepSeek-class).
FALLBACK_ROUTED_SHARE = 0.6
FALLBACK_USED_EXPERTS = 8

# --- fitted constants: the values fit() returns on the used calibration points (tests check this), and the
# grid fit() searches (start, stop, step). Keep this list short: every fitted constant can overfit.
FITTED = {"barrier_ns": 170.0, "expert_efficiency": 0.9}
FIT_GRID = {"barrier_ns": (20.0, 600.0, 10.0), "expert_efficiency": (0.30, 1.00, 0.02)}

# --- spread of held-out errors: 10th/90th percentile of measured/predicted over the leave-one-out predictions
# of the used calibration points (benchmarks/throughput_error.py prints them; a test recomputes them).
LOO_RATIO_P10 = 0.95
LOO_RATIO_P90 = 1.05

# --- what the used calibration points cover (coverage() of them; a test recomputes it); estimate() warns outside.
CALIBRATION_COVERAGE = {
    "threads": [4, 64], "sockets": [1, 2], "memory_types": ["DDR4", "DDR5"], "vendors": ["AMD", "Intel"],
    "gb_per_token": [4.4, 138.6], "size_gb": [4.6, 404.4], "quants": ["F16", "Q4_0", "Q4_K", "Q6_K", "Q8_0"],
    "min_expert_fraction": 0.0312, "multi_socket_numa": ["distribute", "none"],
}


def _dominant_type(quant_mix):
    """The ggml type holding most bytes in a profile's quant_mix ({type: bytes}), or None."""
    if not isinstance(quant_mix, dict) or not quant_mix:
        return None
    return max(quant_mix, key=lambda t: quant_mix[t] if isinstance(quant_mix[t], (int, float)) else 0)


def _ggml_type(quant):
    """The ggml tensor type of a quant tag or type: file tags Q4_K_M / Q4_K_S name the mix, Q4_K the type."""
    return re.sub(r"^(Q\d_K)_[SML]$", r"\1", (quant or "").upper())


def cpu_vendor(cpu_model):
    model = cpu_model or ""
    if re.search(r"\bAMD\b|EPYC|Ryzen|Threadripper", model, re.I):
        return "AMD"
    if re.search(r"Intel|Xeon|Core\(TM\)", model, re.I):
        return "Intel"
    return "other"


# --- step 1: the model profile -------------------------------------------------------------------------------

def model_profile(model, warnings=None):
    """What one token reads and computes: the GGUF profile's fields, or v1's estimates for old-style dicts.

    Returns dict(size, active, routed, active_params, n_layer, kv_per_token, quant, expert_count, used_experts).
    """
    warnings = [] if warnings is None else warnings
    if not isinstance(model, dict):
        raise InputError(f"model must be a dict with size_bytes, got {type(model).__name__}")
    if model.get("size_bytes") is None and model.get("size_gb") is not None:
        size = _number(model, "size_gb", "model", minimum=1e-9) * 1e9
    else:
        size = _number(model, "size_bytes", "model", minimum=1)
    active = _number(model, "active_bytes", "model", required=False, minimum=1)
    active_params = _number(model, "active_params", "model", required=False, minimum=1)
    params = _number(model, "params", "model", required=False, minimum=1)
    n_layer = _number(model, "n_layer", "model", required=False, minimum=1, integer=True)
    if n_layer is None:
        n_layer = _number(model, "layers", "model", required=False, minimum=1)
    kv_per_token = _number(model, "kv_bytes_per_token", "model", required=False, minimum=0)
    experts = _number(model, "expert_count", "model", required=False, minimum=0, integer=True) or 0
    used = _number(model, "expert_used_count", "model", required=False, minimum=0, integer=True) or 0
    quant = _dominant_type(model.get("quant_mix")) or model.get("quant")
    if active is not None and active > size:
        raise InputError(f"model.active_bytes ({active:.0f}) must not exceed model.size_bytes ({size:.0f})")
    if experts and used > experts:
        raise InputError(f"model.expert_used_count ({used}) must not exceed model.expert_count ({experts})")

    missing = [key for key, value in (("active_bytes", active), ("n_layer", n_layer), ("active_params", active_params),
                                      ("kv_bytes_per_token", kv_per_token)) if value is None]
    if missing:
        warnings.append(f"No model profile ({', '.join(missing)} missing): estimated from the size and quant "
                        "assuming Llama-family shapes; pass the GGUF header profile for a better estimate.")
    # v1's estimates: parameters from bytes and bits per weight, depth and width from the Llama/Qwen families
    # (32 layers / d_model 4096 at 8B, 80 / 8192 at 70B, 126 / 16384 at 405B).
    if active_params is None:
        active_params = params if (params and active is None) else (active or size) * 8 / quant_bits(quant)
    scale = active_params / 8e9
    if n_layer is None:
        n_layer = max(16.0, 32 * scale ** 0.35)
    if kv_per_token is None:
        kv_per_token = FALLBACK_KV_BYTES_PER_LAYER * n_layer
    if active is None:
        d_model = 4096 * scale ** 0.353
        # Untied token_embd (6B+ models) is looked up, not streamed; small models tie it to the output and read it.
        embedding = FALLBACK_VOCAB * d_model * quant_bits(quant) / 8 if active_params >= 6e9 else 0.0
        active = size - embedding

    routed = 0.0
    if experts and used and used < experts:
        routed = min(active, max(0.0, (size - active) / (1 - used / experts) * used / experts))
    elif active < 0.9 * size and not experts and model.get("dense") is not True:
        # Old-style MoE dict: active_bytes well below the size but no expert counts.
        routed = FALLBACK_ROUTED_SHARE * active
        used = FALLBACK_USED_EXPERTS
        warnings.append("Mixture-of-experts counts unknown (expert_count, expert_used_count): assuming "
                        f"{FALLBACK_ROUTED_SHARE:.0%} of the active bytes are routed experts, {used} used.")
    return {"size": size, "active": active, "routed": routed, "active_params": active_params, "n_layer": n_layer,
            "kv_per_token": kv_per_token, "quant": quant, "expert_count": experts,
            "used_experts": used if routed else 0}


# --- step 2: bytes read per token ----------------------------------------------------------------------------

def bytes_per_token(profile, context):
    """(streamed bytes, routed-expert bytes, KV bytes) read for one token with `context` tokens in the cache."""
    return profile["active"] - profile["routed"], profile["routed"], profile["kv_per_token"] * context


# --- step 3: bandwidth ---------------------------------------------------------------------------------------

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



def effective_bandwidth(hardware, threads, numa, measured=None, warnings=None):
    """(sustained GB/s llama.cpp reads at, threads that take part, peak GB/s or None)."""
    warnings = [] if warnings is None else warnings
    sockets = _number(hardware, "sockets", "hardware", minimum=1, integer=True)
    cores = _number(hardware, "cores", "hardware", minimum=1, integer=True)
    nodes = _number(hardware, "numa_nodes", "hardware", minimum=1, integer=True)
    channels = _number(hardware, "memory_channels", "hardware", minimum=1, integer=True, required=measured is None)
    speed = _number(hardware, "memory_speed_mts", "hardware", minimum=1, required=measured is None)
    peak = channels * speed * 8 / 1000 if channels and speed else None
    used_threads = min(threads, cores)
    if measured is not None:
        # Measured under the service's own placement: NUMA and fabric effects are already in it.
        bandwidth = measured
    else:
        bandwidth, used_threads = _placed_bandwidth(peak, channels, sockets, nodes, cores, used_threads, numa,
                                                    hardware.get("cpu_model") or "", warnings)
    return min(bandwidth, used_threads * PER_THREAD_GBS), used_threads, peak


# --- step 4: compute -----------------------------------------------------------------------------------------

def compute_time(profile, threads, hardware):
    """Seconds of matvec arithmetic per token on `threads` cores (2 FLOP per active parameter)."""
    flags = set(hardware.get("cpu_flags") or [])
    cpu_model = hardware.get("cpu_model") or ""
    avx512 = "avx512f" in flags or (not flags and re.search(r"EPYC\s+9|Xeon.*\b\d[3-9]\d\d", cpu_model) is not None)
    rate = CORE_GFLOPS[_quant_family(profile["quant"])][0 if avx512 else 1]
    return 2 * profile["active_params"] / (threads * rate * 1e9)


# --- step 5: synchronisation ---------------------------------------------------------------------------------

def graph_nodes_per_token(profile):
    """ggml graph nodes (each followed by a barrier) in one token's forward pass."""
    per_layer = DENSE_LAYER_NODES
    if profile["routed"]:
        per_layer += MOE_ROUTING_NODES + MOE_NODES_PER_USED_EXPERT * profile["used_experts"]
    return profile["n_layer"] * per_layer


def sync_time(profile, threads, constants):
    """Seconds per token spent in ggml's per-node thread barriers."""
    return graph_nodes_per_token(profile) * threads * constants["barrier_ns"] * 1e-9


# --- composition ---------------------------------------------------------------------------------------------

def estimate(hardware, model, threads=None, numa="interleave", context=0, bandwidth_gbs=None, constants=None):
    """Expected generation speed; see the module docstring. Raises InputError on bad input.

    bandwidth_gbs: a measured sustained read bandwidth (e.g. likwid-bench under the service's NUMA policy) used
    instead of the one estimated from channels and speed, which may then be unknown.
    constants: overrides of FITTED (fit() uses this); callers leave it out.
    """
    if not isinstance(hardware, dict):
        raise InputError(f"hardware must be a dict of llm_hardware facts, got {type(hardware).__name__}")
    if not isinstance(model, dict):
        raise InputError(f"model must be a dict with size_bytes, got {type(model).__name__}")
    constants = dict(FITTED, **(constants or {}))
    cores = _number(hardware, "cores", "hardware", minimum=1, integer=True)
    _number(hardware, "sockets", "hardware", minimum=1, integer=True)
    _number(hardware, "numa_nodes", "hardware", minimum=1, integer=True)
    measured = _number({"bandwidth_gbs": bandwidth_gbs}, "bandwidth_gbs", "options", required=False, minimum=0.001)
    for key in ("memory_channels", "memory_speed_mts"):
        _number(hardware, key, "hardware", minimum=1, required=measured is None)
    warnings = []
    profile = model_profile(model, warnings)
    if numa not in NUMA_MODES:
        raise InputError(f"numa must be one of {', '.join(NUMA_MODES)}, got {numa!r}")
    threads = cores if threads is None else _number({"threads": threads}, "threads", "options", minimum=1,
                                                        integer=True)
    context = _number({"context": context or 0}, "context", "options", minimum=0, integer=True)

    streamed, routed, kv = bytes_per_token(profile, context)
    bandwidth, used_threads, peak = effective_bandwidth(hardware, threads, numa, measured, warnings)
    t_memory = (streamed + kv + routed / constants["expert_efficiency"]) / (bandwidth * 1e9)
    t_compute = compute_time(profile, used_threads, hardware)
    t_sync = sync_time(profile, threads, constants)
    t_token = max(t_memory, t_compute) + t_sync
    bound = "compute" if t_compute > t_memory else "memory"
    total_bytes = streamed + routed + kv

    warnings += _advice(hardware, profile, threads, cores, used_threads, bound, peak, total_bytes)
    warnings += coverage_warnings(hardware, profile, threads, numa, measured is not None)
    tps = 1 / t_token
    channels_max = hardware.get("memory_channels_max") or (
        (_channels_per_socket(hardware.get("cpu_model") or "") or 0) * hardware["sockets"] or None)
    return {
        "peak_bandwidth_gbs": round(peak, 1) if peak else None,
        "effective_bandwidth_gbs": round(bandwidth, 1),
        "bytes_per_token": int(total_bytes),
        "tokens_per_second": round(tps, 3),
        # A range from the held-out calibration errors (module docstring); always low < estimate < high.
        "tokens_per_second_low": round(tps * min(LOO_RATIO_P10, 0.99), 3),
        "tokens_per_second_high": round(tps * max(LOO_RATIO_P90, 1.01), 3),
        "tokens_per_second_ceiling": round(peak * 1e9 / total_bytes, 3) if peak else None,
        "seconds_per_token": round(t_token, 4),
        "seconds_per_token_parts": {"memory": round(t_memory, 4), "compute": round(t_compute, 4),
                                    "sync": round(t_sync, 4)},
        "bound": bound,
        "threads": threads,
        "numa": numa,
        "memory_channels_max": channels_max,
        "warnings": warnings,
    }


def _advice(hardware, profile, threads, cores, used_threads, bound, peak, total_bytes):
    """Warnings a person can act on."""
    out = []
    if threads > cores:
        out.append(f"threads={threads} exceeds the {cores} physical cores: SMT siblings add no "
                   "memory bandwidth and slow every barrier; use one thread per core.")
    if bound == "compute":
        out.append("Compute-bound: this quant's kernels cannot keep up with memory on "
                   f"{used_threads} threads; more cores or a simpler quant (Q4_0/Q8_0) would be faster.")
    cpu_model = hardware.get("cpu_model") or ""
    channels, speed = hardware.get("memory_channels"), hardware.get("memory_speed_mts")
    channels_max = hardware.get("memory_channels_max") or (
        (_channels_per_socket(cpu_model) or 0) * hardware["sockets"] or None)
    if channels_max and channels and speed and peak and channels < channels_max:
        out.append(f"{channels} of {channels_max} memory channels are populated: filling the rest "
                   f"raises the ceiling to {channels_max * speed * 8 / 1000 / (total_bytes / 1e9):.2f} tok/s.")
    rated = hardware.get("memory_speed_rated_mts")
    if rated and speed and speed < rated:
        out.append(f"DIMMs run at {speed:.0f} MT/s, below their rated {rated:.0f} MT/s: check the BIOS "
                   "memory speed setting and the CPU's supported speed at this DIMMs-per-channel.")
    return out


def kv_cache_bytes(model, tokens):
    """Bytes of f16 KV cache for `tokens` tokens of context (all slots together)."""
    profile = model_profile(model)
    tokens = _number({"tokens": tokens}, "tokens", "options", minimum=0, integer=True)
    return int(profile["kv_per_token"] * tokens)


# --- calibration coverage ------------------------------------------------------------------------------------

def _coverage_of(hardware, profile, threads, numa):
    return {"threads": threads, "sockets": hardware.get("sockets"), "memory_type": hardware.get("memory_type"),
            "vendor": cpu_vendor(hardware.get("cpu_model")), "gb_per_token": profile["active"] / 1e9,
            "size_gb": profile["size"] / 1e9, "quant": _ggml_type(profile["quant"]),
            "expert_fraction": (profile["used_experts"] / profile["expert_count"]) if profile["expert_count"] else None,
            "numa": numa if (hardware.get("sockets") or 1) > 1 else None}


def _span(values):
    values = list(values)
    return [round(min(values), 1), round(max(values), 1)]


def coverage(points):
    """What the calibration points (as from calibration_points()) cover, in CALIBRATION_COVERAGE's form."""
    rows = []
    for p in points:
        threads = p["options"].get("threads") or p["hardware"]["cores"]
        rows.append(_coverage_of(p["hardware"], model_profile(p["model"]), threads, p["options"].get("numa",
                                                                                                   "interleave")))
    fractions = [r["expert_fraction"] for r in rows if r["expert_fraction"] is not None]
    return {
        "threads": [min(r["threads"] for r in rows), max(r["threads"] for r in rows)],
        "sockets": sorted({r["sockets"] for r in rows}),
        "memory_types": sorted({r["memory_type"] for r in rows if r["memory_type"]}),
        "vendors": sorted({r["vendor"] for r in rows}),
        "gb_per_token": _span(r["gb_per_token"] for r in rows),
        "size_gb": _span(r["size_gb"] for r in rows),
        "quants": sorted({r["quant"] for r in rows}),
        "min_expert_fraction": round(min(fractions), 4) if fractions else None,
        "multi_socket_numa": sorted({r["numa"] for r in rows if r["numa"]}),
    }


def coverage_warnings(hardware, profile, threads, numa, measured_bandwidth=False):
    """One warning per input outside what the used calibration points cover."""
    cov, mine, out = CALIBRATION_COVERAGE, _coverage_of(hardware, profile, threads, numa), []
    if not cov:
        return out
    prefix = "Outside the calibration"
    if not cov["threads"][0] <= threads <= cov["threads"][1]:
        out.append(f"{prefix}: {threads} threads (calibrated {cov['threads'][0]}-{cov['threads'][1]}).")
    if mine["sockets"] not in cov["sockets"]:
        out.append(f"{prefix}: {mine['sockets']} sockets (calibrated {cov['sockets']}).")
    if mine["memory_type"] and mine["memory_type"] not in cov["memory_types"] and not measured_bandwidth:
        out.append(f"{prefix}: {mine['memory_type']} memory (calibrated {', '.join(cov['memory_types'])}).")
    if mine["vendor"] not in cov["vendors"]:
        out.append(f"{prefix}: CPU vendor of '{hardware.get('cpu_model') or 'unknown'}' "
                   f"(calibrated {', '.join(cov['vendors'])}).")
    if not cov["gb_per_token"][0] * 0.8 <= mine["gb_per_token"] <= cov["gb_per_token"][1] * 1.25:
        out.append(f"{prefix}: {mine['gb_per_token']:.1f} GB of weights per token "
                   f"(calibrated {cov['gb_per_token'][0]}-{cov['gb_per_token'][1]} GB).")
    if not cov["size_gb"][0] * 0.8 <= mine["size_gb"] <= cov["size_gb"][1] * 1.25:
        out.append(f"{prefix}: a {mine['size_gb']:.0f} GB model (calibrated {cov['size_gb'][0]}-"
                   f"{cov['size_gb'][1]} GB).")
    if mine["quant"] and mine["quant"] not in cov["quants"]:
        out.append(f"{prefix}: quant type {mine['quant']} (calibrated {', '.join(cov['quants'])}).")
    fraction = mine["expert_fraction"]
    if fraction is not None and (cov["min_expert_fraction"] is None or fraction < cov["min_expert_fraction"]):
        out.append(f"{prefix}: {profile['used_experts']} of {profile['expert_count']} experts used per token "
                   f"(sparsest calibrated: {cov['min_expert_fraction']}).")
    if mine["numa"] and mine["numa"] not in cov["multi_socket_numa"] and not measured_bandwidth:
        out.append(f"{prefix}: numa '{numa}' on {mine['sockets']} sockets "
                   f"(calibrated {', '.join(cov['multi_socket_numa'])}).")
    return out


# --- fitting and held-out error ------------------------------------------------------------------------------

def calibration_points(*fixtures):
    """The used points of calibration fixtures, as dicts of hardware, model, options, measured, label, source.

    Reads both forms: throughput_calibration.json (inputs at the top of each point) and throughput_more.json
    (original fields plus a 'calibration' block). Points with "use": false are left out.
    """
    points = []
    for fixture in fixtures:
        for raw in fixture["points"]:
            if not raw.get("use", True):
                continue
            block = raw.get("calibration", raw)
            measured = block.get("measured_tps", raw.get("tg_tps"))
            points.append({"hardware": block["hardware"], "model": block["model"], "options": block.get("options", {}),
                           "measured": measured, "source": raw["source"],
                           "label": f"{block['hardware']['cpu_model'][:32]} | {block['model'].get('name', '')}"
                                    f" {block['model'].get('quant', '')}"})
    return points


def predict(point, constants=None):
    options = point["options"]
    return estimate(point["hardware"], point["model"], threads=options.get("threads"),
                    numa=options.get("numa", "interleave"), constants=constants)["tokens_per_second"]


def _loss(points, constants):
    """Mean absolute log error: symmetric in over- and under-prediction."""
    return statistics.fmean(abs(math.log(predict(p, constants) / p["measured"])) for p in points)


def _grid(name):
    start, stop, step = FIT_GRID[name]
    return [round(start + i * step, 6) for i in range(round((stop - start) / step) + 1)]


def fit(points, rounds=3):
    """FITTED's constants that minimise the mean absolute log error on `points`: coordinate search on FIT_GRID."""
    constants = {name: _grid(name)[len(_grid(name)) // 2] for name in FIT_GRID}
    for _ in range(rounds):
        before = dict(constants)
        for name in FIT_GRID:
            constants[name] = min(_grid(name), key=lambda v: _loss(points, dict(constants, **{name: v})))
        if constants == before:
            break
    return constants


def leave_one_out(points):
    """measured/predicted for each point, predicted with constants fitted without it."""
    ratios = []
    for i, point in enumerate(points):
        constants = fit(points[:i] + points[i + 1:])
        ratios.append(point["measured"] / predict(point, constants))
    return ratios


def error_summary(ratios):
    """median absolute error, share within +-40%, max ratio (either way), points; from measured/predicted."""
    errors = [abs(1 / r - 1) for r in ratios]  # |predicted/measured - 1|
    return {"median_abs_error": statistics.median(errors),
            "within_40": sum(e <= 0.40 for e in errors) / len(errors),
            "max_ratio": max(max(r, 1 / r) for r in ratios), "points": len(ratios)}


def ratio_percentiles(ratios):
    """(10th, 90th) percentile of measured/predicted: the range estimate() returns."""
    deciles = statistics.quantiles(ratios, n=10, method="inclusive")
    return deciles[0], deciles[-1]
