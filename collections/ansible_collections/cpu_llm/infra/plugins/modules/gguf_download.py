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
  - Supports check mode.
options:
  url: {description: URL of the file, type: str, required: true}
  dest: {description: Final path, type: path, required: true}
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
"""

EXAMPLES = r"""
- name: Fetch one shard
  cpu_llm.infra.gguf_download:
    url: https://huggingface.co/org/model-GGUF/resolve/main/model-Q6_K-00001-of-00003.gguf
    dest: /srv/llm/models/org--model-GGUF/main/model-Q6_K-00001-of-00003.gguf
    staging_dir: /srv/llm/models/.staging/org--model-GGUF/main
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"""

RETURN = r"""
bytes_downloaded: {description: Bytes transferred by this run, returned: always, type: int}
resumed_from: {description: Offset the transfer resumed from (0 for a fresh start), returned: always, type: int}
sha256: {description: sha256 of the file in place, returned: always, type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cpu_llm.infra.plugins.module_utils.resumable_download import DownloadError, fetch


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "dest": {"type": "path", "required": True},
            "staging_dir": {"type": "path", "required": True},
            "sha256": {"type": "str"},
            "size": {"type": "int"},
            "headers": {"type": "dict", "default": {}, "no_log": True},
            "timeout": {"type": "int", "default": 60},
            "evict_page_cache": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = fetch(p["url"], p["dest"], p["staging_dir"], sha256=p["sha256"], size=p["size"],
                       headers=p["headers"], timeout=p["timeout"], check_mode=module.check_mode,
                       evict=p["evict_page_cache"])
    except DownloadError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
