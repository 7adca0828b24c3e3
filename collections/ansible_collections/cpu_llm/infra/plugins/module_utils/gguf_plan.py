"""Which GGUF files make up a model, and how each is verified. Plain Python, no Ansible imports.

Hugging Face repositories hold several quantizations; a large one is split into shards named
``<stem>-00001-of-00009.gguf`` (llama.cpp's gguf-split convention), often in a sub-folder
named after the quant. llama-server is given the first shard and finds the others itself.
"""

import re

from ansible_collections.cpu_llm.infra.plugins.module_utils.throughput_model import quant_bits, quant_of

SHARD_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class PlanError(ValueError):
    """An input that cannot give a complete, verifiable model; the message says what to fix."""


def _basename(path):
    return path.rsplit("/", 1)[-1]


def listing_index(listing):
    """Map path -> {sha256, size} from a Hugging Face ``/api/models/<repo>/tree/<rev>`` answer."""
    index = {}
    for entry in listing or []:
        if entry.get("type") != "file":
            continue
        lfs = entry.get("lfs") or {}
        index[entry["path"]] = {"sha256": lfs.get("oid"), "size": lfs.get("size", entry.get("size"))}
    return index


def select_by_quant(index, quant):
    """The .gguf files whose name carries the quant tag (e.g. Q6_K, not Q6_K_L), sorted."""
    # After the tag only '-' or '.': '_' would make Q6_K match Q6_K_L (a different quant).
    tag = re.compile(r"(^|[-._/])" + re.escape(quant) + r"([-.]|$)", re.IGNORECASE)
    # mmproj-*.gguf are vision projectors that carry the quant tag too, not the model.
    names = sorted(p for p in index if p.endswith(".gguf") and tag.search(_basename(p))
                   and not _basename(p).lower().startswith("mmproj"))
    # A sharded model and its single-file twin can sit side by side: prefer the single file.
    single = [n for n in names if not SHARD_RE.match(_basename(n))]
    return [single[0]] if single else names


def check_shards(names):
    """Raise unless the names are one single file or one complete shard set."""
    shards = [SHARD_RE.match(_basename(n)) for n in names]
    if not any(shards):
        if len(names) != 1:
            raise PlanError(f"gguf_model_files: expected one .gguf file or one shard set, got {names}")
        return
    if not all(shards):
        raise PlanError(f"gguf_model_files: mixes shards and single files: {names}")
    stems = {(m.group("stem"), m.group("count")) for m in shards}
    if len(stems) != 1:
        raise PlanError(f"gguf_model_files: shards of more than one model: {names}")
    count = int(shards[0].group("count"))
    have = sorted(int(m.group("index")) for m in shards)
    if have != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(have))
        raise PlanError(
            f"gguf_model_files: incomplete shard set {shards[0].group('stem')}: "
            f"{count} shards expected, missing {missing or 'none'}, duplicates {len(have) != len(set(have))}"
        )


def plan(files, listing, quant, allow_unverified=False):
    """Resolve the model's files to [{name, path, sha256, size}] with the first shard first.

    files: the inventory's gguf_model_files ([{name, sha256?}] or names); empty means
    "pick the files of `quant` from the listing". listing: the API tree answer or None.
    """
    index = listing_index(listing)
    wanted = []
    for item in files or []:
        entry = {"name": item} if isinstance(item, str) else dict(item)
        name = entry.get("name")
        if not isinstance(name, str) or not name.endswith(".gguf") or name.startswith("/") or ".." in name.split("/"):
            raise PlanError(f"gguf_model_files: every entry needs a name ending in .gguf, relative to the "
                            f"repository, got {item!r}")
        wanted.append(entry)
    if not wanted:
        if not index:
            raise PlanError("gguf_model_files is empty and the repository listing is empty: "
                            "name the files or check gguf_model_repo / gguf_model_revision")
        names = select_by_quant(index, quant)
        if not names:
            gguf = sorted(p for p in index if p.endswith(".gguf"))
            raise PlanError(f"gguf_model_quant: no .gguf file for {quant!r} in the repository; it has {gguf}")
        wanted = [{"name": n} for n in names]

    names = [w["name"] for w in wanted]
    check_shards(names)
    result = []
    for entry in sorted(wanted, key=lambda w: _basename(w["name"])):
        known = index.get(entry["name"], {})
        sha = entry.get("sha256") or known.get("sha256")
        if sha is not None and not SHA256_RE.match(str(sha)):
            raise PlanError(f"gguf_model_files: sha256 of {entry['name']} must be 64 lowercase hex digits, got {sha!r}")
        if entry.get("sha256") and known.get("sha256") and entry["sha256"] != known["sha256"]:
            raise PlanError(f"gguf_model_files: pinned sha256 of {entry['name']} is {entry['sha256']} "
                            f"but the repository says {known['sha256']}: the file changed upstream or the pin is wrong")
        if not sha and not allow_unverified:
            raise PlanError(f"no sha256 for {entry['name']}: pin it in gguf_model_files or let the play read it "
                            "from the repository listing; set gguf_model_allow_unverified: true to accept it unchecked")
        size = entry.get("size", known.get("size"))
        result.append({"name": _basename(entry["name"]), "path": entry["name"], "sha256": sha or None,
                       "size": int(size) if size is not None else None})
    return result


def with_sizes(files, head_results):
    """Fill missing sizes from HEAD answers (ansible uri results: item.name, content_length)."""
    sizes = {}
    for result in head_results or []:
        length = result.get("content_length")
        if result.get("item") and length not in (None, ""):
            sizes[result["item"]["name"]] = int(length)
    out = []
    for entry in files:
        size = entry["size"] if entry.get("size") is not None else sizes.get(entry["name"])
        if size is None:
            raise PlanError(f"the size of {entry['name']} is unknown: the repository listing does not give it and "
                            "the server sent no Content-Length; check gguf_model_endpoint")
        out.append(dict(entry, size=size))
    return out


# Unquantized weights are never chosen by gguf_model_quant: auto: they double the bytes read per
# token (half the speed) against Q8_0, whose perplexity is within ~0.01% of F16
# (llama.cpp tools/quantize/README.md), so the extra RAM buys nothing a user can measure.
NOT_AUTO = {"F32", "F16", "BF16"}
# Quality order for auto, best first: llama.cpp's quantize table (tools/quantize/README.md, perplexity
# increase over F16) ranks the k-quants and i-quants above the legacy quant of the same size
# (Q4_K_M over Q4_1, Q5_K_M over Q5_1), so bits per weight alone would pick a worse, slower file.
QUALITY = ["Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "IQ4_XS", "IQ4_NL", "Q4_1",
           "Q4_0", "Q3_K_L", "Q3_K_M", "IQ3_M", "Q3_K_S", "IQ3_XXS", "Q2_K", "IQ2_M", "IQ2_XS", "IQ2_XXS", "IQ1_M",
           "IQ1_S", "TQ2_0", "TQ1_0"]


def quant_candidates(listing):
    """Every quant the repository offers: [{quant, files, size_bytes}], highest quality (QUALITY) first.

    A quant's files are what plan() would pick for it (one file, or one complete shard set).
    """
    index = listing_index(listing)
    tags = {quant_of(_basename(p)) for p in index if p.endswith(".gguf")} - {None}
    out = []
    for tag in tags - NOT_AUTO:
        names = select_by_quant(index, tag)
        try:
            check_shards(names)
        except PlanError:
            continue  # an incomplete upload is not a candidate
        sizes = [index[n].get("size") for n in names]
        if any(size is None for size in sizes):
            continue
        out.append({"quant": tag, "files": names, "size_bytes": sum(int(size) for size in sizes)})
    rank = {quant: i for i, quant in enumerate(QUALITY)}
    return sorted(out, key=lambda c: (rank.get(c["quant"], len(QUALITY)), -quant_bits(c["quant"]), c["size_bytes"]))
