#!/usr/bin/python
"""Module gguf_download: resumable, sha256-verified download into place (see DOCUMENTATION)."""

DOCUMENTATION = r"""
module: gguf_download
short_description: Download a large file resumably, verify its sha256, then move it into place
description:
  - Downloads into a staging directory on the same filesystem; an interrupted transfer resumes
    with an HTTP Range request on the next run instead of starting over.
  - The file reaches I(dest) only after its sha256 matched; a mismatch discards the download and
    leaves I(dest) as it was.
  - A verified file gets a sidecar (.NAME.verified); a re-run trusts an unchanged file without
    re-reading it.
  - After verification the file's pages are evicted from the page cache, so a NUMA-interleaved
    process that maps it faults them in across all nodes.
  - With I(connections) > 1 the file is fetched in 64 MiB chunks over that many connections (one
    connection to the Hub's CDN is capped well below a server's link), written in place into a
    preallocated part file; a sidecar state file lists the complete chunks, so a re-run fetches only
    the missing ones. The sha256 is computed while the chunks complete, in order (one read of the file).
  - "429/503 answers wait Retry-After (capped) and retry; an expired signed CDN URL (403/410) is
    resolved again from I(url); a full disk stops with the directory and the bytes still needed,
    keeping the part for the next run; a server that ignores Range requests is downloaded over one
    connection, with a warning."
  - "With I(files), fetches several files (the shards of one model) one after another in one call:
    one background job, one status file listing every file (done, current, pending)."
  - "Runs as an async task (C(async) and C(poll: 0)), watched by C(cpu_llm.infra.llm_async_watch), which
    prints I(progress_file) as lines in the play (or read it with the C(cpu_llm.infra.llm_download_progress)
    filter)."
  - Supports check mode.
options:
  url: {description: URL of the file (or use I(files)), type: str}
  dest: {description: Final path (or use I(files)), type: path}
  files:
    description:
      - Several files to fetch in order, instead of I(url), I(dest), I(sha256) and I(size). Each entry has
        C(path) (appended to I(base_url)), and optionally C(name) (the file name in I(dest_dir); default the
        path's last part), C(sha256) and C(size). The gguf_model_plan filter's entries are of this form;
        other keys are ignored.
    type: list
    elements: raw
  base_url: {description: URL the I(files) are served under; required with I(files), type: str}
  dest_dir: {description: Directory the I(files) are placed in; required with I(files), type: path}
  staging_dir:
    description: Directory for partial downloads, on the same filesystem as dest
    type: path
    required: true
  sha256: {description: Expected sha256 (64 hex digits); omit only when unverified files are allowed, type: str}
  size: {description: Expected size in bytes, type: int}
  headers:
    description: HTTP headers (e.g. Authorization for gated repositories); never logged
    type: dict
    default: {}
  timeout: {description: Socket timeout in seconds, type: int, default: 60}
  evict_page_cache: {description: Drop the file from the page cache after verification, type: bool, default: true}
  connections:
    description:
      - Parallel connections for this file, 1 to 64. 1 is a single stream resumed with a Range request.
      - Parallel downloads need I(size); without it the file comes over one stream.
    type: int
    default: 8
  progress_file:
    description:
      - JSON status file rewritten every I(progress_interval) seconds (bytes_done, bytes_total,
        rate_bytes_per_s, average_bytes_per_s, eta_seconds, state). Empty for none.
    type: path
    default: ""
  progress_interval: {description: Seconds between progress file updates, type: float, default: 2.0}
  retries:
    description: Retries per request after 429/503, an expired CDN URL or a dropped connection.
    type: int
    default: 5
  max_retry_wait: {description: Longest wait in seconds for one Retry-After, type: float, default: 60.0}
"""

EXAMPLES = r"""
- name: Fetch one shard
  cpu_llm.infra.gguf_download:
    url: https://huggingface.co/org/model-GGUF/resolve/main/model-Q6_K-00001-of-00003.gguf
    dest: /srv/llm/models/org--model-GGUF/main/model-Q6_K-00001-of-00003.gguf
    staging_dir: /srv/llm/models/.staging/org--model-GGUF/main
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    connections: 8

- name: Fetch both shards in the background, reporting progress
  cpu_llm.infra.gguf_download:
    base_url: https://huggingface.co/org/model-GGUF/resolve/main
    dest_dir: /srv/llm/models/org--model-GGUF/main
    files:
      - {path: Q6_K/model-Q6_K-00001-of-00002.gguf, sha256: "0123...cdef", size: 50000000000}
      - {path: Q6_K/model-Q6_K-00002-of-00002.gguf, sha256: "4567...89ab", size: 21000000000}
    staging_dir: /srv/llm/models/.staging/org--model-GGUF/main
    progress_file: /srv/llm/models/.staging/progress.json
  async: 604800
  poll: 0
  register: job

- name: Wait for it, printing a progress line every 10 s
  cpu_llm.infra.llm_async_watch:
    job: "{{ job }}"
    progress_file: /srv/llm/models/.staging/progress.json
"""

RETURN = r"""
files: {description: With I(files), each file's result (the keys below), returned: with files, type: list}
bytes_downloaded: {description: Bytes transferred by this run, returned: always, type: int}
resumed_from: {description: Offset the transfer resumed from (0 for a fresh start), returned: always, type: int}
sha256: {description: sha256 of the file in place, returned: always, type: str}
connections:
  description: Connections used (1 after a fallback to one stream or without I(size); 0 when nothing was fetched)
  returned: always
  type: int
chunks_resumed: {description: Chunks a previous run had completed, returned: parallel downloads, type: int}
retries: {description: Requests retried (rate limits, dropped connections), returned: always, type: int}
reresolved: {description: Times an expired CDN URL was resolved again, returned: always, type: int}
seconds: {description: Duration of this download, returned: when downloaded, type: float}
average_bytes_per_s: {description: bytes_downloaded / seconds, returned: when downloaded, type: float}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cpu_llm.infra.plugins.module_utils.resumable_download import (
    MAX_CONNECTIONS,
    DownloadError,
    fetch,
    fetch_all,
)


def _specs(module):
    """files entries as fetch_all wants them: url, dest, sha256, size."""
    p = module.params
    if not p["base_url"] or not p["dest_dir"]:
        module.fail_json(msg="files needs base_url and dest_dir")
    specs = []
    for entry in p["files"]:
        if not isinstance(entry, dict) or not entry.get("path"):
            module.fail_json(msg=f"files: every entry needs a path, got {entry!r}")
        name = entry.get("name") or entry["path"].rsplit("/", 1)[-1]
        if "/" in name or name in (".", ".."):
            module.fail_json(msg=f"files: name must be a plain file name, got {name!r}")
        size = entry.get("size")
        specs.append({"url": p["base_url"].rstrip("/") + "/" + entry["path"].lstrip("/"),
                      "dest": f"{p['dest_dir'].rstrip('/')}/{name}", "sha256": entry.get("sha256") or None,
                      "size": int(size) if size not in (None, "") else None})
    return specs


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str"},
            "dest": {"type": "path"},
            "files": {"type": "list", "elements": "raw"},
            "base_url": {"type": "str"},
            "dest_dir": {"type": "path"},
            "staging_dir": {"type": "path", "required": True},
            "sha256": {"type": "str"},
            "size": {"type": "int"},
            "headers": {"type": "dict", "default": {}, "no_log": True},
            "timeout": {"type": "int", "default": 60},
            "evict_page_cache": {"type": "bool", "default": True},
            "connections": {"type": "int", "default": 8},
            "progress_file": {"type": "path", "default": ""},
            "progress_interval": {"type": "float", "default": 2.0},
            "retries": {"type": "int", "default": 5},
            "max_retry_wait": {"type": "float", "default": 60.0},
        },
        supports_check_mode=True,
        mutually_exclusive=[("files", "url"), ("files", "dest"), ("files", "sha256"), ("files", "size")],
        required_by={"files": ("base_url", "dest_dir")},
        required_one_of=[("files", "url")],
        required_together=[("url", "dest")],
    )
    p = module.params
    if not 1 <= p["connections"] <= MAX_CONNECTIONS:
        module.fail_json(msg=f"connections must be 1..{MAX_CONNECTIONS}, got {p['connections']}")
    common = {"headers": p["headers"], "timeout": p["timeout"], "check_mode": module.check_mode,
              "evict": p["evict_page_cache"], "connections": p["connections"],
              "progress_file": p["progress_file"] or None, "progress_interval": p["progress_interval"],
              "retries": p["retries"], "max_retry_wait": p["max_retry_wait"]}
    try:
        if p["files"]:
            result = fetch_all(_specs(module), p["staging_dir"], **common)
        else:
            result = fetch(p["url"], p["dest"], p["staging_dir"], sha256=p["sha256"], size=p["size"], **common)
    except DownloadError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
