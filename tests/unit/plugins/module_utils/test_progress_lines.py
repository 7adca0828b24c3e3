"""progress_lines: the lines the play prints while a model downloads or llama.cpp builds."""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils.progress_lines import (
    ProgressError,
    build_line,
    download_line,
    duration,
)

GB = 1e9


def entry(state, done, total, rate=0.0, resumed=0, elapsed=0.0):
    return {"state": state, "bytes_done": done, "bytes_total": total, "rate_bytes_per_s": rate,
            "resumed_from": resumed, "elapsed_seconds": elapsed}


def test_a_model_in_shards_is_one_line_with_the_current_shards_rate():
    shards = [entry("done", 200 * GB, 200 * GB, rate=0.9 * GB, elapsed=190),
              entry("downloading", 12.4 * GB, 200 * GB, rate=1.12 * GB, elapsed=11),
              entry("pending", 0, 4.4 * GB)]
    assert download_line(shards, "llm-1") == "llm-1: 212.4 / 404.4 GB, 1.12 GB/s, ETA 2m51s"


def test_between_shards_the_rate_is_unknown_not_a_finished_shards():
    shards = [entry("done", 2 * GB, 2 * GB, rate=1 * GB, elapsed=2), entry("pending", 0, 2 * GB)]
    assert download_line(shards, "h") == "h: 2.0 / 4.0 GB, 0.0 MB/s, ETA ?"


def test_the_final_line_counts_only_what_this_run_fetched():
    shards = [entry("done", 100 * GB, 100 * GB, resumed=100 * GB), entry("done", 100 * GB, 100 * GB, elapsed=100)]
    assert download_line(shards, "llm-1") == "llm-1: 200.0 GB in 1m40s, average 1.00 GB/s"
    failed = [entry("failed", 1 * GB, 2 * GB, elapsed=10), entry("pending", 0, 2 * GB)]
    assert download_line(failed, "h").endswith(", FAILED")


def test_build_line_names_the_last_step_and_the_elapsed_time():
    log = ("-- Configuring done\n[  3%] Building C object ggml/src/ggml.c.o\n"
           "[ 45%] Building CXX object src/llama.cpp.o\n")
    assert build_line(log, 192, "llm-1", "building llama.cpp") == (
        "llm-1: building llama.cpp: 45% (Building CXX object src/llama.cpp.o), 3m12s")
    assert build_line("-- Detecting CXX compiler\n", 5) == "the build: configuring, 5s"
    long = "[100%] Linking CXX executable " + "x" * 200
    assert build_line(long, 3725).endswith("...), 1h02m") and len(build_line(long, 1)) < 130


def test_durations_and_bad_input():
    assert [duration(s) for s in (0, 59.6, 61, 7322)] == ["0s", "1m00s", "1m01s", "2h02m"]
    with pytest.raises(ProgressError):
        download_line([])
    with pytest.raises(ProgressError):
        download_line("nope")


def test_a_small_model_reads_in_mb():
    assert download_line(entry("downloading", 70e6, 138.4e6, rate=20e6), "t") == "t: 70.0 / 138.4 MB, 20.0 MB/s, ETA 3s"
    assert download_line(entry("done", 138.4e6, 138.4e6, elapsed=7), "t") == "t: 138.4 MB in 7s, average 19.8 MB/s"


def test_ninja_counts_are_read_as_percentages():
    assert build_line("[12/48] Building CXX object src/llama.cpp.o\n", 70) == (
        "the build: 25% (Building CXX object src/llama.cpp.o), 1m10s")


def test_the_watchers_rate_carries_over_a_shard_boundary():
    shards = [entry("done", 46e6, 46e6, rate=16e6, elapsed=3), entry("downloading", 1e6, 46e6, rate=0.0)]
    assert download_line(shards, "h") == "h: 47.0 / 92.0 MB, 0.0 MB/s, ETA ?"  # the new shard's own rate
    assert download_line(shards, "h", rate_bytes_per_s=15e6) == "h: 47.0 / 92.0 MB, 15.0 MB/s, ETA 3s"
