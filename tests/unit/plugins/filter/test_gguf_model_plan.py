"""gguf_model_plan: which files make up a model, and refusing what cannot be verified."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.filter.gguf_model_plan import gguf_model_plan as plan
from ansible_collections.cpu_llm.infra.plugins.filter.gguf_model_plan import gguf_model_with_sizes

SHA = {i: f"{i:064x}" for i in range(1, 10)}


def lfs(path, sha, size=100):
    return {"type": "file", "path": path, "size": size, "oid": "x", "lfs": {"oid": sha, "size": size}}


LISTING = [
    {"type": "directory", "path": "M-Q6_K", "oid": "d", "size": 0},
    lfs("M-Q6_K/M-Q6_K-00002-of-00003.gguf", SHA[2], 200),
    lfs("M-Q6_K/M-Q6_K-00001-of-00003.gguf", SHA[1], 100),
    lfs("M-Q6_K/M-Q6_K-00003-of-00003.gguf", SHA[3], 50),
    lfs("M-Q6_K_L.gguf", SHA[4]),
    lfs("M-Q4_K_M.gguf", SHA[5]),
    {"type": "file", "path": "README.md", "size": 10, "oid": "r"},
]


def test_picks_the_quant_first_shard_first_with_sums_from_the_listing():
    files = plan([], LISTING, "Q6_K")
    assert [f["name"] for f in files] == [f"M-Q6_K-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert [f["sha256"] for f in files] == [SHA[1], SHA[2], SHA[3]]
    assert sum(f["size"] for f in files) == 350
    assert files[0]["path"] == "M-Q6_K/M-Q6_K-00001-of-00003.gguf"


def test_quant_tag_is_matched_exactly():
    assert [f["name"] for f in plan([], LISTING, "Q4_K_M")] == ["M-Q4_K_M.gguf"]
    with pytest.raises(AnsibleFilterError, match=r"no \.gguf file for 'Q8_0'"):
        plan([], LISTING, "Q8_0")


def test_pinned_sums_need_no_listing():
    files = plan([{"name": "a.gguf", "sha256": SHA[7]}], None, "Q6_K")
    assert files == [{"name": "a.gguf", "path": "a.gguf", "sha256": SHA[7], "size": None}]


def test_incomplete_shard_set_is_refused():
    with pytest.raises(AnsibleFilterError, match=r"incomplete shard set M-Q6_K: 3 shards expected, missing \[3\]"):
        plan(["M-Q6_K/M-Q6_K-00001-of-00003.gguf", "M-Q6_K/M-Q6_K-00002-of-00003.gguf"], LISTING, "Q6_K")


def test_unknown_checksum_is_refused_unless_allowed():
    with pytest.raises(AnsibleFilterError, match=r"no sha256 for other\.gguf"):
        plan(["other.gguf"], LISTING, "Q6_K")
    assert plan(["other.gguf"], LISTING, "Q6_K", allow_unverified=True)[0]["sha256"] is None


def test_pin_that_disagrees_with_the_repository_is_refused():
    with pytest.raises(AnsibleFilterError, match="the file changed upstream or the pin is wrong"):
        plan([{"name": "M-Q4_K_M.gguf", "sha256": SHA[9]}], LISTING, "Q6_K")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([{"name": "model.bin"}], "name ending in .gguf"),
        (["../../etc/x.gguf"], "relative to the"),
        ([{"name": "a.gguf", "sha256": "XYZ"}], "64 lowercase hex"),
        (["a.gguf", "b.gguf"], "expected one .gguf file or one shard set"),
        (["M-Q6_K/M-Q6_K-00001-of-00003.gguf", "M-Q4_K_M.gguf"], "mixes shards and single files"),
    ],
)
def test_malformed_lists(files, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plan(files, LISTING, "Q6_K")


def test_sizes_from_head_answers_fill_the_gaps():
    files = plan([{"name": "a.gguf", "sha256": SHA[7]}], None, "Q6_K")
    heads = [{"item": {"name": "a.gguf"}, "content_length": "12345", "status": 200}]
    assert gguf_model_with_sizes(files, heads)[0]["size"] == 12345
    with pytest.raises(AnsibleFilterError, match=r"the size of a\.gguf is unknown"):
        gguf_model_with_sizes(files, [])
