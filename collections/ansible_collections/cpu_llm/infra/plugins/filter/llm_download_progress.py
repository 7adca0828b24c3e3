"""Filter llm_download_progress: one line about a running or finished gguf_download, from its progress file.

Its documentation is the adjacent llm_download_progress.yml (ansible-doc reads it).
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils.progress_lines import ProgressError, download_line


def llm_download_progress(progress, host="", final=False):
    """'llm-1: 212.4 / 404.4 GB, 1.12 GB/s, ETA 2m51s'.

    When done (or with final): 'llm-1: 404.4 GB in 6m25s, average 1.05 GB/s'.
    """
    try:
        return download_line(progress, host, final)
    except ProgressError as exc:
        raise AnsibleFilterError(f"llm_download_progress: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"llm_download_progress": llm_download_progress}
