"""Re-running site.yml upgrades the model safely. Steps run in order against one container.

1. converge (molecule) served model A: 3 Q6_K shards at revision main
2. revision v2 (model B, one Q4_1 file) -> serving B, A kept
3. a download corrupted in transit (listing sha256 != bytes) -> play fails, B serving, nothing deleted
4. revision 'broken' (right sha256, cannot load) -> play fails, rolled back, B serving and healthy
5. a transfer cut midway -> the next run resumes with HTTP Range from where it stopped
6. a further run changes nothing
7. gguf_model_retain: 1 prunes the older served model, never one that was not served
8. a mixture-of-experts model (tiny qwen3moe, 8 experts, 2 used): sized from its GGUF header
   (experts and active bytes in the report), served, answering as llama.cpp itself does

Assertions read which file the running llama-server has mapped (/proc/<pid>/maps), not the config.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import generation  # molecule/shared/generation.py (on the path through pytest.ini)
import playbook  # molecule/shared/playbook.py (on the path through pytest.ini)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CACHE = Path(os.environ.get("LLM_CACHE_DIR", "/var/cache/llm-cpu-infra"))
HUB = ROOT / "tests" / "support" / "hf_server.py"
MODELS = "/srv/llm/models/local-test--SmolLM2-135M-Instruct-GGUF"
MANIFEST = json.loads((CACHE / "manifest.json").read_text())
SHARDS = [f["name"] for f in MANIFEST["models"]["sharded"]]
B = "SmolLM2-135M-Instruct-Q4_1.gguf"
SINGLE = MANIFEST["models"]["single"][0]
CUT = 20 * 1024 * 1024


def converge(extra):
    """site.yml (the scenario's converge playbook) with extra vars: (rc, changed tasks, failures)."""
    return playbook.run(HERE.parent / "converge.yml", extra)


def hub(port, *faults):
    """A second local hub on another port, serving the same files, with a fault injected."""
    pidfile = CACHE / f"hub-{port}.pid"
    subprocess.run([sys.executable, str(HUB), "--daemon", "--root", MANIFEST["www"], "--port", str(port),
                    "--pidfile", str(pidfile), "--request-log", str(CACHE / f"hub-{port}.jsonl"), *faults], check=True)
    return f"http://127.0.0.1:{port}", pidfile


def stop(pidfile):
    subprocess.run([sys.executable, str(HUB), "--stop", "--pidfile", str(pidfile)], check=False)


def serving(host):
    """Basenames of the .gguf files the running llama-server has mapped, and their real paths."""
    pid = host.check_output("systemctl show --property MainPID --value llama-server.service")
    maps = host.check_output(f"cat /proc/{pid}/maps")
    paths = sorted({line.split()[-1] for line in maps.splitlines() if line.endswith(".gguf")})
    return [p.rsplit("/", 1)[-1] for p in paths], paths


def healthy(host):
    script = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=5).status)"
    return host.run(f"python3 -c \"{script}\"").stdout.strip() == "200"


def files(host):
    return set(host.check_output(f"find {MODELS} -type f -name '*.gguf'").split())


V2 = {"gguf_model_revision": "v2", "gguf_model_files": [], "gguf_model_quant": "Q4_1"}


def test_1_converge_served_model_a_from_its_shards(host):
    names, paths = serving(host)
    assert names == SHARDS
    assert all(p.startswith(f"{MODELS}/main/") for p in paths)
    assert host.file("/srv/llm/models/current").linked_to == f"{MODELS}/main"


def test_2_upgrade_to_model_b_keeps_a(host):
    rc, _, failures = converge(V2)
    assert rc == 0, failures
    names, paths = serving(host)
    assert names == [B] and paths == [f"{MODELS}/v2/{B}"]
    assert healthy(host)
    assert {f"{MODELS}/main/{s}" for s in SHARDS} <= files(host), "model A was deleted"
    # The new model is the one answering, as llama.cpp itself runs it (CPU-independent check).
    served, direct, details = generation.faithful(host.check_output)
    assert served == direct and details["command"][2].endswith(B), details


def test_3_corrupted_download_fails_and_b_keeps_serving(host):
    before = files(host)
    endpoint, pidfile = hub(18082, "--corrupt", "Q6_K.gguf")
    try:
        rc, _, failures = converge({"gguf_model_endpoint": endpoint, "gguf_model_revision": "main",
                                    "gguf_model_files": [SINGLE["name"]]})
    finally:
        stop(pidfile)
    assert rc != 0
    assert any("the download was discarded" in str(msg) for _, msg in failures), failures
    assert serving(host)[0] == [B] and healthy(host)
    assert files(host) == before, "a file was added or deleted"
    assert not host.file(f"{MODELS}/main/{SINGLE['name']}").exists


def test_4_unloadable_model_is_rolled_back(host):
    rc, _, failures = converge({"gguf_model_revision": "broken", "gguf_model_files": [], "gguf_model_quant": "Q4_1"})
    assert rc != 0
    message = " ".join(str(msg) for _, msg in failures)
    assert "did not turn healthy" in message and "healthy again" in message, failures
    assert serving(host)[0] == [B] and healthy(host)
    assert host.file("/srv/llm/models/current").linked_to == f"{MODELS}/v2"
    # The broken download stays for inspection; nothing was deleted.
    assert host.file(f"{MODELS}/broken/{B}").exists


def test_5_interrupted_download_resumes_with_range(host):
    # One connection: a cut stream ends the run and the next run resumes the part with one Range
    # request. (With several connections a cut chunk is continued within the same run; the unit
    # tests cover that against the same hub.)
    single = {"gguf_model_download_connections": 1}
    endpoint, pidfile = hub(18083, "--max-bytes-per-request", str(CUT))
    try:
        rc, _, failures = converge({"gguf_model_endpoint": endpoint, "gguf_model_revision": "main",
                                    "gguf_model_files": [SINGLE["name"]], **single})
    finally:
        stop(pidfile)
    assert rc != 0 and any("the next run resumes it" in str(msg) for _, msg in failures), failures
    part = host.file(f"/srv/llm/models/.staging/local-test--SmolLM2-135M-Instruct-GGUF/main/{SINGLE['name']}.part")
    assert part.size == CUT
    assert serving(host)[0] == [B], "the failed download must not touch the service"

    log = CACHE / "hub-requests.jsonl"
    seen = len(log.read_text().splitlines()) if log.exists() else 0
    rc, _, failures = converge({"gguf_model_revision": "main", "gguf_model_files": [SINGLE["name"]], **single})
    assert rc == 0, failures
    new = [json.loads(line) for line in log.read_text().splitlines()[seen:]]
    gets = [r for r in new if r["method"] == "GET" and r["path"].endswith(SINGLE["name"])]
    # The plan reads the file's GGUF header first (closed ranges of a few MB, bytes=a-b); the
    # download itself is one open-ended Range request from where the cut left the part file.
    header = [r for r in gets if not r["range"].endswith("-")]
    download = [r for r in gets if r["range"].endswith("-")]
    assert [r["range"] for r in download] == [f"bytes={CUT}-"], gets
    assert download[0]["bytes"] == SINGLE["size"] - CUT
    assert sum(r["bytes"] for r in header) < 8 * 2**20, header
    assert serving(host)[0] == [SINGLE["name"]] and healthy(host)
    assert host.check_output(f"sha256sum {MODELS}/main/{SINGLE['name']}").split()[0] == SINGLE["sha256"]


def test_6_a_further_run_changes_nothing(host):
    rc, changed, failures = converge({"gguf_model_revision": "main", "gguf_model_files": [SINGLE["name"]]})
    assert rc == 0, failures
    assert not changed, changed


def test_7_retention_prunes_only_served_models_and_only_when_asked(host):
    # History of served models: v2 (B), then main (A's revision, now the single Q6_K file).
    rc, _, failures = converge({"gguf_model_revision": "main", "gguf_model_files": [SINGLE["name"]],
                                "gguf_model_retain": 1})
    assert rc == 0, failures
    assert not host.file(f"{MODELS}/v2").exists, "the older served model was kept despite gguf_model_retain: 1"
    assert host.file(f"{MODELS}/main/{SINGLE['name']}").exists and serving(host)[0] == [SINGLE["name"]]
    # Never served (its health gate failed): not this role's to prune.
    assert host.file(f"{MODELS}/broken/{B}").exists


def test_8_a_mixture_of_experts_model_is_sized_from_its_header_and_served(host):
    moe = MANIFEST["models"]["moe"][0]
    rc, result = playbook.execute(HERE.parent / "converge.yml", {
        "gguf_model_repo": MANIFEST["moe_repo"], "gguf_model_revision": "main", "gguf_model_files": [],
        "gguf_model_quant": "Q8_0"})
    assert rc == 0, playbook.messages(result, "")[-3:]
    report = " ".join(playbook.messages(result, "Show the sizing report"))
    assert "Experts  mixture of experts: 2 of 8 used per token" in report, report
    # Routed experts count at 2/8: a token reads well under the file's size.
    active = float(report.split("used per token, ")[1].split(" GB")[0])
    assert 0 < active * 1e9 < 0.8 * moe["size"], report
    names, _ = serving(host)
    assert names == [moe["name"]]
    served, direct, details = generation.faithful(host.check_output)
    assert served == direct and details["command"][2].endswith(moe["name"]), details
