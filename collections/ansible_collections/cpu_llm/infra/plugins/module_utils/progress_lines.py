"""The progress lines the play prints while a long task runs (controller side, plain Python).

Download: 'llm-1: 212.4 / 404.4 GB, 1.12 GB/s, ETA 2m51s', then 'llm-1: 404.4 GB in 6m25s, average 1.05 GB/s'
(MB below a GB, MB/s below a GB/s).
Build: 'llm-1: building llama.cpp, 45% (Building CXX object src/CMakeFiles/llama.dir/llama.cpp.o), 3m12s'.
"""

import re


class ProgressError(ValueError):
    pass


def duration(seconds):
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def amount(n, scale):
    """Bytes in GB (1e9) when the scale (the total) is a GB or more, else in MB: a test model reads '0.1 GB' badly."""
    return f"{n / 1e9:.1f} GB" if scale >= 1e9 else f"{n / 1e6:.1f} MB"


def rate(n):
    return f"{n / 1e9:.2f} GB/s" if n >= 1e9 else f"{n / 1e6:.1f} MB/s"


def merge(progress):
    """Several files' progress (shards downloaded one after another) as one.

    Sums the bytes; the rate is the one of the file being fetched now (not a pending or finished one).
    """
    items = [p for p in progress if isinstance(p, dict) and p]
    if not items:
        raise ProgressError("no progress yet")
    unfinished = [p for p in items if p.get("state") not in ("done", "failed")]
    active = [p for p in unfinished if p.get("state") != "pending"]
    failed = [p for p in items if p.get("state") == "failed"]
    current = active[0] if active else (failed or items)[-1]
    done = sum(p.get("bytes_done") or 0 for p in items)
    total = sum(p.get("bytes_total") or 0 for p in items) if all(p.get("bytes_total") for p in items) else None
    fetched = sum((p.get("bytes_done") or 0) - (p.get("resumed_from") or 0) for p in items)
    elapsed = sum(p.get("elapsed_seconds") or 0 for p in items)
    rate = (current.get("rate_bytes_per_s") or 0) if active else 0
    state = "failed" if failed else ("running" if unfinished else "done")
    return {"bytes_done": done, "bytes_total": total, "rate_bytes_per_s": rate,
            "average_bytes_per_s": fetched / elapsed if elapsed else 0, "elapsed_seconds": elapsed,
            "state": state, "eta_seconds": (total - done) / rate if total and rate else None}


def download_line(progress, host="", final=False, rate_bytes_per_s=None):
    """One line from a progress file's JSON (a dict, or a list of them for the files of one model).

    rate_bytes_per_s: the rate the watcher measured across its own readings, which carries over from
    one file to the next (a file's own rate starts again from nothing).
    """
    if isinstance(progress, dict):
        progress = [progress]
    if not isinstance(progress, list):
        raise ProgressError(f"expected the progress file's JSON (a dict) or a list of them, "
                            f"got {type(progress).__name__}")
    p = merge(progress)
    if rate_bytes_per_s is not None:
        p["rate_bytes_per_s"] = rate_bytes_per_s
        remaining = (p["bytes_total"] - p["bytes_done"]) if p["bytes_total"] else None
        p["eta_seconds"] = remaining / rate_bytes_per_s if remaining is not None and rate_bytes_per_s > 0 else None
    prefix = f"{host}: " if host else ""
    scale = p["bytes_total"] or p["bytes_done"]
    if final or p["state"] in ("done", "failed"):
        state = ", FAILED" if p["state"] == "failed" else ""
        return (f"{prefix}{amount(p['bytes_done'], scale)} in {duration(p['elapsed_seconds'])}, "
                f"average {rate(p['average_bytes_per_s'])}{state}")
    done = amount(p["bytes_done"], scale).rsplit(" ", 1)[0]
    total = amount(p["bytes_total"], scale) if p["bytes_total"] else "? " + amount(0, scale).rsplit(" ", 1)[1]
    eta = duration(p["eta_seconds"]) if p["eta_seconds"] is not None else "?"
    return f"{prefix}{done} / {total}, {rate(p['rate_bytes_per_s'])}, ETA {eta}"


# CMake's Makefile generator prefixes each step with its overall percentage ("[ 45%] Building CXX
# object ..."), Ninja with its count ("[12/345] Building CXX object ...").
_STEP = re.compile(r"^\[\s*(\d{1,3})%\]\s+(.*)$")
_NINJA = re.compile(r"^\[(\d+)/(\d+)\]\s+(.*)$")


def build_line(log_tail, elapsed_seconds, host="", what="the build"):
    """The build's stage (the last '[ NN%] step' line of its log) and the time it has taken so far."""
    prefix = f"{host}: " if host else ""
    for line in reversed(log_tail.splitlines()):
        match, ninja = _STEP.match(line.strip()), _NINJA.match(line.strip())
        if match or (ninja and int(ninja.group(2))):
            percent = match.group(1) if match else str(int(ninja.group(1)) * 100 // int(ninja.group(2)))
            step = match.group(2) if match else ninja.group(3)
            step = step if len(step) <= 90 else step[:87] + "..."
            return f"{prefix}{what}: {percent}% ({step}), {duration(elapsed_seconds)}"
    return f"{prefix}{what}: configuring, {duration(elapsed_seconds)}"
