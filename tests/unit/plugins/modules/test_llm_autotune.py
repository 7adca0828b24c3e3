"""llm_autotune: measure once per fingerprint, write the document atomically, survive a failing trial.

The search itself is tested in module_utils/test_autotune.py. Here: the decision to measure, the file,
the real measurement plumbing against a fake llama-bench, and (with LLM_TEST_LLAMA_BENCH set to a built
llama-bench) one short real run on the test model.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import autotune as at
from ansible_collections.cpu_llm.infra.plugins.modules import llm_autotune as mod

ROOT = Path(__file__).resolve().parents[4]
MODEL = Path("/var/cache/llm-cpu-infra/www/local-test/SmolLM2-135M-Instruct-GGUF/resolve/main/"
             "SmolLM2-135M-Instruct-Q6_K.gguf")
FINGERPRINT = {"cpu_model": "Intel(R) Xeon(R) Processor", "sockets": 1, "numa_nodes": 1, "memory_bytes": 8 << 30,
               "build_id": "0c1e57098bba-test", "model_sha256": "0" * 64}

# A stand-in llama-bench: tok/s from the threads and OMP_WAIT_POLICY, fails for `-lm none`, logs each run.
FAKE_BENCH = """#!{python}
import json, os, sys
args = sys.argv[1:]
if "--help" in args:
    print("usage: llama-bench [options]\\n  -lm, --load-mode <auto|none|mmap|mlock|mmap+mlock|dio>")
    sys.exit(0)
opt = dict(zip(args[::2], args[1::2]))
omp = {{k: v for k, v in os.environ.items() if k.startswith("OMP_")}}
with open(os.environ["FAKE_BENCH_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "omp": omp}}) + "\\n")
if opt.get("-lm") == "none":
    sys.stderr.write("llama_model_load: error loading model: out of memory\\n")
    sys.exit(1)
tg = 10.0 * int(opt["-t"]) * (2 if os.environ.get("OMP_WAIT_POLICY") == "active" else 1)
r = int(opt["-r"])
print(json.dumps([
    {{"n_prompt": int(opt["-p"]), "n_gen": 0, "avg_ts": 100.0, "samples_ts": [100.0] * r}},
    {{"n_prompt": 0, "n_gen": int(opt["-n"]), "avg_ts": tg, "samples_ts": [tg] * r}},
]))
"""


def params(tmp_path, **overrides):
    out = {"llama_bench": str(tmp_path / "bin" / "llama-bench"), "model": str(tmp_path / "m.gguf"),
           "path": str(tmp_path / "etc" / "llama-server" / "tuning.json"), "fingerprint": dict(FINGERPRINT),
           "budget_seconds": 60.0, "repetitions": 2, "n_prompt": 64, "n_gen": 8, "timeout": 60.0, "force": False,
           "model_active_bytes": None, "dimensions": list(at.DIMENSIONS)}
    out.update(overrides)
    return out


class Tuner:
    """Stands in for tune(): counts calls, returns a minimal document."""

    def __init__(self):
        self.calls = 0

    def __call__(self, p, fingerprint):
        self.calls += 1
        trial = {"config": {"threads": 2, "numa": "none", "omp": True, "batch": 2048, "ubatch": 512, "mmap": True},
                 "tg": 20.0, "pp": 100.0}
        result = {"default": {**trial, "tg": 10.0}, "chosen": trial, "trials": [], "noise_pct": 0.0,
                  "seconds": 1.0, "budget_seconds": p["budget_seconds"], "stopped": "done", "skipped": {}}
        return at.document(result, fingerprint, f"2025-06-0{self.calls}T00:00:00+00:00")


def test_same_fingerprint_returns_the_stored_document_without_measuring(tmp_path):
    tuner, p = Tuner(), params(tmp_path)
    first = mod.decide(p, check_mode=False, tuner=tuner)
    assert first["changed"] and first["tuned"] and tuner.calls == 1
    path = Path(p["path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert json.loads(path.read_text()) == first["document"]
    assert first["service"]["threads"] == 2 and first["service"]["environment"] == at.OMP_ENV

    again = mod.decide(p, check_mode=False, tuner=tuner)
    assert not again["changed"] and not again["tuned"] and tuner.calls == 1
    assert again["document"] == first["document"] and again["service"] == first["service"]
    assert sorted(os.listdir(path.parent)) == ["tuning.json"]  # no temporary file left

    # The fingerprint's values as Ansible templates them (strings) are the same fingerprint.
    as_strings = params(tmp_path, fingerprint={k: str(v) for k, v in FINGERPRINT.items()})
    assert not mod.decide(as_strings, check_mode=False, tuner=tuner)["changed"]


@pytest.mark.parametrize("change", ["force", "build", "model", "version", "corrupt"])
def test_measures_again_when_anything_it_depends_on_changed(tmp_path, change):
    tuner, p = Tuner(), params(tmp_path)
    mod.decide(p, check_mode=False, tuner=tuner)
    path = Path(p["path"])
    if change == "force":
        p["force"] = True
    elif change == "build":
        p["fingerprint"]["build_id"] = "0c1e57098bba-other"
    elif change == "model":
        p["fingerprint"]["model_sha256"] = "1" * 64
    elif change == "version":
        path.write_text(json.dumps({**json.loads(path.read_text()), "version": 0}))
    else:
        path.write_text("{not json")
    result = mod.decide(p, check_mode=False, tuner=tuner)
    assert result["changed"] and tuner.calls == 2
    assert json.loads(path.read_text())["measured_at"].startswith("2025-06-02")


def test_check_mode_measures_and_writes_nothing(tmp_path):
    tuner, p = Tuner(), params(tmp_path)
    assert mod.decide(p, check_mode=True, tuner=tuner) == {"changed": True, "tuned": True, "document": {},
                                                           "service": {}}
    assert tuner.calls == 0 and not Path(p["path"]).parent.exists()
    mod.decide(p, check_mode=False, tuner=tuner)
    assert not mod.decide(p, check_mode=True, tuner=tuner)["changed"]


def test_model_files_of_a_split_model(tmp_path):
    for name in ("m-00001-of-00002.gguf", "m-00002-of-00002.gguf", "m-00001-of-00003.gguf", "other.gguf"):
        (tmp_path / name).write_bytes(b"x")
    assert mod.model_files(str(tmp_path / "m-00001-of-00002.gguf")) == \
        [str(tmp_path / "m-00001-of-00002.gguf"), str(tmp_path / "m-00002-of-00002.gguf")]
    assert mod.model_files(str(tmp_path / "other.gguf")) == [str(tmp_path / "other.gguf")]


@pytest.fixture
def fake_bench(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    bench = tmp_path / "bin" / "llama-bench"
    bench.write_text(FAKE_BENCH.format(python=sys.executable))
    bench.chmod(0o755)
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + bytes(1020))
    log = tmp_path / "bench.jsonl"
    monkeypatch.setenv("FAKE_BENCH_LOG", str(log))
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")  # the caller's own, which must not leak into trials
    return lambda: [json.loads(line) for line in log.read_text().splitlines()]


def fake_sys(root, cores):
    cpu = root / "sys/devices/system/cpu"
    cpu.mkdir(parents=True)
    (cpu / "online").write_text(f"0-{cores - 1}\n")
    for n in range(cores):
        (cpu / f"cpu{n}/topology").mkdir(parents=True)
        (cpu / f"cpu{n}/topology/thread_siblings_list").write_text(f"{n}\n")
    node = root / "sys/devices/system/node/node0"
    node.mkdir(parents=True)
    (node / "cpulist").write_text(f"0-{cores - 1}\n")
    (node / "meminfo").write_text("Node 0 MemTotal: 8388608 kB\n")


def test_tune_runs_llama_bench_and_records_a_failed_trial(tmp_path, fake_bench):
    fake_sys(tmp_path / "root", 4)
    p = params(tmp_path, model_active_bytes=1000)
    doc = mod.tune(p, at.fingerprint(**FINGERPRINT), sys_root=str(tmp_path / "root"))
    runs = fake_bench()
    # The default: 4 threads, no OpenMP variables (the caller's OMP_WAIT_POLICY=passive removed), mmap.
    assert runs[0]["omp"] == {} and runs[0]["argv"][runs[0]["argv"].index("-lm") + 1] == "mmap"
    assert doc["parameters"]["mmap_flag"] == "-lm" and doc["parameters"]["topology"]["cores"] == 4
    if shutil.which("ldd"):  # without ldd the build cannot be probed and OMP_* are measured anyway
        # The fake links no OpenMP (ldd says "not a dynamic executable"), so OMP_* are not tried.
        assert doc["parameters"]["openmp"] is False and "does not link an OpenMP runtime" in doc["skipped"]["omp"]
        assert all(run["omp"] == {} for run in runs)
    # More threads are faster on the fake: 4 stays; the walk down stops after 3 and 2.
    assert [t["config"]["threads"] for t in doc["alternatives"] if t["dimension"] == "threads"] == [3, 2]
    failed = next(t for t in doc["alternatives"] if t["dimension"] == "mmap")
    assert failed["verdict"] == "failed" and "out of memory" in failed["error"]
    assert doc["chosen"]["config"] == {"omp": False, "threads": 4, "numa": "none", "mmap": True,
                                       "batch": 2048, "ubatch": 512}
    assert doc["tokens_per_second"] == {"tg": 40.0, "pp": 100.0} and doc["effective_bandwidth_bytes_per_s"] == 40000
    assert doc["skipped"]["numa"].startswith("one NUMA node") and doc["stopped"] == "done"


def test_a_failing_default_fails_with_a_clear_message(tmp_path, fake_bench):
    fake_sys(tmp_path / "root", 2)
    p = params(tmp_path, dimensions=["threads"])
    (tmp_path / "m.gguf").unlink()
    (tmp_path / "m.gguf").write_bytes(b"")
    bench = Path(p["llama_bench"])
    bench.write_text("#!/bin/sh\n[ \"$1\" = --help ] && exit 0\necho 'error: failed to load model' >&2\nexit 1\n")
    with pytest.raises(at.BenchError, match=r"default configuration .*rc=1: error: failed to load model"):
        mod.tune(p, at.fingerprint(**FINGERPRINT), sys_root=str(tmp_path / "root"))


def test_the_module_through_ansible(tmp_path, fake_bench):
    """Argument spec and exit values as Ansible runs the module (check mode, then for real, then again)."""
    def run(*extra):
        args = json.dumps({**{k: v for k, v in params(tmp_path, budget_seconds=20).items() if v is not None},
                           "dimensions": ["threads"]})
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_STDOUT_CALLBACK="json")
        out = subprocess.run(["ansible", "localhost", "-m", "cpu_llm.infra.llm_autotune", "-a", args, *extra],
                             cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return json.loads(out.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]

    checked = run("--check")
    assert checked["changed"] and checked["tuned"] and not Path(params(tmp_path)["path"]).exists()
    tuned = run()
    assert tuned["changed"] and tuned["service"]["threads"] in (1, os.cpu_count())
    assert json.loads(Path(tuned["path"]).read_text()) == tuned["document"]
    again = run()
    assert not again["changed"] and again["document"] == tuned["document"]


@pytest.mark.skipif(not os.environ.get("LLM_TEST_LLAMA_BENCH"),
                    reason="LLM_TEST_LLAMA_BENCH (path of a built llama-bench) is not set")
def test_a_real_short_run(tmp_path):
    bench = os.environ["LLM_TEST_LLAMA_BENCH"]
    if not os.path.isfile(bench) or not MODEL.is_file():
        pytest.skip(f"{bench} or the test model {MODEL} is missing")
    p = params(tmp_path, llama_bench=bench, model=str(MODEL), budget_seconds=60.0, repetitions=3, n_prompt=64,
               n_gen=32, model_active_bytes=MODEL.stat().st_size)
    began = time.monotonic()
    result = mod.decide(p, check_mode=False)
    elapsed = time.monotonic() - began
    doc = result["document"]
    print(json.dumps({"elapsed": round(elapsed, 1), "chosen": doc["chosen"], "default": doc["default"],
                      "trials": [{k: t.get(k) for k in ("dimension", "config", "tg", "pp", "seconds", "verdict",
                                                        "error")} for t in doc["alternatives"]],
                      "noise_pct": doc["noise_pct"], "skipped": doc["skipped"], "stopped": doc["stopped"],
                      "parameters": doc["parameters"], "service": result["service"]}, indent=1))
    assert result["changed"] and doc["chosen"]["tg"] > 0 and doc["default"]["tg"] > 0
    assert doc["seconds"] <= p["budget_seconds"] and elapsed < p["budget_seconds"] + 30
    assert doc["chosen"]["tg"] >= doc["default"]["tg"]
    assert not mod.decide(p, check_mode=False)["changed"]  # measured once per fingerprint


def test_the_document_it_writes_is_one_the_role_may_replace(tmp_path):
    """validate.yml replaces an existing autotune_file only when it holds the role's marker: what the module
    writes must hold it, and a file of someone else's must not."""
    import yaml
    from ansible_collections.cpu_llm.infra.plugins.module_utils.path_ownership import owned_problems
    marker = yaml.safe_load((ROOT / "roles" / "autotune" / "vars" / "main.yml").read_text())["__autotune_file_marker"]
    p = params(tmp_path)
    mod.decide(p, check_mode=False, tuner=Tuner())
    item = {"name": "autotune_file", "path": p["path"], "kind": "file", "marker": marker}
    assert owned_problems([item]) == []
    Path(p["path"]).write_text('{"chosen": {}}\n')
    problem, = owned_problems([item])
    assert problem.startswith("autotune_file: ") and "did not write it" in problem
