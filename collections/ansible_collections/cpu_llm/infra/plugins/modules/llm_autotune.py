#!/usr/bin/python
"""Module llm_autotune: measure which llama-server settings are fastest on this host, once per fingerprint."""

DOCUMENTATION = r"""
module: llm_autotune
short_description: Tune llama-server's threads, NUMA policy, OpenMP, batch and mmap with a bounded llama-bench search
description:
  - Runs llama-bench, with the model that will be served and the build that will serve it, over thread counts
    (physical cores, all hardware threads, then fewer), NUMA policies (numactl --interleave=all, llama.cpp
    --numa distribute, node 0 only when the model fits there, none), the OpenMP environment
    (OMP_WAIT_POLICY=active, OMP_PROC_BIND=close, OMP_PLACES=cores; only for a build that links OpenMP),
    micro-batch sizes and mmap versus reading the model into memory.
  - "The search is coordinate descent from the untuned settings: each dimension walks its candidates and stops
    after two measurably worse ones; a dimension that cannot matter here (NUMA on one node) is skipped with a
    reason. Each configuration is measured I(repetitions) times and the median counts; a value is kept only if it
    beats the best so far by more than max(2%, 2 x the host's measured noise). Generation speed decides every
    dimension except batch, which prompt processing decides."
  - "When the search chose anything but the untuned settings, the untuned settings are measured once more at the
    end and the choice is kept only if it still wins: a host whose load changed during the search would otherwise
    favour whatever ran in the quiet moment. The budget keeps room for that run."
  - "The result, with every trial, goes to I(path) as JSON. While the fingerprint (CPU, sockets, NUMA nodes,
    memory, llama.cpp build, model) is unchanged, later runs return that document without measuring."
  - Check mode reports whether it would tune, without measuring or writing.
options:
  llama_bench: {description: Path of the llama-bench binary of the build that will serve., type: path, required: true}
  model:
    description: The GGUF file that will be served (the first shard of a split model).
    type: path
    required: true
  path:
    description: Where the tuning document lives.
    type: path
    default: /etc/llama-server/tuning.json
  fingerprint:
    description:
      - What the measurement depends on; a change in any key means re-tune. Keys C(cpu_model), C(sockets),
        C(memory_bytes), C(build_id), C(model_sha256), all required. C(numa_nodes) is read from this host's
        sysfs (a value given is used only where sysfs has no NUMA information).
    type: dict
    required: true
  budget_seconds:
    description: Time the search may take; no trial starts that the slowest trial so far says would not fit.
    type: float
    default: 120
  repetitions: {description: Repetitions per configuration (llama-bench -r); the median counts., type: int, default: 3}
  n_prompt:
    description:
      - Prompt tokens per prompt-processing test (llama-bench -p). Batch sizes are tuned only when the prompt is
        longer than the smallest micro-batch candidate (128); a shorter prompt is one micro-batch whatever the size.
    type: int
    default: 64
  n_gen: {description: Generated tokens per generation test (llama-bench -n)., type: int, default: 32}
  timeout: {description: Seconds one llama-bench run may take before it counts as failed., type: float, default: 600}
  force: {description: Measure even when the stored fingerprint matches., type: bool, default: false}
  model_active_bytes:
    description:
      - Bytes read per generated token (the model's weights, or a mixture-of-experts model's active ones). When
        given, the document carries the effective bandwidth, chosen tokens/s x these bytes.
    type: int
  dimensions:
    description: What to tune; the others stay at llama.cpp's defaults. They are always walked in the order omp,
      threads, numa, mmap, batch.
    type: list
    elements: str
    choices: [threads, numa, omp, batch, mmap]
    default: [threads, numa, omp, batch, mmap]
notes:
  - "Run it while nothing else loads the host (before llama-server starts, or with it stopped): a busy host
    measures the neighbour. The document's C(noise_pct) says how steady the measurements were."
  - Before a trial whose NUMA policy differs from the previous one, the model's clean page-cache pages are
    dropped (posix_fadvise DONTNEED), so the mapped model is placed by the policy being measured and not by the
    last run (loading while the nodes are full of page cache has cost 25% on a dual-socket host).
  - Needs numactl for the interleave and one-node policies; without it those are left out and the reason noted.
author: cpu-llm-infra
"""

EXAMPLES = r"""
- name: Tune llama-server for this host, model and build (once per fingerprint)
  cpu_llm.infra.llm_autotune:
    llama_bench: /opt/llama.cpp/current/bin/llama-bench
    model: /srv/llm/models/current/model-Q6_K.gguf
    fingerprint:
      cpu_model: "{{ llm_hardware.cpu_model }}"
      sockets: "{{ llm_hardware.sockets }}"
      memory_bytes: "{{ llm_hardware.memory_total_bytes }}"
      build_id: "{{ llama_cpp_build_id }}"
      model_sha256: "{{ gguf_model_plan[0].sha256 }}"
    budget_seconds: 300
  register: tuning

- name: Show what it chose
  ansible.builtin.debug:
    msg: "{{ tuning.service.threads }} threads, {{ tuning.document.tokens_per_second.tg }} tok/s"
"""

RETURN = r"""
document:
  description:
    - "The tuning document (also at I(path)): version, measured_at, fingerprint (with sha256), chosen and default
      ({config, tg, pp}), alternatives (every trial: dimension, config, tg/pp medians and samples, seconds,
      verdict or error), confirmation (kept, drift_pct, reason), noise_pct, noise_pct_pp, seconds,
      budget_seconds, stopped (budget or done), skipped (dimension or value: reason), parameters,
      tokens_per_second ({tg, pp} of the chosen config) and, with I(model_active_bytes),
      effective_bandwidth_bytes_per_s."
    - Empty in check mode when it would tune.
  returned: always
  type: dict
service:
  description:
    - "What the llama-server unit needs: threads, numactl (arguments), numa_flag, environment (OMP_* variables),
      batch_size, ubatch_size, load_mode, comments (each setting's measurement)."
    - Empty when there is no document.
  returned: always
  type: dict
tuned: {description: Whether a search ran (or would run in check mode)., returned: always, type: bool}
path: {description: Where the document lives., returned: always, type: str}
"""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cpu_llm.infra.plugins.module_utils import autotune as at

FINGERPRINT_KEYS = ("cpu_model", "sockets", "numa_nodes", "memory_bytes", "build_id", "model_sha256")


def load_document(path):
    """The stored document, or None when there is none or it cannot be read (then the search runs again)."""
    try:
        with open(path) as handle:
            doc = json.load(handle)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def up_to_date(doc, fingerprint):
    return bool(doc) and doc.get("version") == at.VERSION and \
        (doc.get("fingerprint") or {}).get("sha256") == fingerprint["sha256"]


def write_document(path, doc):
    """Write doc as JSON atomically (a temporary file renamed over path), mode 0644."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
        os.chmod(directory, 0o755)  # makedirs' mode passes the umask; the unit's readers need 0755  # noqa: S103
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tuning-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def model_files(model):
    """The model's files: every shard of a split GGUF (…-00001-of-00003.gguf), else the file itself."""
    match = re.fullmatch(r"(.*)-\d{5}-of-(\d{5})\.gguf", model)
    if match:
        shards = sorted(glob.glob(f"{glob.escape(match.group(1))}-[0-9][0-9][0-9][0-9][0-9]-of-{match.group(2)}.gguf"))
        if shards:
            return shards
    return [model]


def _output(argv, timeout=30):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout + out.stderr


def build_probe(llama_bench):
    """(openmp, mmap_flag): whether the build links OpenMP (None: ldd could not tell), and its mmap flag."""
    here = os.path.dirname(os.path.realpath(llama_bench))
    libs = glob.glob(os.path.join(here, "libggml*.so*")) + glob.glob(os.path.join(here, "..", "lib", "libggml*.so*"))
    outputs = [_output(["ldd", path]) for path in [llama_bench, *libs]] if shutil.which("ldd") else []
    openmp = at.uses_openmp(outputs) if any(outputs) else None
    # The pinned commit replaced -mmp 0|1 with --load-mode; its usage text says which one this build has.
    mmap_flag = "-lm" if "--load-mode" in _output([llama_bench, "--help"]) else "-mmp"
    return openmp, mmap_flag


def evict(paths):
    """Drop the files' clean page-cache pages, so the next run places them under its own NUMA policy."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Bench:
    """measure(config) for autotune.search: one llama-bench run per configuration."""

    def __init__(self, llama_bench, model, params, mmap_flag):
        self.llama_bench, self.model, self.params, self.mmap_flag = llama_bench, model, params, mmap_flag
        self.last_numa = None
        # A hung llama-bench must not outlast the budget by its own timeout: each run gets what is
        # left of the budget plus a minute (at least a minute), and never more than the timeout.
        self.deadline = time.monotonic() + float(params["budget_seconds"]) + 60
        # OMP_* from the caller's environment would leak into every trial; each trial sets its own.
        self.base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}

    def __call__(self, config):
        p = self.params
        argv, env = at.bench_command(self.llama_bench, self.model, config, p["n_prompt"], p["n_gen"],
                                     p["repetitions"], self.mmap_flag)
        # Pages placed by the download, the checksum pass or the stopped service (or by the last
        # trial's policy) would be measured instead of this trial's placement: drop them first.
        if config["numa"] != self.last_numa:
            evict(model_files(self.model))
        self.last_numa = config["numa"]
        began = time.monotonic()
        try:
            limit = min(p["timeout"], max(self.deadline - began, 60))
            out = subprocess.run(argv, env={**self.base_env, **env}, capture_output=True, text=True,
                                 timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {limit:.0f} s: {' '.join(argv)}", "seconds": time.monotonic() - began}
        except OSError as exc:
            return {"error": f"cannot run {argv[0]}: {exc}", "seconds": time.monotonic() - began}
        seconds = time.monotonic() - began
        if out.returncode != 0:
            return {"error": f"rc={out.returncode}: {out.stderr.strip()[-800:]}", "seconds": seconds}
        try:
            return {**at.parse_bench(out.stdout), "seconds": seconds}
        except (ValueError, KeyError, TypeError) as exc:
            return {"error": f"unreadable llama-bench output ({exc}): {out.stdout.strip()[-400:]}", "seconds": seconds}


def tune(params, fingerprint, sys_root="/"):
    """Run the search and return the document (raises autotune.BenchError when the default fails)."""
    bench, model = params["llama_bench"], params["model"]
    topo = at.topology(sys_root)
    openmp, mmap_flag = build_probe(bench)
    model_bytes = sum(os.path.getsize(f) for f in model_files(model))
    space, notes = at.search_space(topo, openmp, model_bytes, params["n_prompt"], params["dimensions"],
                                   numactl=bool(shutil.which("numactl")))
    result = at.search(Bench(bench, model, params, mmap_flag), space, params["budget_seconds"])
    result["skipped"].update(notes)
    parameters = {key: params[key] for key in ("n_prompt", "n_gen", "repetitions", "dimensions")}
    parameters.update(topology=topo, openmp=openmp, mmap_flag=mmap_flag, model_bytes=model_bytes,
                      llama_bench=bench, model=model)
    # timezone.utc, not datetime.UTC (3.11+): the module runs on the managed host's Python.
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017
    return at.document(result, fingerprint, measured_at, params.get("model_active_bytes"), parameters)


def decide(params, check_mode, tuner=tune):
    """{changed, tuned, document, service}: the stored document while the fingerprint holds, else a new one."""
    given = dict(params["fingerprint"])
    # The NUMA node count from this host's sysfs, not from facts a --tags run may not have gathered.
    given["numa_nodes"] = at.topology(params.get("sys_root", "/"))["numa_nodes"] or given.get("numa_nodes") or 1
    fingerprint = at.fingerprint(**{key: given[key] for key in FINGERPRINT_KEYS})
    stored = load_document(params["path"])
    if up_to_date(stored, fingerprint) and not params["force"]:
        return {"changed": False, "tuned": False, "document": stored, "service": at.service_settings(stored)}
    if check_mode:
        return {"changed": True, "tuned": True, "document": {}, "service": {}}
    doc = tuner(params, fingerprint)
    write_document(params["path"], doc)
    return {"changed": True, "tuned": True, "document": doc, "service": at.service_settings(doc)}


def main():
    module = AnsibleModule(
        argument_spec={
            "llama_bench": {"type": "path", "required": True},
            "model": {"type": "path", "required": True},
            "path": {"type": "path", "default": "/etc/llama-server/tuning.json"},
            "fingerprint": {"type": "dict", "required": True},
            "budget_seconds": {"type": "float", "default": 120},
            "repetitions": {"type": "int", "default": 3},
            "n_prompt": {"type": "int", "default": 64},
            "n_gen": {"type": "int", "default": 32},
            "timeout": {"type": "float", "default": 600},
            "force": {"type": "bool", "default": False},
            "model_active_bytes": {"type": "int"},
            "dimensions": {"type": "list", "elements": "str", "choices": list(at.DIMENSIONS),
                           "default": ["threads", "numa", "omp", "batch", "mmap"]},
        },
        supports_check_mode=True,
    )
    params = module.params
    missing = [key for key in FINGERPRINT_KEYS
               if key != "numa_nodes" and params["fingerprint"].get(key) in (None, "")]
    if missing:
        module.fail_json(msg=f"fingerprint lacks {', '.join(missing)}; it needs {', '.join(FINGERPRINT_KEYS)}")
    for name in ("llama_bench", "model"):
        if not module.check_mode and not os.path.isfile(params[name]):
            module.fail_json(msg=f"{name} {params[name]} does not exist")
    if params["repetitions"] < 1 or params["n_gen"] < 1 or params["n_prompt"] < 0:
        module.fail_json(msg="repetitions and n_gen must be at least 1, n_prompt at least 0")
    try:
        result = decide(params, module.check_mode)
    except at.BenchError as exc:
        module.fail_json(msg=str(exc))
    except (OSError, ValueError, TypeError) as exc:
        module.fail_json(msg=f"autotune failed: {exc}")
    module.exit_json(path=params["path"], **result)


if __name__ == "__main__":
    main()
