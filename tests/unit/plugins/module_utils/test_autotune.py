"""Autotune: the bounded search on synthetic hosts, the topology, the commands and the document."""

import json

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import autotune as at

ONE_NODE_8 = {"sockets": 1, "numa_nodes": 1, "cores": 8, "threads": 8, "cores_per_node": 8,
              "node_memory_bytes": [64 << 30]}
TWO_NODES_16 = {"sockets": 2, "numa_nodes": 2, "cores": 16, "threads": 32, "cores_per_node": 8,
                "node_memory_bytes": [64 << 30, 64 << 30]}


class Host:
    """A synthetic host: tg per thread count, OMP_WAIT_POLICY=active doubles it; a fake clock."""

    def __init__(self, tg_by_threads, spread=0.005, seconds=10.0, pp_by_ubatch=None, numa_gain=None):
        self.tg_by_threads, self.spread, self.seconds = tg_by_threads, spread, seconds
        self.pp_by_ubatch = pp_by_ubatch or {}
        self.numa_gain = numa_gain or {}
        self.now, self.runs = 0.0, []

    def clock(self):
        return self.now

    def __call__(self, config):
        self.runs.append(config)
        self.now += self.seconds
        tg = self.tg_by_threads[config["threads"]] * (2 if config["omp"] else 1) * self.numa_gain.get(config["numa"], 1)
        pp = self.pp_by_ubatch.get(config["ubatch"], 100.0)
        s = self.spread
        return {"tg": [tg * (1 - s), tg, tg * (1 + s)], "pp": [pp * (1 - s), pp, pp * (1 + s)], "seconds": self.seconds}


def space_for(topo, **kwargs):
    space, _ = at.search_space(topo, openmp=True, model_bytes=1 << 30, n_prompt=kwargs.pop("n_prompt", 64), **kwargs)
    return space


def runs_of(host, key):
    return [c[key] for c in host.runs]


def test_finds_six_of_eight_threads_and_active_omp_and_stops_early_on_the_ladder():
    host = Host({8: 10.0, 7: 11.0, 6: 12.0, 4: 9.0, 2: 5.0})
    result = at.search(host, space_for(ONE_NODE_8), budget_seconds=1000, clock=host.clock)
    assert result["chosen"]["config"] == {"omp": True, "threads": 6, "numa": "none", "mmap": True,
                                          "batch": 2048, "ubatch": 512}
    assert result["chosen"]["tg"] == 24.0 and result["default"]["tg"] == 10.0
    assert result["default"]["config"]["omp"] is False and result["default"]["config"]["threads"] == 8
    assert result["stopped"] == "done"
    # The thread walk went down from 8 and stopped after two measurably worse values.
    assert [t["config"]["threads"] for t in result["trials"] if t["dimension"] == "threads"] == [7, 6, 4, 2]
    assert [t["verdict"] for t in result["trials"] if t["dimension"] == "threads"] == \
        ["better", "better", "worse", "worse"]
    assert result["noise_pct"] == pytest.approx(0.5, abs=0.01)
    trial = result["trials"][0]
    assert trial["dimension"] == "default" and trial["tg"] == 10.0
    assert trial["tg_samples"] == pytest.approx([9.95, 10.0, 10.05])


def test_the_choice_is_confirmed_against_the_default_measured_again():
    host = Host({8: 10.0, 7: 11.0, 6: 12.0, 4: 9.0, 2: 5.0})
    result = at.search(host, space_for(ONE_NODE_8), budget_seconds=1000, clock=host.clock)
    assert result["trials"][-1]["dimension"] == "confirm" and result["trials"][-1]["config"] == host.runs[0]
    assert result["confirmation"] == {"kept": True, "drift_pct": 0.0,
                                      "reason": "the chosen configuration still beats the default"}


def test_a_host_whose_load_changed_during_the_search_keeps_the_default():
    """The default ran while something else loaded the host; nothing is faster once the host is quiet."""
    runs = []

    def measure(config):
        runs.append(config)
        tg = 10.0 if len(runs) == 1 else 20.0  # every configuration runs at 20 on the quiet host
        return {"tg": [tg, tg, tg], "pp": [100.0], "seconds": 1.0}

    result = at.search(measure, space_for(ONE_NODE_8), budget_seconds=1000)
    assert result["trials"][1]["verdict"] == "better"  # OMP looked twice as fast against the busy default
    assert result["chosen"]["config"] == result["default"]["config"] and result["chosen"]["tg"] == 20.0
    assert result["confirmation"]["kept"] is False and result["confirmation"]["drift_pct"] == 100.0
    assert result["trials"][-1]["verdict"] == "default"


def test_the_walk_stops_after_two_worse_values_without_reaching_the_floor():
    host = Host({8: 10.0, 7: 9.0, 6: 8.0, 4: 20.0, 2: 30.0})
    result = at.search(host, space_for(ONE_NODE_8, dimensions=("threads",)), budget_seconds=1000, clock=host.clock)
    assert runs_of(host, "threads") == [8, 7, 6]
    assert result["chosen"]["config"]["threads"] == 8


def test_a_difference_inside_the_noise_is_no_gain():
    # 7 threads is 3% faster, but the samples spread +-5% (stdev/mean 5%): the bar is 10%.
    host = Host({8: 10.0, 7: 10.3, 6: 10.0, 4: 10.0, 2: 10.0}, spread=0.05)
    result = at.search(host, space_for(ONE_NODE_8, dimensions=("threads",)), budget_seconds=1000, clock=host.clock)
    assert result["chosen"]["config"]["threads"] == 8
    assert result["noise_pct"] == pytest.approx(5.0, abs=0.01)
    assert at.threshold(result["trials"], "tg") == pytest.approx(0.10, abs=1e-3)
    assert {t["verdict"] for t in result["trials"][1:]} == {"same"}
    # On a quiet host the floor is 2%: 3% counts.
    quiet = Host({8: 10.0, 7: 10.3, 6: 10.0, 4: 10.0, 2: 10.0}, spread=0.001)
    assert at.search(quiet, space_for(ONE_NODE_8, dimensions=("threads",)), 1000,
                     clock=quiet.clock)["chosen"]["config"]["threads"] == 7


def test_the_budget_caps_the_search_and_no_trial_starts_that_cannot_fit():
    host = Host({8: 10.0, 7: 11.0, 6: 12.0, 4: 9.0, 2: 5.0}, seconds=10.0)
    result = at.search(host, space_for(ONE_NODE_8), budget_seconds=35, clock=host.clock)
    # 10 for the default, 10 for OMP (20 + 10 reserved for the confirmation fit in 35), then the
    # confirmation; one more trial would have left no room for it.
    assert [t["dimension"] for t in result["trials"]] == ["default", "omp", "confirm"]
    assert result["seconds"] == 30 and result["stopped"] == "budget"
    assert result["skipped"]["threads"] == "time budget spent before its walk finished"
    assert result["skipped"]["mmap"] == "time budget spent"
    # A budget below one trial still measures the default (nothing to report without it), then stops.
    host = Host({8: 10.0, 7: 11.0, 6: 12.0, 4: 9.0, 2: 5.0})
    result = at.search(host, space_for(ONE_NODE_8), budget_seconds=5, clock=host.clock)
    assert len(host.runs) == 1 and result["stopped"] == "budget" and result["chosen"] == result["default"]
    assert result["confirmation"] == {"kept": True, "reason": "the default was not beaten"}


def test_numa_is_skipped_on_one_node_and_walked_on_two():
    space, notes = at.search_space(ONE_NODE_8, openmp=True, model_bytes=1 << 30, n_prompt=64)
    host = Host({8: 10.0, 7: 9.0, 6: 8.0, 4: 7.0, 2: 5.0})
    result = at.search(host, space, 1000, clock=host.clock)
    assert result["skipped"]["numa"] == "one NUMA node: every policy places memory the same way"
    assert set(runs_of(host, "numa")) == {"none"} and notes == {}

    space, notes = at.search_space(TWO_NODES_16, openmp=True, model_bytes=8 << 30, n_prompt=64)
    host = Host(dict.fromkeys((16, 32, 15, 12, 8, 4), 10.0), numa_gain={"distribute": 1.2})
    result = at.search(host, space, 1000, clock=host.clock)
    assert result["default"]["config"]["numa"] == "interleave"
    assert [t["config"]["numa"] for t in result["trials"] if t["dimension"] == "numa"] == \
        ["distribute", "node0", "none"]
    node0 = next(t for t in result["trials"] if t["config"]["numa"] == "node0")
    assert node0["config"]["threads"] == 8  # one node's cores
    assert result["chosen"]["config"]["numa"] == "distribute" and "numa" not in result["skipped"]


def test_one_node_policy_only_when_the_model_fits_and_numactl_is_needed():
    space, notes = at.search_space(TWO_NODES_16, openmp=True, model_bytes=60 << 30, n_prompt=64)
    assert dict((e[0], e[1]) for e in space)["numa"] == ["interleave", "distribute", "none"]
    assert "does not fit in 80% of node 0's memory (64.0 GiB)" in notes["numa=node0"]
    space, notes = at.search_space(TWO_NODES_16, openmp=True, model_bytes=1 << 30, n_prompt=64, numactl=False)
    assert dict((e[0], e[1]) for e in space)["numa"] == ["none", "distribute"]
    assert notes["numa=interleave"] == "numactl is not installed"


def test_omp_and_batch_skips_and_batch_is_decided_by_prompt_processing():
    space, _ = at.search_space(ONE_NODE_8, openmp=False, model_bytes=1 << 30, n_prompt=64)
    reasons = {e[0]: e[2] for e in space if len(e) > 2}
    assert "does not link an OpenMP runtime" in reasons["omp"]
    assert "n_prompt 64 is one micro-batch" in reasons["batch"]
    space, _ = at.search_space(ONE_NODE_8, openmp=True, model_bytes=1 << 30, n_prompt=0)
    assert dict((e[0], e[2]) for e in space if len(e) > 2)["batch"].startswith("n_prompt 0: no prompt-processing")
    space, _ = at.search_space(ONE_NODE_8, openmp=None, model_bytes=1 << 30, n_prompt=64)
    assert "omp" not in {e[0] for e in space if len(e) > 2}  # ldd could not tell: measure it

    host = Host(dict.fromkeys((8, 7, 6, 4, 2), 10.0), pp_by_ubatch={512: 100.0, 1024: 90.0, 256: 120.0, 128: 130.0})
    result = at.search(host, space_for(ONE_NODE_8, n_prompt=1024, dimensions=("batch",)), 1000, clock=host.clock)
    assert [t["config"]["ubatch"] for t in result["trials"] if t["dimension"] == "batch"] == [1024, 256, 128]
    assert result["chosen"]["config"]["ubatch"] == 128 and result["chosen"]["pp"] == 130.0
    assert result["confirmation"]["kept"] is True  # on prompt processing: tg did not change
    assert result["skipped"]["threads"] == "not among the dimensions to tune"


def test_a_failed_trial_is_recorded_and_the_default_failing_raises():
    def flaky(config):
        if not config["mmap"]:
            return {"error": "rc=1: out of memory", "seconds": 1.0}
        return {"tg": [10.0, 10.0, 10.0], "pp": [100.0], "seconds": 1.0}

    result = at.search(flaky, space_for(ONE_NODE_8, dimensions=("mmap",)), 1000)
    failed = next(t for t in result["trials"] if "error" in t)
    assert failed["verdict"] == "failed" and failed["error"] == "rc=1: out of memory"
    assert result["chosen"]["config"]["mmap"] is True

    with pytest.raises(at.BenchError, match=r"default configuration .* rc=1: no model"):
        at.search(lambda c: {"error": "rc=1: no model", "seconds": 0.1}, space_for(ONE_NODE_8), 1000)


# --- topology --------------------------------------------------------------------------------

def fake_sys(root, cpus, nodes, meminfo_kb=None):
    """cpus: {cpu: (package, core_id, siblings)}; nodes: {node: (cpulist, MemTotal kB)}."""
    base = root / "sys" / "devices" / "system"
    (base / "cpu").mkdir(parents=True)
    (base / "cpu" / "online").write_text(f"0-{max(cpus)}\n")
    for cpu, (package, core, siblings) in cpus.items():
        top = base / "cpu" / f"cpu{cpu}" / "topology"
        top.mkdir(parents=True)
        (top / "physical_package_id").write_text(f"{package}\n")
        (top / "core_id").write_text(f"{core}\n")
        (top / "thread_siblings_list").write_text(f"{siblings}\n")
    for node, (cpulist, kb) in nodes.items():
        directory = base / "node" / f"node{node}"
        directory.mkdir(parents=True)
        (directory / "cpulist").write_text(f"{cpulist}\n")
        (directory / "meminfo").write_text(f"Node {node} MemTotal:       {kb} kB\nNode {node} MemFree:  1 kB\n")
    if meminfo_kb:
        (root / "proc").mkdir()
        (root / "proc" / "meminfo").write_text(f"MemTotal:       {meminfo_kb} kB\n")


def test_topology_one_node_without_smt(tmp_path):
    fake_sys(tmp_path, {c: (0, c, str(c)) for c in range(4)}, {0: ("0-3", 16318412)})
    assert at.topology(str(tmp_path)) == {"sockets": 1, "numa_nodes": 1, "cores": 4, "threads": 4,
                                          "cores_per_node": 4, "node_memory_bytes": [16318412 * 1024]}


def test_topology_two_sockets_with_smt(tmp_path):
    # 2 sockets x 4 cores x 2 threads, Linux numbering: siblings are n and n+8; core_ids repeat per socket.
    cpus = {}
    for cpu in range(16):
        first = cpu % 8
        cpus[cpu] = (first // 4, first % 4, f"{first},{first + 8}")
    fake_sys(tmp_path, cpus, {0: ("0-3,8-11", 32 << 20), 1: ("4-7,12-15", 32 << 20)})
    topo = at.topology(str(tmp_path))
    assert topo == {"sockets": 2, "numa_nodes": 2, "cores": 8, "threads": 16, "cores_per_node": 4,
                    "node_memory_bytes": [32 << 30, 32 << 30]}
    assert at.thread_ladder(topo) == [8, 16, 7, 6, 4, 2]


def test_topology_without_numa_in_the_kernel_and_without_siblings(tmp_path):
    fake_sys(tmp_path, {c: (0, c // 2, "") for c in range(4)}, {}, meminfo_kb=1024)
    assert at.topology(str(tmp_path)) == {"sockets": 1, "numa_nodes": 1, "cores": 2, "threads": 4,
                                          "cores_per_node": 2, "node_memory_bytes": [1 << 20]}


def test_topology_of_this_machine_is_sane():
    topo = at.topology()
    assert 1 <= topo["cores"] <= topo["threads"] and topo["numa_nodes"] >= 1 and topo["node_memory_bytes"][0] > 0


@pytest.mark.parametrize(("topo", "ladder"), [
    (ONE_NODE_8, [8, 7, 6, 4, 2]),
    (TWO_NODES_16, [16, 32, 15, 12, 8, 4]),
    ({**ONE_NODE_8, "cores": 2, "threads": 2, "cores_per_node": 2}, [2, 1]),
    ({**ONE_NODE_8, "cores": 1, "threads": 2, "cores_per_node": 1}, [1, 2]),
    ({"sockets": 1, "numa_nodes": 4, "cores": 96, "threads": 192, "cores_per_node": 24, "node_memory_bytes": []},
     [96, 192, 95, 72, 48, 24]),
])
def test_thread_ladder(topo, ladder):
    assert at.thread_ladder(topo) == ladder


# --- llama-bench -----------------------------------------------------------------------------

CONFIG = {"threads": 6, "numa": "none", "omp": False, "batch": 2048, "ubatch": 512, "mmap": True}


@pytest.mark.parametrize(("numa", "prefix", "flag"), [
    ("none", [], []),
    ("interleave", ["numactl", "--interleave=all"], []),
    ("node0", ["numactl", "--cpunodebind=0", "--membind=0"], []),
    ("distribute", [], ["--numa", "distribute"]),
])
def test_bench_command_for_each_numa_policy(numa, prefix, flag):
    argv, env = at.bench_command("/b/llama-bench", "/m.gguf", {**CONFIG, "numa": numa}, 64, 32, 3)
    assert argv == [*prefix, "/b/llama-bench", "-m", "/m.gguf", *flag, "-t", "6", "-b", "2048", "-ub", "512",
                    "-mmp", "1", "-p", "64", "-n", "32", "-r", "3", "-o", "json"]
    assert env == {}


def test_bench_command_openmp_environment_and_the_mmap_flags():
    argv, env = at.bench_command("llama-bench", "m.gguf", {**CONFIG, "omp": True, "mmap": False}, 64, 32, 3)
    assert env == {"OMP_WAIT_POLICY": "active", "OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}
    assert argv[argv.index("-mmp") + 1] == "0"
    argv, _ = at.bench_command("llama-bench", "m.gguf", {**CONFIG, "mmap": False}, 64, 32, 3, mmap_flag="-lm")
    assert argv[argv.index("-lm") + 1] == "none" and "-mmp" not in argv
    argv, _ = at.bench_command("llama-bench", "m.gguf", CONFIG, 64, 32, 3, mmap_flag="-lm")
    assert argv[argv.index("-lm") + 1] == "mmap"


# llama-bench -o json as printed by a build of the pinned commit (0c1e57098bba) on a 2-core VM:
# SmolLM2-135M-Instruct Q6_K, -t 2 -p 64 -n 32 -r 3 (a busy host: the samples spread widely; the path shortened).
BENCH_JSON = """[
  {
    "build_commit": "unknown",
    "build_number": 0,
    "cpu_info": "Intel(R) Xeon(R) Processor",
    "gpu_info": "",
    "backends": "CPU",
    "model_filename": "/srv/llm/models/current/SmolLM2-135M-Instruct-Q6_K.gguf",
    "model_type": "llama 256M Q6_K",
    "model_size": 136597248,
    "model_n_params": 134515008,
    "n_batch": 2048,
    "n_ubatch": 512,
    "n_threads": 2,
    "cpu_mask": "0x0",
    "cpu_strict": false,
    "poll": 50,
    "type_k": "f16",
    "type_v": "f16",
    "n_gpu_layers": -1,
    "n_cpu_moe": 0,
    "split_mode": "layer",
    "main_gpu": 0,
    "no_kv_offload": false,
    "flash_attn": -1,
    "devices": "auto",
    "tensor_split": "0.00",
    "tensor_buft_overrides": "none",
    "load_mode": "auto",
    "lazy_mode": "auto",
    "embeddings": false,
    "no_op_offload": 0,
    "no_host": false,
    "repack": true,
    "fit_target": 0,
    "fit_min_ctx": 0,
    "n_prompt": 64,
    "n_gen": 0,
    "n_depth": 0,
    "test_time": "2026-11-27T19:30:47Z",
    "avg_ns": 806616897,
    "stddev_ns": 847442183,
    "avg_ts": 146.523897,
    "stddev_ts": 96.064551,
    "samples_ns": [ 1785087609, 307156463, 327606621 ],
    "samples_ts": [ 35.8526, 208.363, 195.356 ]
  },
  {
    "build_commit": "unknown",
    "build_number": 0,
    "cpu_info": "Intel(R) Xeon(R) Processor",
    "gpu_info": "",
    "backends": "CPU",
    "model_filename": "/srv/llm/models/current/SmolLM2-135M-Instruct-Q6_K.gguf",
    "model_type": "llama 256M Q6_K",
    "model_size": 136597248,
    "model_n_params": 134515008,
    "n_batch": 2048,
    "n_ubatch": 512,
    "n_threads": 2,
    "cpu_mask": "0x0",
    "cpu_strict": false,
    "poll": 50,
    "type_k": "f16",
    "type_v": "f16",
    "n_gpu_layers": -1,
    "n_cpu_moe": 0,
    "split_mode": "layer",
    "main_gpu": 0,
    "no_kv_offload": false,
    "flash_attn": -1,
    "devices": "auto",
    "tensor_split": "0.00",
    "tensor_buft_overrides": "none",
    "load_mode": "auto",
    "lazy_mode": "auto",
    "embeddings": false,
    "no_op_offload": 0,
    "no_host": false,
    "repack": true,
    "fit_target": 0,
    "fit_min_ctx": 0,
    "n_prompt": 0,
    "n_gen": 32,
    "n_depth": 0,
    "test_time": "2026-11-27T19:30:53Z",
    "avg_ns": 1359120547,
    "stddev_ns": 844064254,
    "avg_ts": 37.485094,
    "stddev_ts": 34.308346,
    "samples_ns": [ 1619988362, 2041955016, 415418265 ],
    "samples_ts": [ 19.7532, 15.6713, 77.0308 ]
  }
]"""
# Shapes the parser must also take: no samples_ts (older builds), and a combined pp+tg test (-pg), not counted.
OTHER_TESTS = [{"n_prompt": 0, "n_gen": 16, "avg_ts": 190.5}, {"n_prompt": 16, "n_gen": 16, "avg_ts": 150.0}]


def test_parse_bench():
    assert at.parse_bench(BENCH_JSON) == {"pp": [35.8526, 208.363, 195.356], "tg": [19.7532, 15.6713, 77.0308]}
    tests = json.loads(BENCH_JSON) + OTHER_TESTS
    assert at.parse_bench(json.dumps(tests))["tg"] == [19.7532, 15.6713, 77.0308, 190.5]
    assert at.parse_bench("[]") == {"tg": [], "pp": []}
    with pytest.raises(ValueError):
        at.parse_bench("main: error: failed to load model")


def test_uses_openmp():
    ldd = "\tlibggml-cpu.so => /b/libggml-cpu.so (0x7f)\n\tlibgomp.so.1 => /lib/x86_64-linux-gnu/libgomp.so.1 (0x7f)\n"
    assert at.uses_openmp(["\tlibc.so.6 => /lib/libc.so.6\n", ldd]) is True
    assert at.uses_openmp(["\tlibomp.so.5 => /usr/lib/llvm/libomp.so.5"]) is True
    assert at.uses_openmp(["\tlibc.so.6 => /lib/libc.so.6\n", ""]) is False


# --- fingerprint, document, service settings ----------------------------------------------------

FP_ARGS = {"cpu_model": "AMD EPYC 9655 96-Core Processor", "sockets": 2, "numa_nodes": 2, "memory_bytes": 768 << 30,
           "build_id": "0c1e57098bba-1a2b3c4d", "model_sha256": "AB" * 32}


def test_fingerprint_is_stable_and_sensitive():
    fp = at.fingerprint(**FP_ARGS)
    assert fp == at.fingerprint(**{**FP_ARGS, "sockets": "2", "cpu_model": "AMD EPYC 9655  96-Core Processor "})
    assert fp["sha256"] == at.fingerprint(**dict(reversed(list(FP_ARGS.items()))))["sha256"]
    assert fp["model_sha256"] == "ab" * 32 and len(fp["sha256"]) == 64
    for key, other in (("cpu_model", "AMD EPYC 9654"), ("sockets", 1), ("numa_nodes", 8), ("memory_bytes", 1),
                       ("build_id", "other"), ("model_sha256", "cd" * 32)):
        assert at.fingerprint(**{**FP_ARGS, key: other})["sha256"] != fp["sha256"], key


def result_for_document():
    host = Host({8: 10.0, 7: 11.0, 6: 12.0, 4: 9.0, 2: 5.0})
    return at.search(host, space_for(ONE_NODE_8), 1000, clock=host.clock)


def test_document_and_service_settings():
    fp = at.fingerprint(**FP_ARGS)
    doc = at.document(result_for_document(), fp, "2025-06-01T10:00:00+00:00", model_active_bytes=1_000_000_000,
                      parameters={"n_prompt": 64})
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    assert doc["version"] == 1 and doc["fingerprint"]["sha256"] == fp["sha256"]
    assert doc["tokens_per_second"] == {"tg": 24.0, "pp": 100.0}
    assert doc["effective_bandwidth_bytes_per_s"] == 24_000_000_000
    assert "derived from generation speed" in doc["effective_bandwidth_source"]
    assert doc["alternatives"][0]["dimension"] == "default" and doc["stopped"] == "done"
    assert doc["confirmation"]["kept"] is True
    assert set(doc) >= {"chosen", "default", "noise_pct", "seconds", "budget_seconds", "skipped", "parameters"}
    assert "effective_bandwidth_bytes_per_s" not in at.document(result_for_document(), fp, "2025-06-01")

    settings = at.service_settings(doc)
    comments = settings.pop("comments")
    # The NUMA policy stayed what the search started from: the unit keeps its own numactl arguments.
    assert settings == {"threads": 6, "environment": at.OMP_ENV, "batch_size": 2048, "ubatch_size": 512,
                        "load_mode": ""}
    assert comments["threads"] == "6; measured 2025-06-01: 24.0 tok/s vs 10.0 tok/s with the defaults (generation)"
    assert comments["batch"].startswith("2048/512; ") and comments["batch"].endswith("(prompt processing)")


def test_service_settings_for_each_policy():
    doc = at.document(result_for_document(), at.fingerprint(**FP_ARGS), "2025-06-01")
    doc["default"]["config"]["numa"] = "interleave"
    for numa, numactl, flag in (("distribute", [], "distribute"), ("node0", ["--cpunodebind=0", "--membind=0"], ""),
                                ("none", [], "")):
        doc["chosen"]["config"].update(numa=numa, mmap=False, omp=False)
        settings = at.service_settings(doc)
        assert (settings["numactl"], settings["numa_flag"]) == (numactl, flag)
        assert settings["comments"]["numa"].startswith(f"{numa}; measured")
        assert settings["load_mode"] == "none" and settings["environment"] == {}
    doc["chosen"]["config"]["numa"] = "interleave"  # the start won: nothing about NUMA reaches the unit
    assert not {"numactl", "numa_flag"} & set(at.service_settings(doc))
    assert "numa" not in at.service_settings(doc)["comments"]


def test_service_settings_without_a_prompt_processing_result():
    doc = at.document(result_for_document(), at.fingerprint(**FP_ARGS), "2025-06-01")
    doc["chosen"]["pp"] = doc["default"]["pp"] = None  # n_prompt 0: llama-bench ran no pp test
    comments = at.service_settings(doc)["comments"]
    assert comments["batch"].endswith("measured 2025-06-01: no prompt processing result (llama.cpp's default kept)")


def test_when_the_default_measured_again_wins_chosen_and_default_are_the_same_measurement():
    """A lucky quiet moment for the first default run must not show as a gain of the default over itself."""
    pps = iter([400.0, 500.0, 520.0])  # prompt speed: default, ubatch 256 (better), the default again (best)

    def measure(config):
        return {"tg": [80.0] * 3, "pp": [next(pps)] * 3, "seconds": 1.0}

    space = [("batch", [{"batch": 2048, "ubatch": 512}, {"batch": 2048, "ubatch": 256}])]
    result = at.search(measure, space, budget_seconds=100, clock=iter(range(0, 1000)).__next__)
    assert result["confirmation"]["kept"] is False
    assert result["chosen"] == result["default"] and result["chosen"]["config"]["ubatch"] == 512
