"""gguf_header: GGUF files written by llama.cpp's own writer (gguf-py), read locally and over HTTP.

Expected values come from what the test wrote (shapes, types, published model configs) and from
gguf-py's reader, never from gguf_header itself.
"""

import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gguf  # test dependency (requirements-dev.txt): llama.cpp's own writer and reader
import make_gguf  # tests/support/make_gguf.py (on the path through pytest.ini)
import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header as gh

ROOT = Path(__file__).resolve().parents[4]

HUB = ROOT / "tests" / "support" / "hf_server.py"
SMOLLM_DIR = (Path(os.environ.get("LLM_CACHE_DIR") or "/var/cache/llm-cpu-infra")
              / "www/local-test/SmolLM2-135M-Instruct-GGUF/resolve/main")
TOKEN = "hf_test_secret_token_value"  # noqa: S105 - a fake token; it must never appear in messages

# Bytes per block / elements per block, from ggml-common.h (block_q8_0: fp16 scale + 32 int8).
Q8_0_BLOCK, Q8_0_BYTES = 32, 34


def ne_elements(shape):
    return math.prod(shape)


def type_bytes(shape, qtype):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return ne_elements(shape) // block * size


# ----------------------------------------------------------------------------- fixtures


# big, profiles: header-only files of the published layouts and their profiles (conftest.py).


@pytest.fixture
def tiny_dense(tmp_path):
    [path] = make_gguf.write_tiny_dense(tmp_path / "tiny-dense.gguf")
    return path


@pytest.fixture
def tiny_moe(tmp_path):
    [path] = make_gguf.write_tiny_moe(tmp_path / "tiny-moe.gguf")
    return path


# ----------------------------------------------------------------------------- a) real small files


def test_type_table_matches_gguf_py():
    """Every ggml type gguf-py knows is known with the same block size and type size."""
    for qtype in gguf.GGMLQuantizationType:
        name, block, size = gh.GGML_TYPES[qtype.value]
        assert (name, block, size) == (qtype.name, *gguf.GGML_QUANT_SIZES[qtype])
    assert gh.GGML_TYPES[39] == ("MXFP4", 32, 17)


def test_tiny_dense_header_matches_gguf_reader(tiny_dense):
    header = gh.read_header(tiny_dense)
    reader = gguf.GGUFReader(tiny_dense)
    assert header["version"] == 3
    assert header["data_offset"] == reader.data_offset
    assert header["data_offset"] % 32 == 0
    expected = make_gguf.tensors_llama(make_gguf.TINY_DENSE)
    assert [t["name"] for t in header["tensors"]] == list(expected)
    for mine, theirs in zip(header["tensors"], reader.tensors, strict=True):
        assert mine["shape"] == list(expected[mine["name"]])
        assert mine["type"] == theirs.tensor_type.name
        assert mine["nbytes"] == int(theirs.n_bytes)
        assert header["data_offset"] + mine["offset"] == theirs.data_offset
    types = {t["name"]: t["type"] for t in header["tensors"]}
    assert types["blk.0.ffn_up.weight"] == "Q8_0" and types["blk.0.attn_q.weight"] == "F16"
    assert types["blk.0.attn_norm.weight"] == "F32"


def test_tiny_dense_metadata(tiny_dense):
    md = gh.read_header(tiny_dense)["metadata"]
    p = make_gguf.TINY_DENSE
    assert md["general.architecture"] == "llama"
    assert md["llama.block_count"] == p["n_layer"]
    assert md["llama.embedding_length"] == p["n_embd"]
    assert md["llama.attention.head_count_kv"] == p["n_head_kv"]
    assert md["test.float"] == 0.25 and md["test.flag"] is True
    assert md["test.small_strings"] == ["a", "b", "c"]
    # 300 strings: parsed, stored as a summary; 300 ints kept; 8000 floats summarised
    assert md["tokenizer.ggml.tokens"] == {"type": "string", "length": 300}
    assert md["tokenizer.ggml.token_type"] == [1] * 300
    assert md["tokenizer.ggml.scores"] == {"type": "float32", "length": 8000}


def test_tiny_dense_profile(tiny_dense):
    p = make_gguf.TINY_DENSE
    tensors = make_gguf.tensors_llama(p)
    profile = gh.model_profile([gh.read_header(tiny_dense)])
    assert profile["architecture"] == "llama" and profile["dense"] is True
    assert profile["params"] == sum(ne_elements(s) for s in tensors.values())
    embd = ne_elements(tensors["token_embd.weight"])
    assert profile["active_params"] == profile["params"] - embd
    assert profile["active_bytes"] == profile["size_bytes"] - embd * 2  # token_embd is F16
    assert profile["size_bytes"] == os.path.getsize(tiny_dense) - gh.read_header(tiny_dense)["data_offset"]
    assert (profile["n_layer"], profile["n_embd"], profile["n_head"], profile["n_head_kv"]) == (2, 64, 4, 2)
    assert profile["expert_count"] == profile["expert_used_count"] == 0
    assert profile["context_length"] == 4096
    assert profile["kv_bytes_per_token"] == 2 * 2 * 2 * 16 * 2  # layers x K,V x kv heads x head dim x F16
    assert profile["kv_method"] == "gqa"
    assert sum(profile["quant_mix"].values()) == profile["size_bytes"]
    assert set(profile["quant_mix"]) == {"F32", "F16", "Q8_0"}


def test_tied_embeddings_count_token_embd_as_active(tiny_dense):
    """Without output.weight llama.cpp uses token_embd as the output projection: read every token."""
    header = gh.read_header(tiny_dense)
    header["tensors"] = [t for t in header["tensors"] if t["name"] != "output.weight"]
    profile = gh.model_profile([header])
    assert profile["active_bytes"] == profile["size_bytes"]


def test_tiny_moe_active_bytes_by_hand(tiny_moe):
    profile = gh.model_profile([gh.read_header(tiny_moe)])
    # 3 layers; n_embd 64, vocab 96, 4 heads x 16, 2 kv heads, 8 experts of ff 32, 2 used.
    f16 = 2
    embd = 64 * 96 * f16
    output = embd + 64 * 4  # output.weight F16 + output_norm F32
    attn = (64 * 64 + 64 * 32 + 64 * 32 + 64 * 64) * f16  # q, k, v, o
    norms = (64 + 64 + 16 + 16) * 4  # attn_norm, ffn_norm, q_norm, k_norm (F32)
    router = 64 * 8 * 4
    one_expert_tensor = 64 * 32 // Q8_0_BLOCK * Q8_0_BYTES  # one expert of gate, up or down
    experts_all = 3 * 8 * one_expert_tensor
    experts_used = 3 * 2 * one_expert_tensor
    layer_size = attn + norms + router + experts_all
    assert profile["size_bytes"] == embd + output + 3 * layer_size
    assert profile["active_bytes"] == output + 3 * (attn + norms + router + experts_used)
    assert profile["expert_count"] == 8 and profile["expert_used_count"] == 2 and not profile["dense"]
    expert_params = 3 * 3 * 8 * 64 * 32
    assert profile["active_params"] == profile["params"] - 64 * 96 - 3 * 3 * 6 * 64 * 32
    assert profile["params"] - expert_params == 2 * 64 * 96 + 64 + 3 * (
        64 * 64 * 2 + 64 * 32 * 2 + 160 + 64 * 8)


def test_split_shards_profile_like_single_file(tmp_path, profiles):
    shards = make_gguf.write_header_only(tmp_path / "ds.gguf", "deepseek-v3", "Q4_K_M", split_max_tensors=600)
    assert len(shards) > 1
    headers = [gh.read_header(s) for s in shards]
    assert [gh.expected_shards(h)[:2] for h in headers] == [(i, len(shards)) for i in range(len(shards))]
    profile = gh.model_profile(list(reversed(headers)))
    single = profiles["deepseek-v3"]
    for key in ("params", "size_bytes", "active_bytes", "kv_bytes_per_token", "quant_mix", "architecture"):
        assert profile[key] == single[key], key
    assert profile["shards"] == len(shards)
    with pytest.raises(gh.GGUFHeaderError, match="shards"):
        gh.model_profile(headers[:-1])


@pytest.mark.skipif(not list(SMOLLM_DIR.glob("*.gguf")) if SMOLLM_DIR.is_dir() else True,
                    reason="SmolLM2-135M GGUF not prepared on this machine")
def test_real_smollm2():
    """The test hub's real model: one file, and the same model split into 3 shards by llama-gguf-split."""
    single = gh.read_header(SMOLLM_DIR / "SmolLM2-135M-Instruct-Q6_K.gguf")
    shards = [gh.read_header(p) for p in sorted(SMOLLM_DIR.glob("SmolLM2-135M-Instruct-Q6_K-0000*-of-00003.gguf"))]
    profile = gh.model_profile([single])
    assert profile["architecture"] == "llama"
    assert profile["n_layer"] == 30 and profile["dense"] and profile["expert_count"] == 0
    assert 130e6 <= profile["params"] <= 140e6
    # Tied embeddings (no output.weight): token_embd is the output layer, read for every token.
    assert profile["active_bytes"] == profile["size_bytes"]
    file_size = os.path.getsize(SMOLLM_DIR / "SmolLM2-135M-Instruct-Q6_K.gguf")
    slack = file_size - single["data_offset"] - profile["size_bytes"]
    assert 0 <= slack < 32 * len(single["tensors"])  # only alignment padding
    sharded = gh.model_profile(shards)
    for key in ("params", "size_bytes", "active_bytes", "n_layer", "kv_bytes_per_token", "quant_mix"):
        assert sharded[key] == profile[key], key
    with pytest.raises(gh.GGUFHeaderError, match="3 shards"):
        gh.model_profile(shards[:2])


# ----------------------------------------------------------------------------- errors


def _patched(tmp_path, source, offset, data):
    target = tmp_path / "patched.gguf"
    raw = bytearray(Path(source).read_bytes())
    raw[offset:offset + len(data)] = data
    target.write_bytes(bytes(raw))
    return target


def test_bad_magic(tmp_path, tiny_dense):
    path = _patched(tmp_path, tiny_dense, 0, b"GGML")
    with pytest.raises(gh.GGUFHeaderError, match=r"patched\.gguf.*offset 0.*magic"):
        gh.read_header(path)


@pytest.mark.parametrize("version", [1, 4])
def test_unsupported_version(tmp_path, tiny_dense, version):
    path = _patched(tmp_path, tiny_dense, 4, version.to_bytes(4, "little"))
    with pytest.raises(gh.GGUFHeaderError, match=f"offset 4.*version {version}"):
        gh.read_header(path)


def test_version_2_is_read(tmp_path, tiny_dense):
    path = _patched(tmp_path, tiny_dense, 4, (2).to_bytes(4, "little"))  # v2 and v3 share the layout
    assert gh.read_header(path)["version"] == 2


def test_truncated_header_names_offset(tmp_path, tiny_dense):
    cut = gh.read_header(tiny_dense)["data_offset"] - 100
    path = tmp_path / "cut.gguf"
    path.write_bytes(Path(tiny_dense).read_bytes()[:cut])
    with pytest.raises(gh.GGUFHeaderError, match=rf"cut\.gguf.*offset \d+.*ends at byte {cut}"):
        gh.read_header(path)


def test_unknown_type_id(tmp_path):
    import numpy as np

    path = tmp_path / "unknown.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_tensor_info("weird.weight", (4, 64), np.float32, 256, raw_dtype=99)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    with pytest.raises(gh.GGUFHeaderError, match=r"unknown\.gguf.*offset \d+.*'weird\.weight'.*type id 99"):
        gh.read_header(path)


def test_missing_file():
    with pytest.raises(gh.GGUFFetchError, match=r"/nonexistent/x\.gguf"):
        gh.read_header("/nonexistent/x.gguf")


def test_kv_cache_bytes_combines_full_and_window():
    profile = {"kv_bytes_per_token": 1000, "kv_swa_bytes_per_token": 10, "kv_swa_window": 128}
    assert gh.kv_cache_bytes(profile, 100) == 1000 * 100 + 10 * 100
    assert gh.kv_cache_bytes(profile, 4096) == 1000 * 4096 + 10 * 128
    assert gh.kv_cache_bytes(profile, 4096, swa_extra=512) == 1000 * 4096 + 10 * 640


# ----------------------------------------------------------------------------- b) published layouts


def test_deepseek_v3(profiles, big):
    p = profiles["deepseek-v3"]
    assert p["architecture"] == "deepseek2" and p["n_layer"] == 61
    assert abs(p["params"] - 671e9) / 671e9 < 0.01
    assert abs(p["active_params"] - 37e9) / 37e9 < 0.05
    assert (p["expert_count"], p["expert_used_count"], p["dense"]) == (256, 8, False)
    assert p["kv_method"] == "mla"
    assert p["kv_bytes_per_token"] == 61 * (512 + 64) * 2
    assert p["kv_swa_bytes_per_token"] == 0
    assert {"Q4_K", "Q6_K", "F32"} <= set(p["quant_mix"])
    header = gh.read_header(big["deepseek-v3"])
    slack = os.path.getsize(big["deepseek-v3"]) - header["data_offset"] - p["size_bytes"]
    assert 0 <= slack < 32 * len(header["tensors"])


def test_deepseek_v3_active_bytes_by_rule(profiles, big):
    """Routed experts at 8/256, shared expert and dense layers in full, token_embd out."""
    header = gh.read_header(big["deepseek-v3"])
    expected = 0
    for t in header["tensors"]:
        if t["name"] == "token_embd.weight":
            continue
        expected += t["nbytes"] * 8 // 256 if "_exps" in t["name"] else t["nbytes"]
    assert profiles["deepseek-v3"]["active_bytes"] == expected
    shexp = [t for t in header["tensors"] if "_shexp" in t["name"]]
    assert len(shexp) == 58 * 3


def test_qwen3_235b(profiles):
    p = profiles["qwen3-235b-a22b"]
    assert abs(p["params"] - 235e9) / 235e9 < 0.01
    assert abs(p["active_params"] - 22e9) / 22e9 < 0.05
    assert (p["expert_count"], p["expert_used_count"]) == (128, 8)
    assert p["kv_bytes_per_token"] == 94 * 2 * 4 * 128 * 2
    assert p["kv_method"] == "gqa"


def test_gpt_oss_120b(profiles):
    p = profiles["gpt-oss-120b"]
    assert abs(p["params"] - 117e9) / 117e9 < 0.01
    assert abs(p["active_params"] - 5.1e9) / 5.1e9 < 0.05
    assert (p["expert_count"], p["expert_used_count"]) == (4 * 32, 4)
    assert p["quant_mix"]["MXFP4"] > 0.9 * p["size_bytes"]
    per_layer = 2 * 8 * 64 * 2
    assert p["kv_bytes_per_token"] == 18 * per_layer  # odd layers: full attention
    assert p["kv_swa_bytes_per_token"] == 18 * per_layer  # even layers: window of 128
    assert p["kv_swa_window"] == 128 and p["kv_method"] == "gqa+swa"
    assert gh.kv_cache_bytes(p, 131072) == 18 * per_layer * 131072 + 18 * per_layer * 128


def test_llama_405b_dense(profiles, big):
    p = profiles["llama-3.1-405b"]
    header = gh.read_header(big["llama-3.1-405b"])
    embd = next(t for t in header["tensors"] if t["name"] == "token_embd.weight")
    assert p["dense"] is True and p["expert_count"] == 0
    assert abs(p["params"] - 405e9) / 405e9 < 0.01
    assert p["active_bytes"] == p["size_bytes"] - embd["nbytes"]
    assert embd["nbytes"] == type_bytes([16384, 128256], gguf.GGMLQuantizationType.Q6_K)
    assert p["kv_bytes_per_token"] == 126 * 2 * 8 * 128 * 2
    assert max(p["quant_mix"], key=p["quant_mix"].get) == "Q6_K"


# ----------------------------------------------------------------------------- per-layer bytes (offload planner)


def _block_of(name):
    return int(name.split(".")[1]) if name.startswith("blk.") else None


@pytest.mark.parametrize("layout", sorted(make_gguf.LAYOUTS))
def test_layer_bytes_partition_every_tensor(layout, headers, profiles):
    """Each tensor's bytes land in exactly one place: input, output, a block's experts or its rest."""
    header, profile, config = headers[layout], profiles[layout], make_gguf.LAYOUTS[layout]
    layers = gh.layer_bytes([header])
    experts, other, largest = [0] * config["n_layer"], [0] * config["n_layer"], [0] * config["n_layer"]
    for t in header["tensors"]:
        il = _block_of(t["name"])
        if il is None:
            continue
        if "_exps" in t["name"]:
            experts[il] += t["nbytes"]
            largest[il] = max(largest[il], t["nbytes"])
        else:
            other[il] += t["nbytes"]
    embd = next(t["nbytes"] for t in header["tensors"] if t["name"] == "token_embd.weight")
    non_block = sum(t["nbytes"] for t in header["tensors"] if _block_of(t["name"]) is None)
    assert [b["expert_bytes"] for b in layers["blocks"]] == experts
    assert [b["other_bytes"] for b in layers["blocks"]] == other
    assert [b["largest_expert"] for b in layers["blocks"]] == largest
    assert layers["input_bytes"] == embd and layers["output_bytes"] == non_block - embd
    assert layers["input_bytes"] + layers["output_bytes"] + sum(experts) + sum(other) == profile["size_bytes"]
    assert (layers["n_layer"], layers["n_embd"], layers["n_vocab"]) == (
        config["n_layer"], config["n_embd"], config["n_vocab"])
    assert layers["output_width"] == config["n_vocab"]
    # Read per token (experts at used/total) agrees with model_profile, to the per-tensor rounding.
    share = (config.get("n_expert_used", 1), config.get("n_expert", 1))
    active = layers["output_bytes"] + sum(other) + sum(experts) * share[0] / share[1]
    assert abs(active - profile["active_bytes"]) <= len(header["tensors"])
    kv_full = sum(b["kv_bytes_per_token"] for b in layers["blocks"] if not b["swa"])
    kv_swa = sum(b["kv_bytes_per_token"] for b in layers["blocks"] if b["swa"])
    assert (kv_full, kv_swa) == (profile["kv_bytes_per_token"], profile["kv_swa_bytes_per_token"])
    assert all(b["loaded"] for b in layers["blocks"])


def test_layer_bytes_widest_activation(headers):
    """The widest matmul output per token: DeepSeek's MLA query over the latent, Qwen3's experts' outputs."""
    deepseek = gh.layer_bytes([headers["deepseek-v3"]])
    assert max(b["width"] for b in deepseek["blocks"]) == 128 * 512  # n_head x kv_lora_rank (attn_k_b)
    qwen = gh.layer_bytes([headers["qwen3-235b-a22b"]])
    assert max(b["width"] for b in qwen["blocks"]) == 4096 * 8  # ffn_down_exps: n_embd per used expert


def test_layer_bytes_tied_output_is_token_embd_again(tiny_dense):
    """Without output.weight llama.cpp loads token_embd a second time as the output layer."""
    header = gh.read_header(tiny_dense)
    header["tensors"] = [t for t in header["tensors"] if t["name"] != "output.weight"]
    layers = gh.layer_bytes([header])
    p = make_gguf.TINY_DENSE
    embd = p["n_embd"] * p["n_vocab"] * 2  # F16
    assert layers["input_bytes"] == embd
    # + output_norm and rope_freqs (F32; rope_freqs is per layer in llama.cpp, but 32 bytes)
    assert layers["output_bytes"] == embd + p["n_embd"] * 4 + p["head_dim"] // 2 * 4
    assert layers["output_largest"] == embd


def test_layer_bytes_nextn_block_is_not_loaded(headers):
    """MTP blocks count in block_count (so in -ngl) but llama.cpp does not load them for decoding."""
    header = dict(headers["deepseek-v3"], metadata=dict(headers["deepseek-v3"]["metadata"]))
    header["metadata"]["deepseek2.nextn_predict_layers"] = 1
    layers = gh.layer_bytes([header])
    assert layers["nextn_layers"] == 1 and layers["n_layer"] == 61
    assert [b["index"] for b in layers["blocks"] if not b["loaded"]] == [60]
    assert layers["blocks"][60]["kv_bytes_per_token"] == 0


def test_layer_bytes_tiny_moe_by_hand(tiny_moe):
    layers = gh.layer_bytes([gh.read_header(tiny_moe)])
    one_expert_tensor = 64 * 32 // Q8_0_BLOCK * Q8_0_BYTES
    attn = (64 * 64 + 64 * 32 + 64 * 32 + 64 * 64) * 2
    norms_and_router = (64 + 64 + 16 + 16) * 4 + 64 * 8 * 4
    for block in layers["blocks"]:
        assert block["expert_bytes"] == 3 * 8 * one_expert_tensor
        assert block["largest_expert"] == 8 * one_expert_tensor
        assert block["other_bytes"] == attn + norms_and_router
    assert (layers["expert_count"], layers["expert_used_count"], layers["n_vocab"]) == (8, 2, 96)


def test_sliding_window_pattern_key_and_llama4_rule(tiny_dense):
    header = gh.read_header(tiny_dense)
    md = header["metadata"]
    md["general.architecture"] = "gemma3"
    for key in list(md):
        if key.startswith("llama."):
            md["gemma3." + key[len("llama."):]] = md.pop(key)
    md["gemma3.attention.sliding_window"] = 512
    p = gh.model_profile([header])  # gemma3 default period 6: both layers (0, 1) sliding
    assert (p["kv_bytes_per_token"], p["kv_swa_bytes_per_token"], p["kv_method"]) == (0, 256, "gqa+swa")
    md["gemma3.attention.sliding_window_pattern"] = [True, False]  # explicit per-layer flags
    p = gh.model_profile([header])
    assert (p["kv_bytes_per_token"], p["kv_swa_bytes_per_token"], p["kv_swa_window"]) == (128, 128, 512)


# ----------------------------------------------------------------------------- c) over HTTP


def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture
def hub(tmp_path):
    """The project's test hub (tests/support/hf_server.py) on an ephemeral port: (base URL, www, log)."""
    www, log = tmp_path / "www", tmp_path / "requests.jsonl"
    www.mkdir()
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HUB), "--root", str(www), "--port", str(port),
                             "--request-log", str(log)])
    deadline = time.time() + 10
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", www, log
    proc.terminate()
    proc.wait(timeout=10)


def requests_in(log, at_least=1):
    """The hub's request log; it logs after sending, so wait until the client's requests are in."""
    deadline = time.time() + 5
    while True:
        entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        if len(entries) >= at_least or time.time() > deadline:
            return entries
        time.sleep(0.05)


def test_http_equals_local_via_resolve(hub, tiny_dense):
    base, www, log = hub
    folder = www / "org" / "tiny" / "resolve" / "main"
    folder.mkdir(parents=True)
    (folder / "tiny.gguf").write_bytes(Path(tiny_dense).read_bytes())
    remote = gh.read_header(f"{base}/org/tiny/resolve/main/tiny.gguf", headers={"Authorization": f"Bearer {TOKEN}"})
    assert remote == gh.read_header(tiny_dense)
    [request] = requests_in(log)
    assert request["range"].startswith("bytes=0-") and request["status"] == 206 and request["authorized"]


def test_http_header_only_transfers_a_few_mb(hub, big):
    """A 400 GB shard: the header (2 MB of vocabulary) comes in doubling Range requests."""
    base, www, log = hub
    # Outside /resolve/ the hub serves the file without hashing it (400 GB of sparse zeros).
    (www / "files").mkdir()
    os.link(big["deepseek-v3"], www / "files" / "deepseek-v3.gguf")
    remote = gh.read_header(f"{base}/files/deepseek-v3.gguf")
    local = gh.read_header(big["deepseek-v3"])
    assert remote == local
    log_entries = requests_in(log, at_least=2)  # the vocabulary does not fit the first 1 MiB
    sent = sum(entry["bytes"] for entry in log_entries)
    assert len(log_entries) >= 2
    assert all(entry["status"] == 206 for entry in log_entries)
    assert local["data_offset"] <= sent <= 8 << 20
    assert os.path.getsize(big["deepseek-v3"]) > 300e9


def test_http_404_names_url_not_token(hub):
    base, _, _ = hub
    url = f"{base}/org/none/resolve/main/missing.gguf"
    with pytest.raises(gh.GGUFFetchError) as caught:
        gh.read_header(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert url in str(caught.value) and "404" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.status == 404


def test_http_truncated_names_url_and_offset(hub, tiny_dense):
    base, www, _ = hub
    (www / "files").mkdir()
    cut = 5000
    (www / "files" / "cut.gguf").write_bytes(Path(tiny_dense).read_bytes()[:cut])
    url = f"{base}/files/cut.gguf"
    with pytest.raises(gh.GGUFHeaderError, match=rf"{re.escape(url)}: at byte offset \d+: file ends at byte {cut}"):
        gh.read_header(url)


def test_network_error_names_url():
    url = f"http://127.0.0.1:{free_port()}/m.gguf"  # nothing listens there
    with pytest.raises(gh.GGUFFetchError, match=re.escape(url)):
        gh.read_header(url)


class _Recorder(BaseHTTPRequestHandler):
    """A configurable test server: redirect, ignore Range, fail with a status; records requests."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        srv = self.server
        srv.seen.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                         "range": self.headers.get("Range")})
        if self.path in srv.redirects:
            self.send_response(302)
            self.send_header("Location", srv.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in srv.statuses:
            self.send_response(srv.statuses[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send_ignoring_range(srv.header_bytes, srv.total_size)

    def _send_ignoring_range(self, head, total):
        """200 with the whole (virtual) file, header then zeros, whatever Range said."""
        self.send_response(200)
        self.send_header("Content-Length", str(total))
        self.end_headers()
        zeros = bytes(1 << 16)
        try:
            self.wfile.write(head)
            self.server.sent += len(head)
            while self.server.sent < total:
                block = zeros[: total - self.server.sent]
                self.wfile.write(block)
                self.server.sent += len(block)
        except OSError:  # the client closed the connection once it had the header
            self.close_connection = True


@pytest.fixture
def recorder():
    servers = []

    def start(host, header_bytes=b"", total_size=0, redirects=None, statuses=None):
        server = ThreadingHTTPServer((host, 0), _Recorder)
        server.daemon_threads = True
        server.seen, server.sent = [], 0
        server.header_bytes, server.total_size = header_bytes, total_size
        server.redirects, server.statuses = redirects or {}, statuses or {}
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://{host}:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_redirect_to_other_host_drops_authorization(recorder, tiny_dense):
    data = Path(tiny_dense).read_bytes()
    cdn, cdn_url = recorder("127.0.0.2", header_bytes=data, total_size=len(data))
    hub_server, hub_url = recorder("127.0.0.1", header_bytes=data, total_size=len(data),
                                   redirects={"/resolve/m.gguf": f"{cdn_url}/blob",
                                              "/same/m.gguf": "/local-blob"})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert gh.read_header(f"{hub_url}/resolve/m.gguf", headers=auth) == gh.read_header(tiny_dense)
    assert hub_server.seen[0]["authorization"] == f"Bearer {TOKEN}"
    assert cdn.seen and all(r["authorization"] is None for r in cdn.seen)
    assert cdn.seen[0]["range"].startswith("bytes=0-")  # Range survives the redirect
    gh.read_header(f"{hub_url}/same/m.gguf", headers=auth)  # same host: token kept
    assert hub_server.seen[-1] == {"path": "/local-blob", "authorization": f"Bearer {TOKEN}",
                                   "range": hub_server.seen[-1]["range"]}


def test_server_ignoring_range_reads_only_the_header(recorder, big):
    path = big["gpt-oss-120b"]
    local = gh.read_header(path)
    with open(path, "rb") as handle:
        head = handle.read(local["data_offset"])
    server, url = recorder("127.0.0.1", header_bytes=head, total_size=2 << 30)  # a 2 GiB body
    assert gh.read_header(f"{url}/m.gguf") == local
    time.sleep(0.2)  # let the server notice the closed connection
    assert len(server.seen) == 1
    assert server.sent < 64 << 20  # the header (~3 MB) plus socket buffers, not 2 GiB


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_name_url_and_hint(recorder, status):
    _, url = recorder("127.0.0.1", statuses={"/gated.gguf": status})
    with pytest.raises(gh.GGUFFetchError, match=rf"{re.escape(url)}/gated\.gguf: HTTP {status}") as caught:
        gh.read_header(f"{url}/gated.gguf", headers={"Authorization": f"Bearer {TOKEN}"})
    assert TOKEN not in str(caught.value) and "token" in str(caught.value)
