"""Autotune: a bounded llama-bench search for the llama-server settings that are fastest on this host.

Plain Python, standard library only, no Ansible imports: the llm_autotune module and the unit tests
import it. The search takes the measurement as a function, so the tests run it on synthetic hosts.

Why measure instead of deriving: the right settings depend on the build, the model and the host in ways
no table predicts. Published cases: on an EPYC 9655 an OpenMP build without OMP_WAIT_POLICY=active fell
from 48.8 to 17 tokens/s; loading while the NUMA nodes were full of page cache cost 25%; on parts with
many CCDs the best generation thread count is often below the core count.

A configuration is a dict: threads, numa ("none", "interleave", "distribute", "node0"), omp (bool: the
OpenMP environment below), batch, ubatch, mmap (bool).
"""

import hashlib
import json
import os
import re
import statistics
import time

VERSION = 1

# llama.cpp's own defaults (common_params: n_batch 2048, n_ubatch 512; mmap on): what the server runs
# with when nothing is tuned, hence where the search starts.
DEFAULT_BATCH, DEFAULT_UBATCH = 2048, 512
# Micro-batch sizes tried for prompt processing, in walking order: the default, one step up, then down.
UBATCH_LADDER = (512, 1024, 256, 128)

# OpenMP's default wait policy lets idle workers sleep between the many short barriers of a token;
# waking them costs more than the work (EPYC 9655: 48.8 tok/s with active, 17 without). close/cores
# keep each worker on its own physical core, next to the previous one.
OMP_ENV = {"OMP_WAIT_POLICY": "active", "OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}

NUMACTL = {"interleave": ["--interleave=all"], "node0": ["--cpunodebind=0", "--membind=0"]}

# An improvement counts only above max(MIN_GAIN, NOISE_FACTOR x the measured relative noise):
# below 2% a difference does not survive the next reboot; 2x the noise keeps a lucky sample out.
MIN_GAIN = 0.02
NOISE_FACTOR = 2.0
# A dimension's walk stops after this many values in a row were measurably worse than the best.
PATIENCE = 2
# One node runs the model only if it leaves this share of the node's memory for the KV cache, the
# page cache and the OS.
NODE_FIT = 0.8

DIMENSIONS = ("omp", "threads", "numa", "mmap", "batch")
OBJECTIVE = {"batch": "pp"}  # every other dimension: generation speed (tg)


class BenchError(Exception):
    """The default configuration could not be measured: nothing to compare against."""


# --- topology ----------------------------------------------------------------------------

def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def parse_cpu_list(text):
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]."""
    out = []
    for part in (text or "").strip().split(","):
        if part:
            low, _, high = part.partition("-")
            out.extend(range(int(low), int(high or low) + 1))
    return out


def _meminfo_total(text):
    """MemTotal in bytes from /proc/meminfo or nodeN/meminfo ('Node 0 MemTotal: 123 kB')."""
    match = re.search(r"MemTotal:\s+(\d+)\s*kB", text or "")
    return int(match.group(1)) * 1024 if match else None


def topology(sys_root="/"):
    """{sockets, numa_nodes, cores, threads, cores_per_node, node_memory_bytes} read from sysfs.

    cores are physical (one per thread_siblings_list, else per package/core_id pair);
    cores_per_node is the physical cores of the smallest node that has CPUs (what one node can run).
    """
    cpu_dir = os.path.join(sys_root, "sys/devices/system/cpu")
    node_dir = os.path.join(sys_root, "sys/devices/system/node")
    online = parse_cpu_list(_read(os.path.join(cpu_dir, "online")))
    if not online:
        online = sorted(int(n[3:]) for n in os.listdir(cpu_dir) if re.fullmatch(r"cpu\d+", n))
    core_of, packages = {}, set()
    for cpu in online:
        top = os.path.join(cpu_dir, f"cpu{cpu}", "topology")
        package = _read(os.path.join(top, "physical_package_id")) or "0"
        siblings = _read(os.path.join(top, "thread_siblings_list"))
        core_id = _read(os.path.join(top, "core_id"))
        packages.add(package)
        if siblings:
            core_of[cpu] = ("siblings", tuple(parse_cpu_list(siblings)))
        else:
            core_of[cpu] = ("core", package, core_id if core_id is not None else str(cpu))

    nodes = sorted(int(n[4:]) for n in (os.listdir(node_dir) if os.path.isdir(node_dir) else [])
                   if re.fullmatch(r"node\d+", n))
    node_cores, node_memory = [], []
    for node in nodes:
        cpus = [c for c in parse_cpu_list(_read(os.path.join(node_dir, f"node{node}", "cpulist"))) if c in core_of]
        node_cores.append(len({core_of[c] for c in cpus}))
        node_memory.append(_meminfo_total(_read(os.path.join(node_dir, f"node{node}", "meminfo"))))
    cores = len(set(core_of.values()))
    if not nodes:  # a kernel without NUMA support: the whole machine is one node
        node_cores = [cores]
        node_memory = [_meminfo_total(_read(os.path.join(sys_root, "proc/meminfo")))]
    cpu_nodes = [n for n in node_cores if n] or [cores]
    return {
        "sockets": len(packages),
        "numa_nodes": len(node_cores),
        "cores": cores,
        "threads": len(online),
        "cores_per_node": min(cpu_nodes),
        "node_memory_bytes": node_memory,
    }


def thread_ladder(topo):
    """Candidate thread counts in walking order, without repeats.

    The physical core count first (llama.cpp's advice and the unit's default), then every hardware
    thread if SMT is on (rarely better: siblings share the load units, not more bandwidth), then
    downwards: cores-1, whole nodes, 3/4, 1/2 and 1/4 of the cores. Generation is memory-bound, and on
    parts with many CCDs fewer threads often saturate the memory with less synchronisation.
    """
    cores, threads = topo["cores"], topo["threads"]
    per_node, nodes = topo["cores_per_node"], topo["numa_nodes"]
    floor = max(1, cores // 4)
    below = {cores - 1, cores * 3 // 4, cores // 2, floor}
    below.update(k * per_node for k in range(1, nodes))
    ladder = [cores] + ([threads] if threads > cores else [])
    ladder += sorted((n for n in below if floor <= n < cores), reverse=True)
    return ladder


# --- the search space -----------------------------------------------------------------------

def uses_openmp(ldd_outputs):
    """Whether any of these `ldd` outputs (llama-bench, its libggml*) links an OpenMP runtime."""
    return any(re.search(r"\blib(?:gomp|omp|iomp5)\.so", text or "") for text in ldd_outputs)


def search_space(topo, openmp, model_bytes=None, n_prompt=None, dimensions=DIMENSIONS, numactl=True):
    """(space, notes): the ordered [(name, values[, reason])] for search(), and why values were left out.

    values[0] is the default (what the unit runs untuned); values are plain or config patches (dicts);
    a third element skips the dimension with that reason. The order: the OpenMP wait policy first (it
    can more than double generation speed and changes which thread count is best), threads, NUMA, mmap;
    batch last (it tunes prompt processing only). notes: {"numa=node0": reason, ...}.
    """
    notes = {}
    space = []
    for name in DIMENSIONS:
        if name == "omp":
            entry = ("omp", [False, True])
            if openmp is False:  # None: ldd could not tell, so measure it
                entry += ("the build does not link an OpenMP runtime (libgomp/libomp): OMP_* change nothing",)
        elif name == "threads":
            entry = ("threads", thread_ladder(topo))
        elif name == "numa":
            entry = _numa_entry(topo, model_bytes, numactl, notes)
        elif name == "mmap":
            entry = ("mmap", [True, False])
        else:
            entry = ("batch", _batch_values(n_prompt))
            if n_prompt == 0:
                entry += ("n_prompt 0: no prompt-processing test to decide batch sizes",)
            elif len(entry[1]) < 2:
                entry += (f"n_prompt {n_prompt} is one micro-batch for every ubatch candidate "
                          f"({', '.join(map(str, UBATCH_LADDER))}); raise n_prompt to tune batch sizes",)
        if name not in dimensions and len(entry) == 2:
            entry = (name, entry[1][:1], "not among the dimensions to tune")
        space.append(entry)
    return space, notes


def _numa_entry(topo, model_bytes, numactl, notes):
    if topo["numa_nodes"] < 2:
        return ("numa", ["none"], "one NUMA node: every policy places memory the same way")
    if not numactl:
        notes["numa=interleave"] = notes["numa=node0"] = "numactl is not installed"
        return ("numa", ["none", "distribute"])
    # interleave=all first: the unit's policy, all nodes' memory channels serve every token.
    values = ["interleave", "distribute", "none"]
    node_memory = (topo["node_memory_bytes"] or [None])[0]
    if model_bytes and node_memory and model_bytes <= node_memory * NODE_FIT:
        # One node's cores at most: more threads than the node has cores would only time-share them.
        values.insert(2, {"numa": "node0", "threads": topo["cores_per_node"]})
    elif not model_bytes or not node_memory:
        notes["numa=node0"] = "the model's or node 0's size is unknown"
    else:
        notes["numa=node0"] = (f"the model ({model_bytes / 2**30:.1f} GiB) does not fit in {NODE_FIT:.0%} "
                               f"of node 0's memory ({node_memory / 2**30:.1f} GiB)")
    return ("numa", values)


def _batch_values(n_prompt):
    """ubatch candidates that a prompt of n_prompt tokens can tell apart (a shorter prompt is one ubatch)."""
    values, seen = [], set()
    for ubatch in UBATCH_LADDER:
        effective = min(ubatch, n_prompt or ubatch)
        if effective not in seen:
            seen.add(effective)
            values.append({"batch": max(DEFAULT_BATCH, ubatch), "ubatch": ubatch})
    return values


# --- the search ------------------------------------------------------------------------------

def _median(samples):
    return statistics.median(samples) if samples else None


def _spread(samples):
    """Relative noise of one measurement: sample standard deviation / mean (0 for fewer than 2)."""
    if len(samples) < 2 or not statistics.fmean(samples):
        return 0.0
    return statistics.stdev(samples) / statistics.fmean(samples)


def _patch(name, value):
    return dict(value) if isinstance(value, dict) else {name: value}


def _key(config):
    return json.dumps(config, sort_keys=True)


def search(measure, space, budget_seconds, clock=time.monotonic):
    """Coordinate descent from the default configuration, one pass over the dimensions of space.

    measure(config) -> {"tg": [tok/s samples], "pp": [...], "seconds": float} or, on failure,
    {"error": text, "seconds": float}. Each dimension walks its values in order and keeps a value only
    if its median beats the best so far by more than the noise threshold; the walk stops after
    PATIENCE values in a row that are measurably worse. No trial starts that the budget, estimated
    from the slowest trial so far, cannot fit; one such estimate stays reserved for the confirmation:
    when the chosen configuration is not the default, the default is measured again and the choice
    kept only if it still wins (a host whose load changed during the search favours whatever ran in
    the quiet moment). Raises BenchError when the default configuration fails.
    """
    start = clock()
    default = {}
    for entry in space:
        default.update(_patch(entry[0], entry[1][0]))
    trials, measured, skipped = [], {}, {}
    stopped = "done"

    def run(config, dimension):
        began = clock()
        result = measure(dict(config))
        seconds = result.get("seconds", clock() - began)
        trial = {"dimension": dimension, "config": dict(config), "seconds": round(seconds, 3)}
        if result.get("error"):
            trial["error"] = result["error"]
        else:
            for metric in ("tg", "pp"):
                samples = [float(s) for s in result.get(metric) or []]
                trial[metric] = _median(samples)
                trial[f"{metric}_samples"] = samples
        trials.append(trial)
        measured[_key(config)] = trial
        return trial

    best = run(default, "default")
    if "error" in best or not best.get("tg"):
        reason = best.get("error") or "no generation (tg) result"
        raise BenchError(f"llama-bench failed on the default configuration {default}: {reason}")

    for entry in space:
        name, values = entry[0], entry[1]
        if len(entry) > 2 or len(values) < 2:
            skipped[name] = entry[2] if len(entry) > 2 else "only one candidate"
            continue
        metric, strikes = OBJECTIVE.get(name, "tg"), 0
        for value in values:
            config = {**best["config"], **_patch(name, value)}
            if _key(config) in measured:
                continue
            estimate = max(t["seconds"] for t in trials)
            if clock() - start + 2 * estimate > budget_seconds:  # this trial and the confirmation
                stopped = "budget"
                break
            trial = run(config, name)
            verdict = _compare(trial, best, metric, trials)
            trial["verdict"] = verdict
            if verdict == "better":
                best, strikes = trial, 0
            elif verdict in ("worse", "failed"):
                strikes += 1
                if strikes >= PATIENCE:
                    break
        if stopped == "budget":
            skipped[name] = "time budget spent before its walk finished"
            skipped.update({e[0]: "time budget spent" for e in space[space.index(entry) + 1:]
                            if len(e) == 2 and len(e[1]) > 1})
            break

    best, confirmation = _confirm(run, best, trials, start, clock, budget_seconds)
    # The default's speed is its latest measurement: the confirmation's when there was one, so the
    # chosen and the default are compared as measured under the same conditions (and equal when the
    # default won).
    default = next((t for t in reversed(trials) if t.get("dimension") == "confirm" and "error" not in t), trials[0])
    return {
        "default": _summary(default),
        "chosen": _summary(best),
        "confirmation": confirmation,
        "trials": trials,
        "noise_pct": noise_pct(trials, "tg"),
        "noise_pct_pp": noise_pct(trials, "pp"),
        "seconds": round(clock() - start, 3),
        "budget_seconds": budget_seconds,
        "stopped": stopped,
        "skipped": skipped,
    }


def _confirm(run, best, trials, start, clock, budget_seconds):
    """(best, confirmation): the default measured again, and best kept only if it still beats it."""
    default = trials[0]
    if best is default:
        return best, {"kept": True, "reason": "the default was not beaten"}
    if clock() - start + max(t["seconds"] for t in trials) > budget_seconds:
        return best, {"kept": True, "reason": "no time left to measure the default again"}
    again = run(default["config"], "confirm")
    if "error" in again or not again.get("tg"):
        return best, {"kept": True, "reason": "measuring the default again failed"}
    # Each changed setting must still win on the metric that chose it.
    metrics = {"pp" if key in ("batch", "ubatch") else "tg"
               for key, value in best["config"].items() if value != default["config"][key]}
    drift = round(100 * (again["tg"] - default["tg"]) / default["tg"], 2)
    lost = sorted(m for m in metrics if _compare(best, again, m, trials) != "better")
    again["verdict"] = "default" if lost else "chosen"
    if lost:
        return again, {"kept": False, "drift_pct": drift,
                       "reason": f"the default measured again is within the noise or faster on {', '.join(lost)}"}
    return best, {"kept": True, "drift_pct": drift, "reason": "the chosen configuration still beats the default"}


def noise_pct(trials, metric):
    """How noisy the host was: the median relative spread (stdev/mean) of the trials' samples, in %."""
    spreads = [_spread(t[f"{metric}_samples"]) for t in trials if t.get(f"{metric}_samples")]
    return round(100 * statistics.median(spreads), 2) if spreads else 0.0


def threshold(trials, metric):
    """The relative gain a value must show to count: max(MIN_GAIN, NOISE_FACTOR x noise)."""
    return max(MIN_GAIN, NOISE_FACTOR * noise_pct(trials, metric) / 100)


def _compare(trial, best, metric, trials):
    """'better', 'worse' (measurably), 'same' (inside the noise) or 'failed'."""
    if "error" in trial or not trial.get(metric) or not best.get(metric):
        return "failed"
    margin = threshold(trials, metric)
    if trial[metric] > best[metric] * (1 + margin):
        return "better"
    if trial[metric] < best[metric] * (1 - margin):
        return "worse"
    return "same"


def _summary(trial):
    return {"config": dict(trial["config"]), "tg": trial.get("tg"), "pp": trial.get("pp")}


# --- llama-bench ---------------------------------------------------------------------------

def bench_command(llama_bench, model, config, n_prompt, n_gen, repetitions, mmap_flag="-mmp"):
    """(argv, env) measuring config with llama-bench; env holds only the variables config adds.

    mmap_flag: "-mmp" (llama-bench -mmp 0|1) or "-lm" for builds that replaced it with --load-mode
    (the pinned commit: -lm mmap|none).
    """
    argv = ["numactl", *NUMACTL[config["numa"]]] if config["numa"] in NUMACTL else []
    argv += [llama_bench, "-m", model]
    if config["numa"] == "distribute":
        argv += ["--numa", "distribute"]
    argv += ["-t", str(config["threads"]), "-b", str(config["batch"]), "-ub", str(config["ubatch"])]
    if mmap_flag == "-lm":
        argv += ["-lm", "mmap" if config["mmap"] else "none"]
    else:
        argv += ["-mmp", "1" if config["mmap"] else "0"]
    argv += ["-p", str(n_prompt), "-n", str(n_gen), "-r", str(repetitions), "-o", "json"]
    return argv, dict(OMP_ENV) if config["omp"] else {}


def parse_bench(json_text):
    """{"tg": [tok/s], "pp": [tok/s]} from llama-bench -o json (samples_ts, else avg_ts, per test)."""
    out = {"tg": [], "pp": []}
    for test in json.loads(json_text):
        samples = test.get("samples_ts") or [test["avg_ts"]]
        if test.get("n_prompt", 0) > 0 and test.get("n_gen", 0) == 0:
            out["pp"].extend(float(s) for s in samples)
        elif test.get("n_gen", 0) > 0 and test.get("n_prompt", 0) == 0:
            out["tg"].extend(float(s) for s in samples)
    return out


# --- the document --------------------------------------------------------------------------

def fingerprint(cpu_model, sockets, numa_nodes, memory_bytes, build_id, model_sha256):
    """What the measurement depends on, plus sha256 over it: a change in any of them means re-tune."""
    fields = {
        "cpu_model": re.sub(r"\s+", " ", str(cpu_model or "")).strip(),
        "sockets": int(sockets),
        "numa_nodes": int(numa_nodes),
        "memory_bytes": int(memory_bytes),
        "build_id": str(build_id),
        "model_sha256": str(model_sha256).lower(),
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return {**fields, "sha256": digest}


def document(result, fingerprint, measured_at, model_active_bytes=None, parameters=None):
    """The tuning document written to the host (/etc/llama-server/tuning.json)."""
    chosen = result["chosen"]
    doc = {
        "version": VERSION,
        "measured_at": measured_at,
        "fingerprint": fingerprint,
        "chosen": chosen,
        "default": result["default"],
        "alternatives": result["trials"],
        "confirmation": result.get("confirmation", {}),
        "noise_pct": result["noise_pct"],
        "noise_pct_pp": result.get("noise_pct_pp"),
        "seconds": result["seconds"],
        "budget_seconds": result["budget_seconds"],
        "stopped": result["stopped"],
        "skipped": result["skipped"],
        "parameters": parameters or {},
        "tokens_per_second": {"tg": chosen["tg"], "pp": chosen["pp"]},
    }
    if model_active_bytes and chosen["tg"]:
        doc["effective_bandwidth_bytes_per_s"] = round(chosen["tg"] * model_active_bytes)
        doc["effective_bandwidth_source"] = (
            "derived from generation speed: chosen tg x model_active_bytes (the bytes read per token); "
            "not a memory benchmark")
    return doc


def service_settings(doc):
    """What the llama-server unit needs from a tuning document, each value with its measurement."""
    config, default = doc["chosen"]["config"], doc["default"]
    day = str(doc.get("measured_at", ""))[:10]

    def said(metric, label):
        chosen, untuned = doc["chosen"][metric], default[metric]
        if chosen is None or untuned is None:
            return f"measured {day}: no {label} result (llama.cpp's default kept)"
        return f"measured {day}: {chosen:.1f} tok/s vs {untuned:.1f} tok/s with the defaults ({label})"

    tg, pp = said("tg", "generation"), said("pp", "prompt processing")
    settings = {
        "threads": int(config["threads"]),
        "environment": dict(OMP_ENV) if config["omp"] else {},
        "batch_size": int(config["batch"]),
        "ubatch_size": int(config["ubatch"]),
        # llama-server --load-mode at the pinned commit: none reads the model into RAM; "" keeps mmap.
        "load_mode": "" if config["mmap"] else "none",
        # One note per measured setting, printed above ExecStart: the value and what it was measured at.
        "comments": {"threads": f"{config['threads']}; {tg}",
                     "openmp": f"{'OMP_WAIT_POLICY=active' if config['omp'] else 'defaults'}; {tg}",
                     "batch": f"{config['batch']}/{config['ubatch']}; {pp}",
                     "load_mode": f"{'mmap' if config['mmap'] else 'none'}; {tg}"},
    }
    # The NUMA policy only when the search chose another than it started from: the untuned start
    # (or the only policy, on one node) leaves the unit's own numactl arguments in place.
    if config["numa"] != default["config"]["numa"]:
        settings["numactl"] = list(NUMACTL.get(config["numa"], []))
        settings["numa_flag"] = "distribute" if config["numa"] == "distribute" else ""
        settings["comments"]["numa"] = f"{config['numa']}; {tg}"
    return settings
