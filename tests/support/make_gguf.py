#!/usr/bin/env python3
"""Write GGUF test models with llama.cpp's own writer (the ``gguf`` package, a test dependency).

  header-only  the real tensor table of a large published model (shapes from its config.json,
               tensor names as llama.cpp's converter writes them) with no tensor data: the file is
               truncated (sparse) to its full size, so a 400 GB DeepSeek-V3 costs a few MB of disk.
  tiny-moe     a small qwen3moe model (8 experts, 2 used) with real random weights.
  tiny-dense   a small llama model with F32/F16/Q8_0 weights and a tokenizer vocabulary.

Usage: make_gguf.py header-only --layout deepseek-v3 --quant Q4_K_M [--split-max-tensors N] OUT
       make_gguf.py tiny-moe OUT | make_gguf.py tiny-dense OUT
"""

import argparse
import os
import sys
from pathlib import Path

import gguf
import numpy as np
from gguf.constants import GGML_QUANT_SIZES
from gguf.constants import GGMLQuantizationType as QType

# Published configs (config.json of each Hugging Face repository).
LAYOUTS = {
    "deepseek-v3": {  # deepseek-ai/DeepSeek-V3: 671B total, 37B active
        "arch": "deepseek2", "n_layer": 61, "n_embd": 7168, "n_vocab": 129280, "n_head": 128,
        "n_ff": 18432, "n_ff_exp": 2048, "n_expert": 256, "n_expert_used": 8, "n_expert_shared": 1,
        "n_dense_lead": 3, "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope": 128, "qk_rope": 64,
        "v_head": 128, "context": 163840,
    },
    "qwen3-235b-a22b": {  # Qwen/Qwen3-235B-A22B
        "arch": "qwen3moe", "n_layer": 94, "n_embd": 4096, "n_vocab": 151936, "n_head": 64, "n_head_kv": 4,
        "head_dim": 128, "n_ff_exp": 1536, "n_expert": 128, "n_expert_used": 8, "context": 40960,
    },
    "gpt-oss-120b": {  # openai/gpt-oss-120b
        "arch": "gpt-oss", "n_layer": 36, "n_embd": 2880, "n_vocab": 201088, "n_head": 64, "n_head_kv": 8,
        "head_dim": 64, "n_ff_exp": 2880, "n_expert": 128, "n_expert_used": 4, "sliding_window": 128,
        "context": 131072,
    },
    "llama-3.1-405b": {  # meta-llama/Llama-3.1-405B-Instruct
        "arch": "llama", "n_layer": 126, "n_embd": 16384, "n_vocab": 128256, "n_head": 128, "n_head_kv": 8,
        "head_dim": 128, "n_ff": 53248, "context": 131072,
    },
}

F32 = QType.F32


def _nbytes(shape, qtype):
    block, size = GGML_QUANT_SIZES[qtype]
    elements = int(np.prod(shape))
    return elements // block * size


def _more_bits(il, n_layer):
    """llama.cpp's use_more_bits(): the layers Q4_K_M gives Q6_K for attn_v / ffn_down."""
    return il < n_layer // 8 or il >= 7 * n_layer // 8 or (il - n_layer // 8) % 3 == 2


def pick_type(name, shape, quant, n_layer):
    """A type mix like llama.cpp's quantize for the main quant names (close, not byte-exact)."""
    if len(shape) == 1 or "norm" in name or name.endswith(".bias") or "ffn_gate_inp" in name or "sinks" in name:
        return F32
    if quant == "MXFP4":  # gpt-oss as published: experts MXFP4, the rest Q8_0
        return QType.MXFP4 if "_exps" in name else QType.Q8_0
    base = {"Q4_K_M": QType.Q4_K, "Q6_K": QType.Q6_K, "Q8_0": QType.Q8_0}[quant]
    chosen = base
    if quant == "Q4_K_M":
        il = int(name.split(".")[1]) if name.startswith("blk.") else -1
        if name == "output.weight" or (il >= 0 and _more_bits(il, n_layer) and (
                "attn_v" in name or "ffn_down" in name or "attn_kv_b" in name)):
            chosen = QType.Q6_K
    block = GGML_QUANT_SIZES[chosen][0]
    if shape[0] % block:  # llama.cpp falls back for rows that don't fill a super-block
        chosen = QType.Q8_0 if chosen == QType.Q6_K else QType.Q5_0
    return chosen


def _attn_gqa(p, il):
    e, hd = p["n_embd"], p["head_dim"]
    q, kv = p["n_head"] * hd, p["n_head_kv"] * hd
    return {f"blk.{il}.attn_q.weight": (e, q), f"blk.{il}.attn_k.weight": (e, kv),
            f"blk.{il}.attn_v.weight": (e, kv), f"blk.{il}.attn_output.weight": (q, e)}


def _experts(p, il, shared=False):
    e, f, n = p["n_embd"], p["n_ff_exp"], p["n_expert"]
    t = {f"blk.{il}.ffn_gate_inp.weight": (e, n),
         f"blk.{il}.ffn_gate_exps.weight": (e, f, n), f"blk.{il}.ffn_up_exps.weight": (e, f, n),
         f"blk.{il}.ffn_down_exps.weight": (f, e, n)}
    if shared:
        fs = f * p["n_expert_shared"]
        t.update({f"blk.{il}.ffn_gate_shexp.weight": (e, fs), f"blk.{il}.ffn_up_shexp.weight": (e, fs),
                  f"blk.{il}.ffn_down_shexp.weight": (fs, e)})
    return t


def _dense_ffn(p, il):
    e, f = p["n_embd"], p["n_ff"]
    return {f"blk.{il}.ffn_gate.weight": (e, f), f"blk.{il}.ffn_up.weight": (e, f),
            f"blk.{il}.ffn_down.weight": (f, e)}


def _common(p):
    e, v = p["n_embd"], p["n_vocab"]
    return {"token_embd.weight": (e, v), "output_norm.weight": (e,), "output.weight": (e, v)}


def tensors_deepseek2(p):
    """deepseek2 as llama.cpp's converter writes it since MLA (attn_k_b / attn_v_b split)."""
    t = _common(p)
    e, h = p["n_embd"], p["n_head"]
    for il in range(p["n_layer"]):
        b = f"blk.{il}."
        t.update({b + "attn_norm.weight": (e,), b + "ffn_norm.weight": (e,),
                  b + "attn_q_a.weight": (e, p["q_lora_rank"]), b + "attn_q_a_norm.weight": (p["q_lora_rank"],),
                  b + "attn_q_b.weight": (p["q_lora_rank"], h * (p["qk_nope"] + p["qk_rope"])),
                  b + "attn_kv_a_mqa.weight": (e, p["kv_lora_rank"] + p["qk_rope"]),
                  b + "attn_kv_a_norm.weight": (p["kv_lora_rank"],),
                  b + "attn_k_b.weight": (p["qk_nope"], p["kv_lora_rank"], h),
                  b + "attn_v_b.weight": (p["kv_lora_rank"], p["v_head"], h),
                  b + "attn_output.weight": (h * p["v_head"], e)})
        if il < p["n_dense_lead"]:
            t.update(_dense_ffn(p, il))
        else:
            t.update(_experts(p, il, shared=True))
            t[b + "exp_probs_b.bias"] = (p["n_expert"],)
    return t


def tensors_qwen3moe(p):
    t = _common(p)
    for il in range(p["n_layer"]):
        b = f"blk.{il}."
        t.update({b + "attn_norm.weight": (p["n_embd"],), b + "ffn_norm.weight": (p["n_embd"],),
                  b + "attn_q_norm.weight": (p["head_dim"],), b + "attn_k_norm.weight": (p["head_dim"],)})
        t.update(_attn_gqa(p, il))
        t.update(_experts(p, il))
    return t


def tensors_gpt_oss(p):
    t = _common(p)
    e, n = p["n_embd"], p["n_expert"]
    for il in range(p["n_layer"]):
        b = f"blk.{il}."
        attn = _attn_gqa(p, il)
        t.update(attn)
        for name, shape in attn.items():
            t[name.replace(".weight", ".bias")] = (shape[1],)
        t.update({b + "attn_norm.weight": (e,), b + "post_attention_norm.weight": (e,),
                  b + "attn_sinks.weight": (p["n_head"],), b + "ffn_gate_inp.bias": (n,)})
        experts = _experts(p, il)
        t.update(experts)
        for kind in ("gate", "up", "down"):
            shape = experts[f"{b}ffn_{kind}_exps.weight"]
            t[f"{b}ffn_{kind}_exps.bias"] = (shape[1], n)
    return t


def tensors_llama(p):
    t = _common(p)
    t["rope_freqs.weight"] = (p["head_dim"] // 2,)
    for il in range(p["n_layer"]):
        b = f"blk.{il}."
        t.update({b + "attn_norm.weight": (p["n_embd"],), b + "ffn_norm.weight": (p["n_embd"],)})
        t.update(_attn_gqa(p, il))
        t.update(_dense_ffn(p, il))
    return t


def add_hparams(w, p):
    a = p["arch"]
    w.add_name(a + " header-only test model")
    w.add_block_count(p["n_layer"])
    w.add_context_length(p["context"])
    w.add_embedding_length(p["n_embd"])
    w.add_head_count(p["n_head"])
    w.add_vocab_size(p["n_vocab"])
    if "n_ff" in p:
        w.add_feed_forward_length(p["n_ff"])
    if "n_expert" in p:
        w.add_expert_count(p["n_expert"])
        w.add_expert_used_count(p["n_expert_used"])
        w.add_expert_feed_forward_length(p["n_ff_exp"])
    if a == "deepseek2":  # converter since MLA: MQA over the latent, decompressed head sizes in *_mla
        w.add_head_count_kv(1)
        w.add_key_length(p["kv_lora_rank"] + p["qk_rope"])
        w.add_value_length(p["kv_lora_rank"])
        w.add_key_length_mla(p["qk_nope"] + p["qk_rope"])
        w.add_value_length_mla(p["v_head"])
        w.add_q_lora_rank(p["q_lora_rank"])
        w.add_kv_lora_rank(p["kv_lora_rank"])
        w.add_rope_dimension_count(p["qk_rope"])
        w.add_leading_dense_block_count(p["n_dense_lead"])
        w.add_expert_shared_count(p["n_expert_shared"])
    else:
        w.add_head_count_kv(p["n_head_kv"])
        w.add_key_length(p["head_dim"])
        w.add_value_length(p["head_dim"])
    if "sliding_window" in p:
        w.add_sliding_window(p["sliding_window"])


def layout_tensors(layout):
    p = LAYOUTS[layout]
    build = {"deepseek2": tensors_deepseek2, "qwen3moe": tensors_qwen3moe, "gpt-oss": tensors_gpt_oss,
             "llama": tensors_llama}[p["arch"]]
    return p, build(p)


def write_header_only(out, layout, quant, split_max_tensors=0, vocab=True):
    """Write the header of LAYOUT at QUANT and truncate each file to its full size (sparse).

    Returns the list of files written (one, or the shards of a gguf-split style split)."""
    p, tensors = layout_tensors(layout)
    w = gguf.GGUFWriter(out, p["arch"], split_max_tensors=split_max_tensors)
    add_hparams(w, p)
    w.add_file_type(0)
    if vocab:  # a real-sized vocabulary makes the header MBs long, as in published GGUFs
        w.add_tokenizer_model("gpt2")
        w.add_token_list([f"<token-{i:06d}>" for i in range(p["n_vocab"])])
        w.add_token_types([1] * p["n_vocab"])
    for name, shape in tensors.items():  # shape is ne[] (ne0 first); the writer wants numpy order
        qtype = pick_type(name, shape, quant, p["n_layer"])
        w.add_tensor_info(name, tuple(reversed(shape)), np.float32, _nbytes(shape, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    paths = w.format_shard_names(Path(out))
    sizes = []
    for fout, shard in zip(w.fout, w.tensors, strict=True):
        data_start = w.ggml_pad(fout.tell(), w.data_alignment)
        sizes.append(data_start + sum(w.ggml_pad(ti.nbytes, w.data_alignment) for ti in shard.values()))
    w.close()
    for path, size in zip(paths, sizes, strict=True):
        os.truncate(path, size)
    return paths


def _random(shape, rng):
    return rng.standard_normal(tuple(reversed(shape))).astype(np.float32)


def _add(w, name, shape, qtype, rng):
    data = _random(shape, rng)
    if qtype == QType.F32:
        w.add_tensor(name, data)
    elif qtype == QType.F16:
        w.add_tensor(name, data.astype(np.float16))
    else:
        w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


def _write(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


TINY_MOE = {"arch": "qwen3moe", "n_layer": 3, "n_embd": 64, "n_vocab": 96, "n_head": 4, "n_head_kv": 2,
            "head_dim": 16, "n_ff_exp": 32, "n_expert": 8, "n_expert_used": 2, "context": 2048}


def tiny_moe_types(name, shape):
    """F32 norms/router, Q8_0 experts, F16 attention and embeddings."""
    if len(shape) == 1 or "ffn_gate_inp" in name:
        return QType.F32
    return QType.Q8_0 if "_exps" in name else QType.F16


def copy_tokenizer(w, source):
    """Copy every tokenizer.* key (vocabulary, merges, special tokens, chat template) from a real GGUF.

    Returns the vocabulary size. With a real tokenizer llama.cpp loads the model and its server
    applies the chat template; the weights stay random.
    """
    reader = gguf.GGUFReader(source)
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            w.add_array(name, field.contents())
        else:
            w.add_key_value(name, field.contents(), kind)
    return len(reader.fields["tokenizer.ggml.tokens"].contents())


def write_tiny_moe(out, seed=0, tokenizer_from=None):
    """A 3-layer qwen3moe with 8 experts, 2 used. With tokenizer_from (a real GGUF) llama.cpp can serve it."""
    p, rng = dict(TINY_MOE), np.random.default_rng(seed)
    w = gguf.GGUFWriter(out, p["arch"])
    if tokenizer_from:
        p["n_vocab"] = copy_tokenizer(w, tokenizer_from)
    add_hparams(w, p)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1e6)
    for name, shape in tensors_qwen3moe(p).items():
        _add(w, name, shape, tiny_moe_types(name, shape), rng)
    _write(w)
    return [Path(out)]


TINY_DENSE = {"arch": "llama", "n_layer": 2, "n_embd": 64, "n_vocab": 300, "n_head": 4, "n_head_kv": 2,
              "head_dim": 16, "n_ff": 128, "context": 4096}


def write_tiny_dense(out, seed=0):
    p, rng = TINY_DENSE, np.random.default_rng(seed)
    w = gguf.GGUFWriter(out, p["arch"])
    add_hparams(w, p)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(p["n_vocab"])])
    w.add_token_types([1] * p["n_vocab"])
    w.add_token_scores([0.5] * 8000)  # longer than the numeric keep limit: must come back summarised
    w.add_array("test.small_strings", ["a", "b", "c"])
    w.add_float32("test.float", 0.25)
    w.add_bool("test.flag", True)
    for name, shape in tensors_llama(p).items():
        qtype = QType.F32 if len(shape) == 1 else (QType.Q8_0 if "ffn" in name else QType.F16)
        _add(w, name, shape, qtype, rng)
    _write(w)
    return [Path(out)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    header = sub.add_parser("header-only", help="tensor table of a published model, no data (sparse)")
    header.add_argument("--layout", choices=sorted(LAYOUTS), required=True)
    header.add_argument("--quant", choices=["Q4_K_M", "Q6_K", "Q8_0", "MXFP4"], default="Q4_K_M")
    header.add_argument("--split-max-tensors", type=int, default=0, help="split into gguf-split shards")
    header.add_argument("out")
    moe = sub.add_parser("tiny-moe")
    moe.add_argument("--tokenizer-from", help="a real GGUF whose tokenizer (and chat template) to copy")
    moe.add_argument("out")
    sub.add_parser("tiny-dense").add_argument("out")
    args = parser.parse_args(argv)
    if args.command == "header-only":
        paths = write_header_only(args.out, args.layout, args.quant, args.split_max_tensors)
    elif args.command == "tiny-moe":
        paths = write_tiny_moe(args.out, tokenizer_from=args.tokenizer_from)
    else:
        paths = write_tiny_dense(args.out)
    for path in paths:
        print(path)


if __name__ == "__main__":
    sys.exit(main())
