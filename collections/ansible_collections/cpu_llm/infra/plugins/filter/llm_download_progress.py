"""Filter llm_download_progress: one line about a running or finished gguf_download, from its progress file.

Its documentation is the adjacent llm_download_progress.yml (ansible-doc reads it).
"""

from ansible.errors import AnsibleFilterError


def _duration(seconds):
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _merge(progress):
    """Several files' progress (shards downloaded one after another) as one: sums, and the running one's rate."""
    items = [p for p in progress if isinstance(p, dict) and p]
    if not items:
        raise AnsibleFilterError("llm_download_progress: no progress yet")
    running = [p for p in items if p.get("state") not in ("done", "failed")]
    current = running[-1] if running else items[-1]
    done = sum(p.get("bytes_done") or 0 for p in items)
    total = sum(p.get("bytes_total") or 0 for p in items) if all(p.get("bytes_total") for p in items) else None
    fetched = sum((p.get("bytes_done") or 0) - (p.get("resumed_from") or 0) for p in items)
    elapsed = sum(p.get("elapsed_seconds") or 0 for p in items)
    rate = current.get("rate_bytes_per_s") or 0
    return {"bytes_done": done, "bytes_total": total, "rate_bytes_per_s": rate,
            "average_bytes_per_s": fetched / elapsed if elapsed else 0, "elapsed_seconds": elapsed,
            "state": "running" if running else current.get("state"),
            "eta_seconds": (total - done) / rate if total and rate else None}


def llm_download_progress(progress, host="", final=False):
    """'llm-1: 212.4 / 404.4 GB, 1.12 GB/s, ETA 2m51s'.

    When done (or with final): 'llm-1: 404.4 GB in 6m25s, average 1.05 GB/s'.
    """
    if isinstance(progress, dict):
        progress = [progress]
    if not isinstance(progress, list):
        raise AnsibleFilterError(f"llm_download_progress: expected the progress file's JSON (a dict) or a list "
                                 f"of them, got {type(progress).__name__}")
    p = _merge(progress)
    prefix = f"{host}: " if host else ""
    if final or p["state"] in ("done", "failed"):
        state = ", FAILED" if p["state"] == "failed" else ""
        return (f"{prefix}{p['bytes_done'] / 1e9:.1f} GB in {_duration(p['elapsed_seconds'])}, "
                f"average {p['average_bytes_per_s'] / 1e9:.2f} GB/s{state}")
    total = f"{p['bytes_total'] / 1e9:.1f}" if p["bytes_total"] else "?"
    eta = _duration(p["eta_seconds"]) if p["eta_seconds"] is not None else "?"
    return (f"{prefix}{p['bytes_done'] / 1e9:.1f} / {total} GB, {p['rate_bytes_per_s'] / 1e9:.2f} GB/s, "
            f"ETA {eta}")


class FilterModule:
    def filters(self):
        return {"llm_download_progress": llm_download_progress}
