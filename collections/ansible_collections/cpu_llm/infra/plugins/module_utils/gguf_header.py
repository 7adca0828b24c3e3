"""Read a GGUF file's header (metadata and tensor table) locally or over HTTP, and profile the model.

Plain Python (standard library only), no Ansible imports and no imports of other project code,
so it can move into a collection as it is.

GGUF layout (llama.cpp ggml/src/gguf.cpp, docs/gguf.md; little-endian, versions 2 and 3):

  magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
  n_kv x      (string key, u32 value type, value)       string = u64 length + UTF-8 bytes
  n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)
  padding to general.alignment (default 32), then the tensor data; offsets are relative to it

Only the header is read: from a file by growing reads, from an http(s) URL by growing HTTP Range
requests (1 MiB, then doubling), so a 50 GB shard costs a few MB. Sizes of the tensors come from
the ggml type table below (block size, bytes per block), copied from llama.cpp's type_traits in
ggml/src/ggml.c as exposed by gguf-py 0.19.0 (``gguf.constants.GGML_QUANT_SIZES``).

``model_profile`` turns the headers of all shards into what sizing needs: weight bytes, bytes read
per generated token (MoE routed experts at used/total), and KV-cache bytes per token. The KV rules
follow llama.cpp's src/llama-model.cpp (hparams per architecture), src/llama-hparams.cpp
(``set_swa_pattern``, ``is_mla``) and src/llama-kv-cache.cpp / llama-kv-cache-iswa.cpp:

  gqa   per layer: n_head_kv(il) x (key_length + value_length) x 2 bytes (F16 cache). Head sizes
        from ``{arch}.attention.key_length`` / ``value_length``, else n_embd / n_head.
  mla   when ``{arch}.attention.key_length_mla`` is present (deepseek2: DeepSeek-V2/V3/R1, Kimi-K2,
        converted by a llama.cpp from 2025-04 on): the cache holds the compressed latent only,
        per layer (kv_lora_rank + rope dimension) x 2 bytes. llama-kv-cache.cpp allocates no V
        tensor for MLA (``has_v = !is_mla``): V is read from the same latent. Older deepseek2
        files without that key run as plain attention and fall under gqa (much larger).
  swa   sliding-window layers (gemma2/3, cohere2, gpt-oss, exaone4: ``{arch}.attention.
        sliding_window``; llama4: chunked attention of 8192 in 3 of 4 layers) keep only the last
        window tokens. They are reported apart: ``kv_swa_bytes_per_token`` and ``kv_swa_window``,
        see ``kv_cache_bytes``.
"""

import math
import re
import struct
import urllib.error
import urllib.parse
import urllib.request

# ggml type id -> (name, elements per block, bytes per block). Source: llama.cpp ggml/src/ggml.c
# type_traits (blck_size, type_size), as in gguf-py 0.19.0 GGML_QUANT_SIZES. Ids 4, 5 (Q4_2, Q4_3)
# and 31-33, 36-38 (removed Q4_0_4_4 etc. and IQ4_NL_4_4 repacks) are retired and must not occur.
GGML_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}
GGML_TYPE_IDS = {name: type_id for type_id, (name, _, _) in GGML_TYPES.items()}

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS

FIRST_CHUNK = 1 << 20
MAX_HEADER = 1 << 30  # no real header comes near; a larger claim means a corrupt length field
KEEP_ARRAY = 64  # arrays up to this length are kept whole
KEEP_NUMERIC_ARRAY = 4096  # numeric arrays (per-layer values) are kept whole up to this length

# GGUF value types: id -> (name, struct format or None for string/array)
_VALUE_TYPES = {
    0: ("uint8", "B"), 1: ("int8", "b"), 2: ("uint16", "H"), 3: ("int16", "h"),
    4: ("uint32", "I"), 5: ("int32", "i"), 6: ("float32", "f"), 7: ("bool", "?"),
    8: ("string", None), 9: ("array", None), 10: ("uint64", "Q"), 11: ("int64", "q"),
    12: ("float64", "d"),
}

# Architectures with interleaved sliding-window layers: (period of set_swa_pattern, default window,
# window forced). From llama-model.cpp load_hparams; a period p makes layer il SWA unless
# il % p == p - 1 (so p=2: even layers SWA, p=6: five SWA then one full).
_SWA_ARCHS = {
    "gemma2": (2, 4096, False),
    "gemma3": (6, None, False),
    "gemma3n": (5, None, False),
    "gemma-embedding": (6, None, False),
    "cohere2": (4, None, False),
    "gpt-oss": (2, None, False),
    "exaone4": (4, None, False),
    "llama4": (4, 8192, True),  # chunked attention; llama.cpp hard-codes the 8192 chunk
}


class GGUFHeaderError(ValueError):
    """A file that is not a readable GGUF header; the message names the file/URL and byte offset."""


class GGUFFetchError(OSError):
    """A URL that could not be read (HTTP status or network); the message names the URL, never a token."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def _redact(url):
    """The URL without user:password@ (a token never belongs in a message)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    return urllib.parse.urlunsplit(parts)


# ----------------------------------------------------------------------------- byte sources


class _FileSource:
    """Reads a local file in growing chunks (never the whole 50 GB)."""

    def __init__(self, path):
        self.name = str(path)
        try:
            self._handle = open(path, "rb")
        except OSError as err:
            raise GGUFFetchError(f"{self.name}: cannot open: {err.strerror}") from err

    def read(self, start, length):
        self._handle.seek(start)
        return self._handle.read(length)

    def close(self):
        self._handle.close()


class KeepAuthOnSameHost(urllib.request.HTTPRedirectHandler):
    """Follow redirects (huggingface.co sends LFS files to its CDN) but never send the token to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


class _HttpSource:
    """Reads byte ranges of a URL with Range requests; copes with servers that ignore Range (200)."""

    def __init__(self, url, headers=None, timeout=60):
        self.name = _redact(url)
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.opener = urllib.request.build_opener(KeepAuthOnSameHost)
        self._stream = None  # open 200 response of a server without Range support
        self._stream_pos = 0

    def read(self, start, length):
        if self._stream is not None:
            return self._read_stream(start, length)
        request = urllib.request.Request(self.url, headers=self.headers)
        request.add_header("Range", f"bytes={start}-{start + length - 1}")
        request.add_header("Accept-Encoding", "identity")
        try:
            response = self.opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            err.close()
            if err.code == 416:  # range starts past the end: the file ended inside the header
                return b""
            raise GGUFFetchError(self._status_message(err.code, err.reason), status=err.code) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise GGUFFetchError(f"{self.name}: cannot fetch: {reason}") from None
        if response.status == 206:
            with response:
                self._check_range(response.headers.get("Content-Range", ""), start)
                return self._read_body(response, length)
        # 200: the server ignored Range and sends the whole file. Keep the stream and read only
        # as far as the header needs; close() drops the connection before the tensor data.
        self._stream, self._stream_pos = response, 0
        return self._read_stream(start, length)

    def _check_range(self, content_range, start):
        """A 206 must start where asked: bytes from elsewhere would parse as garbage."""
        first = content_range.removeprefix("bytes ").split("-", 1)[0]
        if not first.isdigit() or int(first) != start:
            raise GGUFFetchError(f"{self.name}: asked for bytes from {start}, "
                                 f"server answered Content-Range {content_range!r}")

    def _read_stream(self, start, length):
        while self._stream_pos < start:  # skip (only if a caller ever asks out of order)
            skipped = self._read_body(self._stream, min(start - self._stream_pos, FIRST_CHUNK))
            if not skipped:
                return b""
            self._stream_pos += len(skipped)
        data = self._read_body(self._stream, length)
        self._stream_pos += len(data)
        return data

    def _read_body(self, response, length):
        try:
            return response.read(length)
        except OSError as err:
            raise GGUFFetchError(f"{self.name}: connection failed while reading: {err}") from None

    def _status_message(self, code, reason):
        hint = {401: " (authentication required: a gated or private repository needs a token)",
                403: " (access denied: accept the model's licence or check the token's rights)",
                404: " (no such file or revision)"}.get(code, "")
        return f"{self.name}: HTTP {code} {reason}{hint}"

    def close(self):
        if self._stream is not None:
            self._stream.close()
            self._stream = None


# ----------------------------------------------------------------------------- parsing


class _Cursor:
    """Sequential reader over a byte source that fetches more (doubling) only when a field needs it."""

    def __init__(self, source):
        self.source = source
        self.buf = bytearray()
        self.pos = 0
        self.chunk = FIRST_CHUNK
        self.eof = False

    def need(self, n, what):
        end = self.pos + n
        if end > MAX_HEADER:
            self.fail(f"{what} would end at byte {end}, beyond any sane header size (corrupt length?)")
        while len(self.buf) < end:
            if self.eof:
                self.fail(f"file ends at byte {len(self.buf)} inside the header while reading {what} "
                          f"({n} bytes needed): truncated or not fully downloaded")
            want = max(self.chunk, end - len(self.buf))
            data = self.source.read(len(self.buf), want)
            self.chunk *= 2
            if len(data) < want:
                self.eof = True
            self.buf += data

    def fail(self, message, offset=None):
        at = self.pos if offset is None else offset
        raise GGUFHeaderError(f"{self.source.name}: at byte offset {at}: {message}")

    def unpack(self, fmt, what):
        size = struct.calcsize("<" + fmt)
        self.need(size, what)
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def string(self, what):
        start = self.pos
        length = self.unpack("Q", what)
        self.need(length, what)
        raw = bytes(self.buf[self.pos:self.pos + length])
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not valid UTF-8", offset=start)
        return None  # unreachable; fail() raises


def _read_value(cur, vtype, what):
    if vtype not in _VALUE_TYPES:
        cur.fail(f"unknown metadata value type {vtype} for {what}", offset=cur.pos - 4)
    name, fmt = _VALUE_TYPES[vtype]
    if fmt:
        return cur.unpack(fmt, what)
    if name == "string":
        return cur.string(what)
    return _read_array(cur, what)


def _read_array(cur, what):
    """Parse a whole array; keep it if small (or numeric and per-layer sized), else a summary."""
    start = cur.pos
    item_type, count = cur.unpack("IQ", what)
    if item_type not in _VALUE_TYPES:
        cur.fail(f"unknown array item type {item_type} for {what}", offset=start)
    name, fmt = _VALUE_TYPES[item_type]
    if fmt:
        size = struct.calcsize("<" + fmt) * count
        cur.need(size, what)
        if count > KEEP_NUMERIC_ARRAY:
            cur.pos += size
            return {"type": name, "length": count}
        values = list(struct.unpack_from(f"<{count}{fmt}", cur.buf, cur.pos))
        cur.pos += size
        return values
    items = [_read_value(cur, item_type, what) for _ in range(count)]
    return items if count <= KEEP_ARRAY else {"type": name, "length": count}


def _read_metadata(cur, n_kv):
    metadata = {}
    for index in range(n_kv):
        key = cur.string(f"metadata key #{index}")
        vtype = cur.unpack("I", f"type of {key}")
        metadata[key] = _read_value(cur, vtype, key)
    return metadata


def _read_tensor_info(cur, index):
    start = cur.pos
    name = cur.string(f"tensor #{index} name")
    n_dims = cur.unpack("I", f"{name} n_dims")
    if not 1 <= n_dims <= MAX_DIMS:
        cur.fail(f"tensor {name!r} has {n_dims} dimensions (1..{MAX_DIMS} allowed)", offset=start)
    shape = list(cur.unpack("Q" * n_dims, f"{name} shape")) if n_dims > 1 else [cur.unpack("Q", f"{name} shape")]
    type_at = cur.pos
    type_id, offset = cur.unpack("IQ", f"{name} type/offset")
    if type_id not in GGML_TYPES:
        cur.fail(f"tensor {name!r} has unknown ggml type id {type_id} (newer llama.cpp?)", offset=type_at)
    type_name, block, type_size = GGML_TYPES[type_id]
    if shape[0] % block:
        cur.fail(f"tensor {name!r}: ne0={shape[0]} is not a multiple of the {type_name} block size {block}",
                 offset=start)
    nbytes = math.prod(shape) // block * type_size
    return {"name": name, "type": type_name, "shape": shape, "offset": offset, "nbytes": nbytes}


def _parse(cur):
    magic = cur.unpack("4s", "magic")
    if magic != GGUF_MAGIC:
        cur.fail(f"bad magic {magic!r}: not a GGUF file", offset=0)
    version = cur.unpack("I", "version")
    if version not in SUPPORTED_VERSIONS:
        hint = " (a big-endian GGUF?)" if version > 0xFFFF else ""
        cur.fail(f"unsupported GGUF version {version}{hint}; supported: 2, 3", offset=4)
    n_tensors, n_kv = cur.unpack("QQ", "tensor/kv counts")
    if n_tensors > 1 << 24 or n_kv > 1 << 24:
        cur.fail(f"implausible counts: {n_tensors} tensors, {n_kv} metadata keys (corrupt header)", offset=8)
    metadata = _read_metadata(cur, n_kv)
    tensors = [_read_tensor_info(cur, i) for i in range(n_tensors)]
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        cur.fail(f"general.alignment {alignment!r} is not a power of two")
    data_offset = -(-cur.pos // alignment) * alignment
    return {"version": version, "metadata": metadata, "tensors": tensors, "data_offset": data_offset}


def read_header(source, headers=None, timeout=60):
    """Parse the GGUF header of a local path or an http(s) URL; fetch only the header bytes.

    ``headers`` (e.g. ``{"Authorization": "Bearer hf_..."}``) are sent with URL requests; the
    Authorization header is dropped when a redirect leaves the host (huggingface.co -> CDN).

    Returns ``{"version", "metadata", "tensors", "data_offset"}``:
      metadata     {key: value}. Arrays longer than 64 items (tokenizer tokens, merges) are parsed
                   but stored as ``{"type": item type, "length": n}``; numeric arrays are kept whole
                   up to 4096 items (per-layer values such as head_count_kv or
                   sliding_window_pattern), longer ones summarised the same way.
      tensors      [{"name", "type" (ggml type name, e.g. "Q4_K"), "shape" (ne[], ne0 first),
                   "offset" (relative to the data section), "nbytes"}] in file order
      data_offset  absolute file offset of the tensor data (header end aligned to general.alignment)

    Split models (gguf-split): every shard has its own header and tensor table; the first
    (``split.no`` = 0) carries the model metadata plus ``split.count`` (number of shards) and
    ``split.tensors.count`` (tensors over all shards). See ``expected_shards``.

    Raises GGUFHeaderError (a ValueError: bad magic, unsupported version, unknown type id,
    truncated or corrupt header; the message names the source and byte offset) or
    GGUFFetchError (an OSError: HTTP status or network failure; names the URL, never the token).
    """
    text = str(source)
    is_url = text.startswith(("http://", "https://"))
    reader = _HttpSource(text, headers, timeout) if is_url else _FileSource(text)
    try:
        return _parse(_Cursor(reader))
    finally:
        reader.close()


def expected_shards(header):
    """(split.no, split.count, split.tensors.count) of one shard's header; (0, 1, n_tensors) if not split."""
    md = header["metadata"]
    return (md.get("split.no", 0), md.get("split.count", 1),
            md.get("split.tensors.count", len(header["tensors"])))


# ----------------------------------------------------------------------------- profile


def _per_layer(value, n_layer, default=0):
    """A scalar or per-layer array as a list of n_layer ints."""
    if value is None:
        value = default
    if isinstance(value, list):
        if len(value) != n_layer:
            raise GGUFHeaderError(f"per-layer array has {len(value)} entries, expected {n_layer}")
        return [int(v) for v in value]
    return [int(value)] * n_layer


def _first_shard(headers):
    if not headers:
        raise GGUFHeaderError("model_profile needs at least one header")
    ordered = sorted(headers, key=lambda h: expected_shards(h)[0])
    _, count, n_tensors = expected_shards(ordered[0])
    got = sum(len(h["tensors"]) for h in headers)
    if count != len(headers) or n_tensors != got:
        raise GGUFHeaderError(f"split model: {count} shards / {n_tensors} tensors expected, "
                              f"got {len(headers)} headers / {got} tensors")
    return ordered[0]["metadata"]


def _active_fraction(name, expert_count, expert_used):
    """Share of a tensor read per token: routed experts (``_exps``) only at used/total."""
    if "_exps" in name and expert_count:
        return expert_used, expert_count
    return 1, 1


def _weights(tensors, md, arch, n_layer):
    expert_count = int(md.get(f"{arch}.expert_count", 0) or 0)
    expert_used = int(md.get(f"{arch}.expert_used_count", 0) or 0)
    # Multi-token-prediction blocks (nextn) are not run for ordinary decoding (llama.cpp does not even load
    # them unless MTP speculative decoding is on: TENSOR_SKIP in src/models/deepseek2.cpp).
    nextn = int(md.get(f"{arch}.nextn_predict_layers", 0) or 0)
    skipped = {f"blk.{il}." for il in range(n_layer - nextn, n_layer)} if nextn else set()
    # With tied embeddings (no output.weight) token_embd is also the output projection: read in full.
    tied = not any(t["name"] == "output.weight" for t in tensors)
    totals = {"params": 0, "size_bytes": 0, "active_params": 0, "active_bytes": 0, "quant_mix": {}}
    for t in tensors:
        elements = math.prod(t["shape"])
        totals["params"] += elements
        totals["size_bytes"] += t["nbytes"]
        totals["quant_mix"][t["type"]] = totals["quant_mix"].get(t["type"], 0) + t["nbytes"]
        if (t["name"] == "token_embd.weight" and not tied) or t["name"].startswith(tuple(skipped)):
            continue
        num, den = _active_fraction(t["name"], expert_count, expert_used)
        totals["active_params"] += elements * num // den
        totals["active_bytes"] += t["nbytes"] * num // den
    totals.update(expert_count=expert_count, expert_used_count=expert_used, dense=expert_count == 0)
    return totals


def _swa_layers(md, arch, n_layer):
    """(per-layer SWA flags, window, rule name) following llama-model.cpp; no SWA -> ([False]*n, 0, '')."""
    window = md.get(f"{arch}.attention.sliding_window")
    pattern = md.get(f"{arch}.attention.sliding_window_pattern")
    period, default_window, forced = _SWA_ARCHS.get(arch, (None, None, False))
    if arch == "llama4" and window == 0:  # llama4 without chunked attention (e.g. MobileLLM)
        return [False] * n_layer, 0, ""
    if forced or window is None:
        window = default_window
    if not window or (period is None and pattern is None):
        return [False] * n_layer, 0, ""
    if isinstance(pattern, list):  # per-layer flags, true = sliding window
        flags = [bool(v) for v in pattern][:n_layer]
        flags += [False] * (n_layer - len(flags))
    else:
        period = int(pattern) if isinstance(pattern, int) else period
        flags = [period == 0 or (il % period < period - 1) for il in range(n_layer)]
    return flags, int(window), "chunked" if arch == "llama4" else "swa"


def _attention_layers(md, arch, n_layer):
    """Layers that have a KV cache: hybrid models (qwen3next) interleave recurrent layers."""
    interval = md.get(f"{arch}.full_attention_interval")
    if interval:
        return [(il + 1) % int(interval) == 0 for il in range(n_layer)]
    return [True] * n_layer


def _kv_layers(md, arch, n_layer):
    """Per-layer F16 KV bytes per token, per-layer SWA flags, the window, the method name, and the head counts."""
    n_embd = int(md.get(f"{arch}.embedding_length", 0) or 0)
    n_head = _per_layer(md.get(f"{arch}.attention.head_count"), n_layer)
    n_head_kv = _per_layer(md.get(f"{arch}.attention.head_count_kv"), n_layer) if (
        f"{arch}.attention.head_count_kv" in md) else list(n_head)
    heads = max(n_head) if n_head else 0
    head_k = int(md.get(f"{arch}.attention.key_length") or (n_embd // heads if heads else 0))
    head_v = int(md.get(f"{arch}.attention.value_length") or (n_embd // heads if heads else 0))
    has_kv = _attention_layers(md, arch, n_layer)
    nextn = int(md.get(f"{arch}.nextn_predict_layers", 0) or 0)
    has_kv = [kv and il < n_layer - nextn for il, kv in enumerate(has_kv)]
    swa, window, swa_rule = _swa_layers(md, arch, n_layer)

    if f"{arch}.attention.key_length_mla" in md:
        rank = md.get(f"{arch}.attention.kv_lora_rank")
        rope = md.get(f"{arch}.rope.dimension_count")
        latent = int(rank) + int(rope) if rank and rope else head_k
        per_layer = [latent * 2 * n_head_kv[il] if has_kv[il] else 0 for il in range(n_layer)]
        method = "mla"
    else:
        head_k_swa = int(md.get(f"{arch}.attention.key_length_swa") or head_k)
        head_v_swa = int(md.get(f"{arch}.attention.value_length_swa") or head_v)
        per_layer = []
        for il in range(n_layer):
            k, v = (head_k_swa, head_v_swa) if swa[il] else (head_k, head_v)
            per_layer.append(n_head_kv[il] * (k + v) * 2 if has_kv[il] else 0)
        method = "gqa"
    if not all(has_kv):
        method += "+recurrent"
    if swa_rule:
        method += "+" + swa_rule
    heads_kv = max(n_head_kv) if n_head_kv else 0
    return per_layer, swa, window, method, (n_embd, heads, heads_kv)


def _kv(md, arch, n_layer):
    per_layer, swa, window, method, (n_embd, heads, heads_kv) = _kv_layers(md, arch, n_layer)
    full = sum(b for il, b in enumerate(per_layer) if not swa[il])
    windowed = sum(b for il, b in enumerate(per_layer) if swa[il])
    return {"n_embd": n_embd, "n_head": heads, "n_head_kv": heads_kv,
            "kv_bytes_per_token": full, "kv_swa_bytes_per_token": windowed,
            "kv_swa_window": window if windowed else 0, "kv_method": method}


def model_profile(headers):
    """Profile one model from the ``read_header`` results of all its shards (any order).

    Returns:
      architecture, context_length, n_layer, n_embd, n_head, n_head_kv (largest over layers),
      params / size_bytes      elements / tensor-data bytes of all tensors in all shards
      active_params / active_bytes
                               read to generate one token: every tensor except token_embd.weight
                               (a row lookup; counted when there is no output.weight, since tied
                               embeddings are then the output projection), routed experts
                               (names with ``_exps``, incl. their biases) at expert_used/expert_count,
                               shared experts (``_shexp``) in full; MTP (nextn) blocks left out
      expert_count, expert_used_count (0 for dense), dense
      kv_bytes_per_token       F16 K+V bytes per context token over the full-attention layers
      kv_swa_bytes_per_token   the same over sliding-window layers, which hold at most
      kv_swa_window            tokens (0: none); ``kv_cache_bytes`` combines the three
      kv_method                "gqa", "mla", with "+swa" / "+chunked" / "+recurrent" as they apply
      quant_mix                {ggml type name: bytes}
      shards
    """
    md = _first_shard(headers)
    arch = md.get("general.architecture")
    if not arch:
        raise GGUFHeaderError("general.architecture missing from the first shard's metadata")
    n_layer = int(md.get(f"{arch}.block_count", 0) or 0)
    tensors = [t for h in headers for t in h["tensors"]]
    profile = {"architecture": arch, "context_length": int(md.get(f"{arch}.context_length", 0) or 0),
               "n_layer": n_layer, "shards": len(headers)}
    profile.update(_weights(tensors, md, arch, n_layer))
    profile.update(_kv(md, arch, n_layer))
    return profile


# The tensors --cpu-moe and --n-cpu-moe keep in RAM: llama.cpp common/common.h LLM_FFN_EXPS_REGEX, matched
# with std::regex_search against the tensor name (so the routed experts' biases match too).
EXPERT_TENSOR = re.compile(r"\.ffn_(up|down|gate|gate_up)_(ch|)exps")
# Non-block tensors llama.cpp assigns to the input layer, which it always keeps on the CPU (src/llama-arch.cpp
# LLM_TENSOR_LAYER_INPUT: token_embd, position and token-type embeddings; looked up with GET_ROWS).
INPUT_TENSORS = ("token_embd.weight", "position_embd.weight", "token_types.weight")
_BLOCK = re.compile(r"^blk\.(\d+)\.")


def _activation_width(tensor, expert_used):
    """Floats per token the tensor's matmul produces: ne1 x ne2 (3-D MLA heads), ne1 x used for experts."""
    shape = tensor["shape"]
    if len(shape) < 2 or not tensor["name"].endswith(".weight"):
        return 0
    if EXPERT_TENSOR.search(tensor["name"]):
        return shape[1] * max(expert_used, 1)
    return math.prod(shape[1:])


def layer_bytes(headers):
    """Where each tensor's bytes sit per layer, for the GPU offload planner (``gpu_offload.plan``).

    llama.cpp places a model's tensors by layer (src/llama-model.cpp ``load_tensors``): the input layer
    (token_embd) always on the CPU, the repeating blocks ``blk.N.*`` on the GPU when N >= i_gpu_start =
    n_layer + 1 - ngl, and the output layer (output, output_norm) on the GPU when ngl >= 1 (it counts as
    the (n_layer + 1)-th layer, offloaded first). ``--n-cpu-moe N`` / ``--cpu-moe`` then keep the routed-
    expert tensors (EXPERT_TENSOR) of blocks 0..N-1 / of every block in RAM. So the planner needs, per
    block, the routed-expert bytes apart from the rest.

    Returns:
      architecture, n_layer      block_count, MTP (nextn) blocks included: -ngl counts them
      nextn_layers               trailing MTP blocks, not loaded for ordinary decoding (``loaded`` False)
      n_embd, n_vocab            n_vocab from token_embd's shape (the logits' width)
      expert_count, expert_used_count
      input_bytes                token_embd (+ position/token-type embeddings): always in RAM
      output_bytes               output.weight, output_norm and any other non-block tensor (rope_freqs);
                                 with tied embeddings the output is token_embd again, loaded a second time
      output_largest, output_width
                                 the largest output tensor's bytes; floats per token it produces (n_vocab)
      kv_swa_window              as model_profile
      blocks                     per block N: {index, loaded, expert_bytes, other_bytes, largest_expert,
                                 largest_other (bytes of the largest tensor of each kind), width (floats
                                 per token of its widest matmul output), kv_bytes_per_token, swa}
    """
    md = _first_shard(headers)
    arch = md.get("general.architecture")
    if not arch:
        raise GGUFHeaderError("general.architecture missing from the first shard's metadata")
    n_layer = int(md.get(f"{arch}.block_count", 0) or 0)
    nextn = int(md.get(f"{arch}.nextn_predict_layers", 0) or 0)
    expert_count = int(md.get(f"{arch}.expert_count", 0) or 0)
    expert_used = int(md.get(f"{arch}.expert_used_count", 0) or 0)
    kv_layer, swa, window, _, (n_embd, _, _) = _kv_layers(md, arch, n_layer)
    blocks = [{"index": il, "loaded": il < n_layer - nextn, "expert_bytes": 0, "other_bytes": 0,
               "largest_expert": 0, "largest_other": 0, "width": 0,
               "kv_bytes_per_token": kv_layer[il], "swa": swa[il]} for il in range(n_layer)]
    tensors = [t for h in headers for t in h["tensors"]]
    tied = not any(t["name"] == "output.weight" for t in tensors)
    out = {"architecture": arch, "n_layer": n_layer, "nextn_layers": nextn, "n_embd": n_embd, "n_vocab": 0,
           "expert_count": expert_count, "expert_used_count": expert_used, "input_bytes": 0,
           "output_bytes": 0, "output_largest": 0, "output_width": 0,
           "kv_swa_window": window if any(swa) else 0, "blocks": blocks}
    for t in tensors:
        name, size = t["name"], t["nbytes"]
        match = _BLOCK.match(name)
        if match:
            il = int(match.group(1))
            if il >= n_layer:
                raise GGUFHeaderError(f"tensor {name!r} names block {il}, but block_count is {n_layer}")
            block, kind = blocks[il], "expert" if EXPERT_TENSOR.search(name) else "other"
            block[kind + "_bytes"] += size
            block["largest_" + kind] = max(block["largest_" + kind], size)
            block["width"] = max(block["width"], _activation_width(t, expert_used))
            continue
        if name in INPUT_TENSORS:
            out["input_bytes"] += size
            if name != "token_embd.weight":
                continue
            out["n_vocab"] = t["shape"][1] if len(t["shape"]) > 1 else 0
            if not tied:
                continue
        out["output_bytes"] += size
        out["output_largest"] = max(out["output_largest"], size)
        if len(t["shape"]) > 1:
            out["output_width"] = max(out["output_width"], t["shape"][1])
    return out


def kv_cache_bytes(profile, context_tokens, swa_extra=0):
    """F16 KV-cache bytes for one sequence of ``context_tokens``.

    Full-attention layers grow with the context; sliding-window layers stop at the window.
    llama.cpp's SWA cache actually holds window + n_ubatch cells (llama-kv-cache-iswa.cpp),
    pass ``swa_extra=n_ubatch`` (default 512) for its exact allocation.
    """
    window = profile.get("kv_swa_window", 0)
    swa_tokens = min(context_tokens, window + swa_extra) if window else 0
    return profile["kv_bytes_per_token"] * context_tokens + profile.get("kv_swa_bytes_per_token", 0) * swa_tokens
