"""llm_async_watch in a real play: a background download and a background build show progress lines.

Runs ansible-playbook against this machine (local connection) with the real gguf_download module
fetching from the local hub, capped per connection so the transfer lasts a few seconds.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HUB = ROOT / "tests" / "support" / "hf_server.py"
MB = 1_000_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def play(tmp_path, tasks, check=False, **env_extra):
    book = tmp_path / "play.yml"
    book.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_LOG_PATH=str(tmp_path / "ansible.log"),
               ANSIBLE_ASYNC_DIR=str(tmp_path / "async"), **env_extra)
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
            json.dumps({"ansible_python_interpreter": sys.executable}), str(book)] + (["--check"] if check else [])
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    return out, (tmp_path / "ansible.log").read_text() if (tmp_path / "ansible.log").exists() else ""


@pytest.fixture
def hub(tmp_path):
    repo = tmp_path / "www" / "org" / "m" / "resolve" / "main"
    repo.mkdir(parents=True)
    files = []
    for name, size in (("m-00001-of-00002.gguf", 3 * MB), ("m-00002-of-00002.gguf", 2 * MB)):
        data = os.urandom(size)
        (repo / name).write_bytes(data)
        files.append({"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": size})
    port = free_port()
    # 2 connections x 0.5 MB/s: 5 MB take about 5 s, several progress lines at a 1 s interval.
    proc = subprocess.Popen([sys.executable, str(HUB), "--root", str(tmp_path / "www"), "--port", str(port),
                             "--per-connection-rate", str(MB // 2)])
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        subprocess.run(["sleep", "0.05"], check=True)
    yield f"http://127.0.0.1:{port}/org/m/resolve/main", files
    proc.terminate()
    proc.wait()


def download_tasks(base, files, tmp_path):
    progress = str(tmp_path / "staging" / "progress.json")
    return [
        {"name": "Download", "cpu_llm.infra.gguf_download": {
            "base_url": base, "dest_dir": str(tmp_path / "models"), "files": files,
            "staging_dir": str(tmp_path / "staging"), "progress_file": progress, "connections": 2,
            "progress_interval": 0.2},
         "async": 120, "poll": 0, "register": "job", "changed_when": False},
        {"name": "Watch", "cpu_llm.infra.llm_async_watch": {"job": "{{ job }}", "progress_file": progress,
                                                            "interval": 1},
         "register": "watched"},
        {"name": "Result", "ansible.builtin.debug": {"msg": "{{ watched.files | map(attribute='changed') }}"}},
    ]


def test_a_download_prints_progress_lines_then_the_average(hub, tmp_path):
    base, files = hub
    out, log = play(tmp_path, download_tasks(base, files, tmp_path))
    assert out.returncode == 0, out.stdout[-3000:]
    running = re.findall(r"localhost: ([\d.]+) / 5\.0 MB, ([\d.]+) MB/s, ETA (\S+)", out.stdout)
    assert len(running) >= 2, out.stdout[-3000:]
    done = [float(d) for d, _, _ in running]
    assert done == sorted(done) and done[-1] < 5.0  # it moved, and these lines came before the end
    assert re.search(r"localhost: 5\.0 MB in \d+s, average [\d.]+ MB/s", out.stdout)
    # The same lines reach Ansible's log file, where a verify test (or a person) reads them later.
    assert len(re.findall(r"localhost: [\d.]+ / 5\.0 MB", log)) == len(running)
    for f in files:
        assert hashlib.sha256((tmp_path / "models" / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert re.search(r"changed: \[localhost\]", out.stdout.split("TASK [Watch]")[1])
    assert not any((tmp_path / "async").iterdir())  # the job's status file was cleaned up

    # A second run: nothing to fetch, no progress lines, nothing changed.
    again, _ = play(tmp_path, download_tasks(base, files, tmp_path))
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-2000:]
    assert "MB/s" not in again.stdout.split("TASK [Watch]")[1].split("TASK [Result]")[0]


def test_a_failed_download_fails_the_watch_with_the_modules_message(hub, tmp_path):
    base, files = hub
    bad = [dict(files[0], sha256="0" * 64)]
    out, _ = play(tmp_path, download_tasks(base, bad, tmp_path))
    assert out.returncode != 0
    assert "sha256 of m-00001-of-00002.gguf is" in out.stdout and "nothing in the model directory" in out.stdout


def test_check_mode_fetches_nothing_and_prints_no_progress(hub, tmp_path):
    base, files = hub
    out, _ = play(tmp_path, download_tasks(base, files, tmp_path), check=True)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "MB/s" not in out.stdout and not (tmp_path / "models").exists()


def test_a_build_prints_its_stage_after_the_quiet_period_and_a_log_tail_when_it_fails(tmp_path):
    log = tmp_path / "build.log"
    steps = "; ".join(f"echo '[ {p:2d}%] Building CXX object step{p}.o'; sleep 0.5" for p in range(0, 100, 10))
    tasks = [
        {"name": "Build", "ansible.builtin.command": {"argv": ["sh", "-c", f"exec >{log} 2>&1; {steps}; "
                                                                          "echo 'error: it broke'; exit 3"]},
         "async": 60, "poll": 0, "register": "job", "changed_when": True},
        {"name": "Watch", "cpu_llm.infra.llm_async_watch": {
            "job": "{{ job }}", "kind": "build", "what": "building llama.cpp", "progress_file": str(log),
            "interval": 1, "quiet_seconds": 2}},
    ]
    out, _ = play(tmp_path, tasks)
    assert out.returncode != 0
    stages = re.findall(r"^localhost: building llama\.cpp: (\d+)% \(Building CXX object step\d+\.o\), (\d+)s$",
                        out.stdout, re.MULTILINE)
    assert stages, out.stdout[-3000:]
    assert all(int(elapsed) >= 2 for _, elapsed in stages)  # nothing during the quiet period
    assert [int(p) for p, _ in stages] == sorted(int(p) for p, _ in stages)
    assert "error: it broke" in out.stdout and "building llama.cpp failed (exit code 3)" in out.stdout


def test_under_the_json_callback_stdout_stays_one_document_and_the_lines_go_to_stderr(hub, tmp_path):
    base, files = hub
    out, log = play(tmp_path, download_tasks(base, files, tmp_path), ANSIBLE_STDOUT_CALLBACK="json")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)  # parseable: no progress line in it
    watch = next(t for t in result["plays"][0]["tasks"] if t["task"]["name"] == "Watch")
    lines = watch["hosts"]["localhost"]["progress_lines"]
    assert lines and lines[-1].startswith("localhost: 5.0 MB in ")
    assert all(line in out.stderr for line in lines) and lines[-1] in log
