"""What a converged server must be: the real service, interleaved, native build, verified model."""

import json
import os
import re
import shlex

import generation  # molecule/shared/generation.py (on the path through pytest.ini)
import pytest

MODEL_DIR = "/srv/llm/models"
CACHE = os.environ.get("LLM_CACHE_DIR", "/var/cache/llm-cpu-infra")

HTTP = """
import json, sys, urllib.request, urllib.error
url, body = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, data=body.encode() or None, headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"""


def http(host, url, body=""):
    """An HTTP request made from inside the server (python3 is there; curl is not)."""
    out = host.check_output(f"python3 -c {shlex.quote(HTTP)} {shlex.quote(url)} {shlex.quote(body)}")
    return json.loads(out)


@pytest.fixture(scope="module")
def main_pid(host):
    pid = host.check_output("systemctl show --property MainPID --value llama-server.service")
    assert pid not in ("", "0"), "llama-server.service has no main process"
    return pid


@pytest.fixture(scope="module")
def server_pid(host, main_pid):
    """numactl execs llama-server, so the unit's main PID is llama-server itself."""
    comm = host.check_output(f"cat /proc/{main_pid}/comm").strip()
    assert comm == "llama-server", f"main process is {comm!r}, expected numactl to have exec'd llama-server"
    return main_pid


def test_service_enabled_and_running(host):
    service = host.service("llama-server.service")
    assert service.is_enabled
    assert service.is_running


def test_service_runs_as_dedicated_user_without_login(host, server_pid):
    status = host.check_output(f"cat /proc/{server_pid}/status")
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    user = host.user("llama")
    assert int(uid) == user.uid != 0
    assert user.shell in ("/usr/sbin/nologin", "/sbin/nologin")


def test_memory_policy_is_interleave(host, server_pid):
    # Every mapping of the process carries the policy it was started under.
    numa_maps = host.check_output(f"cat /proc/{server_pid}/numa_maps")
    policies = {line.split()[1] for line in numa_maps.splitlines() if line.strip()}
    assert policies, "empty numa_maps"
    assert all(p.startswith("interleave:") for p in policies), policies


def test_model_mapped_is_the_first_shard(host, server_pid):
    maps = host.check_output(f"cat /proc/{server_pid}/maps")
    mapped = {line.split()[-1] for line in maps.splitlines() if line.endswith(".gguf")}
    assert mapped, "the process maps no .gguf file"
    assert any(re.search(r"-00001-of-\d{5}\.gguf$", m) for m in mapped), mapped
    # llama.cpp found and mapped the other shards too.
    assert len(mapped) >= 3, mapped


def test_binary_built_for_this_cpu(host, server_pid):
    """GGML_NATIVE compiles for this CPU: its widest vector registers appear in the machine code.

    A baseline x86-64 build has no AVX-512 (zmm) or AVX2 (ymm) instructions at all.
    """
    binary = host.check_output(f"readlink -f /proc/{server_pid}/exe")
    flags = set(re.search(r"^flags\s*:\s*(.*)$", host.check_output("cat /proc/cpuinfo"), re.M).group(1).split())
    disassembly = f"objdump -d --no-show-raw-insn {binary}"
    if "avx512f" in flags:
        assert int(host.check_output(f"{disassembly} | grep -c '%zmm' || true")) > 1000, "no AVX-512 code"
    if "avx2" in flags:
        assert int(host.check_output(f"{disassembly} | grep -c '%ymm' || true")) > 1000, "no AVX2 code"
    build_info = json.loads(host.check_output(f"cat {binary.rsplit('/bin/', 1)[0]}/BUILD-INFO.json"))
    assert "-DGGML_NATIVE=ON" in build_info["cmake_options"]


def test_model_files_match_their_sha256(host):
    listing = host.check_output(f"find {MODEL_DIR} -name '*.gguf' -type f")
    files = sorted(listing.split())
    assert len(files) == 3, files
    with open(os.path.join(CACHE, "manifest.json")) as handle:
        expected = {f["name"]: f["sha256"] for f in json.load(handle)["models"]["sharded"]}
    assert {p.rsplit("/", 1)[-1] for p in files} == set(expected)
    for path in files:
        digest = host.check_output(f"sha256sum {path}").split()[0]
        assert digest == expected[path.rsplit("/", 1)[-1]], path


def test_props_name_the_pinned_llama_cpp_commit(host):
    """A tarball has no .git; the role passes the pinned commit into llama.cpp's build info."""
    with open(os.path.join(CACHE, "manifest.json")) as handle:
        commit = json.load(handle)["llama_cpp"]["version"]
    props = json.loads(http(host, "http://127.0.0.1:8080/props")["body"])
    assert commit[:12] in props["build_info"], props["build_info"]
    assert "unknown" not in props["build_info"]


def test_models_endpoint_names_the_model_as_repo_and_quant(host):
    """Clients (and chat front ends) see <repo>:<quant>, not a file path."""
    with open(os.path.join(CACHE, "manifest.json")) as handle:
        repo = json.load(handle)["model_repo"]
    models = json.loads(http(host, "http://127.0.0.1:8080/v1/models")["body"])
    assert [m["id"] for m in models["data"]] == [f"{repo}:Q6_K"], models
    # ... and a request naming it is served.
    body = json.dumps({"model": f"{repo}:Q6_K", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
    assert http(host, "http://127.0.0.1:8080/v1/chat/completions", body)["status"] == 200


def test_health_answers_200(host):
    assert http(host, "http://127.0.0.1:8080/health")["status"] == 200


def test_service_output_is_llama_cpps_own_greedy_output(host):
    """The service serves the model faithfully: same text as llama-completion on this host."""
    served, direct, details = generation.faithful(host.check_output)
    assert served.strip(), details
    assert served == direct, f"service {served!r} != llama-completion {direct!r} for {details['prompt']!r}"


def test_model_answers_a_majority_of_factual_questions(host):
    right, answers = generation.sensible(host.check_output)
    assert right >= generation.majority(len(answers)), answers


def test_unit_exposure_score_at_most_2(host):
    out = host.check_output("systemd-analyze security llama-server.service --no-pager 2>&1 | tail -n 1")
    score = float(re.search(r"exposure level for llama-server\.service:\s*([\d.]+)", out).group(1))
    assert score <= 2.0, out


def test_model_and_binaries_are_read_only_to_the_service(host, server_pid):
    for path in [MODEL_DIR, host.check_output(f"readlink -f /proc/{server_pid}/exe")]:
        target = host.file(path)
        assert target.user == "root"
        assert not target.mode & 0o022, f"{path} is group/world writable"
        cmd = host.run(f"runuser -u llama -- test -w {path}")
        assert cmd.rc != 0, f"the service user can write {path}"


def test_kill_9_is_restarted_and_healthy_again(host, server_pid):
    host.check_output(f"kill -9 {server_pid}")
    seconds = host.check_output(
        "python3 -c \"import time, urllib.request\n"
        "start = time.time()\n"
        "while time.time() - start < 30:\n"
        "    try:\n"
        "        if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=1).status == 200: break\n"
        "    except Exception: pass\n"
        "    time.sleep(0.2)\n"
        "print(round(time.time() - start, 1))\"")
    new_pid = host.check_output("systemctl show --property MainPID --value llama-server.service")
    assert new_pid not in ("0", server_pid)
    # RestartSec=2 plus loading this small model: well inside 10 s.
    assert float(seconds) <= 10, f"healthy again after {seconds} s"


CONCURRENT = """
import json, sys, threading, urllib.request
n = int(sys.argv[1])
body = json.dumps({"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8}).encode()
codes = []
def ask():
    req = urllib.request.Request("http://127.0.0.1:8080/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        codes.append((r.status, bool(json.load(r)["choices"][0]["message"]["content"])))
threads = [threading.Thread(target=ask) for _ in range(n)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps(codes))
"""


def rss_kb(host):
    pid = host.check_output("systemctl show --property MainPID --value llama-server.service")
    return int(re.search(r"^VmRSS:\s+(\d+)", host.check_output(f"cat /proc/{pid}/status"), re.M).group(1))


def test_concurrent_requests_beyond_the_slots_are_queued_and_memory_stays_flat(host):
    slots = int(re.search(r"--parallel (\d+)", host.check_output("systemctl cat llama-server.service")).group(1))
    rss = []
    for _ in range(3):
        out = host.check_output(f"python3 -c {shlex.quote(CONCURRENT)} {slots * 2}")
        answers = json.loads(out)
        assert len(answers) == slots * 2 and all(code == 200 and text for code, text in answers), answers
        rss.append(rss_kb(host))
    assert rss[-1] <= rss[0] * 1.10, f"RSS grew across rounds: {rss} kB"


def test_sysctl_file_is_persisted_with_its_values(host):
    conf = host.file("/etc/sysctl.d/60-llm-inference.conf")
    assert conf.user == "root" and conf.mode == 0o644
    values = dict(line.split(" = ") for line in conf.content_string.splitlines() if " = " in line)
    assert values == {"kernel.numa_balancing": "0", "vm.swappiness": "10", "vm.zone_reclaim_mode": "0"}
    # Every key exists in this kernel, so a boot applies the whole file.
    for key in values:
        assert host.run(f"sysctl -n {key}").rc == 0, f"{key} unknown to this kernel"


def test_thp_and_cpufreq_are_persisted(host):
    thp = host.file("/etc/tmpfiles.d/60-llm-thp.conf").content_string
    assert "w /sys/kernel/mm/transparent_hugepage/enabled - - - - always" in thp
    assert "w /sys/kernel/mm/transparent_hugepage/defrag - - - - defer+madvise" in thp
    cpufreq = host.service("llm-cpufreq.service")
    assert cpufreq.is_enabled
    assert "echo performance >" in host.check_output("systemctl cat llm-cpufreq.service")


def test_tuning_tools_installed(host):
    for package in ("numactl", "dmidecode", "hwloc", "linux-cpupower"):
        assert host.package(package).is_installed, package


def test_no_kernel_parameters_and_no_memlock_file_by_default(host):
    assert not host.file("/etc/default/grub.d/60-llm-inference.cfg").exists
    assert not host.file("/etc/security/limits.d/60-llm-memlock.conf").exists


def test_the_converge_showed_the_download_moving():
    """The play printed progress lines while the model came (from the rate-capped hub) and the average after.

    Read from the play's log (ANSIBLE_LOG_PATH, molecule.yml), where the converge wrote them.
    """
    log = open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.log")).read()
    running = re.findall(r"llm-default: ([\d.]+) / ([\d.]+) MB, ([\d.]+) MB/s, ETA (\S+)$", log, re.MULTILINE)
    assert len(running) >= 2, "fewer than two progress lines in the converge log"
    done = [float(d) for d, _, _, _ in running]
    total = float(running[0][1])
    assert done == sorted(done) and done[-1] < total  # it moved, and the lines came before the end
    assert any(float(r) > 0 for _, _, r, _ in running) and any(eta != "?" for *_, eta in running)
    final = re.findall(r"llm-default: ([\d.]+) MB in \d+s, average ([\d.]+) MB/s$", log, re.MULTILINE)
    assert final and float(final[0][0]) == total and float(final[0][1]) > 0


@pytest.fixture(scope="module")
def tuning(host):
    return json.loads(host.file("/etc/llama-server/tuning.json").content_string)


def test_autotune_measured_within_its_budget_and_the_service_runs_the_choice(host, tuning):
    # The search starts no trial past its budget (each trial's seconds are its own llama-bench run, so this
    # holds however busy the host is; the total wall time does not: the last trial may end past the budget).
    started = [t["seconds"] for t in tuning["alternatives"]]
    assert sum(started[:-1]) <= tuning["budget_seconds"] and tuning["stopped"] in ("budget", "done"), tuning
    assert len(tuning["alternatives"]) >= 2 and tuning["noise_pct"] is not None
    chosen = tuning["chosen"]["config"]
    unit = host.file("/etc/systemd/system/llama-server.service").content_string
    assert "Measured on this host by the autotune role" in unit
    # The process running now (an earlier test killed and restarted the first one).
    pid = host.check_output("systemctl show --property MainPID --value llama-server.service")
    argv = host.file(f"/proc/{pid}/cmdline").content_string.split("\0")
    assert argv[argv.index("--threads") + 1] == str(chosen["threads"])
    environ = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    assert ("OMP_WAIT_POLICY=active" in environ) == chosen["omp"]
    build = host.file("/opt/llama.cpp/current").linked_to
    assert tuning["fingerprint"]["build_id"] == build.rstrip("/").rsplit("/", 1)[-1]


def test_autotune_measured_once_re_runs_did_not():
    """In the play log: the measuring task changed in the converge and was skipped in every later run."""
    log = open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.log")).read().splitlines()
    outcomes = []
    for i, line in enumerate(log):
        if "TASK [autotune : Measure with llama-bench" in line:
            outcomes.append(next(re.search(r"\| (\w+):", later).group(1) for later in log[i + 1:]
                                 if re.search(r"\| (changed|ok|skipping|failed|fatal):", later)))
    assert outcomes[0] == "skipping"  # check mode on the fresh host: the probe reports it, nothing runs
    assert outcomes.count("changed") == 1 and set(outcomes[outcomes.index("changed") + 1:]) == {"skipping"}
