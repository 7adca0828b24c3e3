"""llm_download_progress: the lines the download task prints, from the module's progress file."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.filter.llm_download_progress import FilterModule, llm_download_progress

RUNNING = {"file": "m.gguf", "state": "downloading", "bytes_done": 212.4e9, "bytes_total": 404.4e9,
           "resumed_from": 0, "rate_bytes_per_s": 1.12e9, "average_bytes_per_s": 1.0e9, "eta_seconds": 171.4,
           "elapsed_seconds": 200}
DONE = dict(RUNNING, state="done", bytes_done=404.4e9, eta_seconds=0, elapsed_seconds=385.1)


def test_running_line():
    assert llm_download_progress(RUNNING, "llm-1") == "llm-1: 212.4 / 404.4 GB, 1.12 GB/s, ETA 2m51s"


def test_final_line_gives_the_average_of_what_this_run_fetched():
    assert llm_download_progress(DONE, "llm-1") == "llm-1: 404.4 GB in 6m25s, average 1.05 GB/s"
    resumed = dict(DONE, resumed_from=4.4e9, elapsed_seconds=400)
    assert llm_download_progress(resumed, "llm-1").endswith("404.4 GB in 6m40s, average 1.00 GB/s")
    assert llm_download_progress(dict(DONE, state="failed"), "llm-1").endswith(", FAILED")
    assert "average" in llm_download_progress(RUNNING, "llm-1", final=True)


def test_shards_are_summed_with_the_running_one_rate():
    first = dict(DONE, bytes_done=200e9, bytes_total=200e9, elapsed_seconds=190)
    second = dict(RUNNING, bytes_done=12.4e9, bytes_total=204.4e9, eta_seconds=None, rate_bytes_per_s=1.12e9)
    assert llm_download_progress([first, second], "llm-1") == "llm-1: 212.4 / 404.4 GB, 1.12 GB/s, ETA 2m51s"


def test_unknown_total_and_rate_and_long_durations():
    line = llm_download_progress(dict(RUNNING, bytes_total=None, rate_bytes_per_s=0), "h")
    assert line == "h: 212.4 / ? GB, 0.0 MB/s, ETA ?"
    assert llm_download_progress(dict(RUNNING, rate_bytes_per_s=20e6)) == "212.4 / 404.4 GB, 20.0 MB/s, ETA 2h40m"


def test_bad_input():
    with pytest.raises(AnsibleFilterError, match="expected the progress file's JSON"):
        llm_download_progress("nope")
    with pytest.raises(AnsibleFilterError, match="no progress yet"):
        llm_download_progress([])
    assert FilterModule().filters()["llm_download_progress"] is llm_download_progress
