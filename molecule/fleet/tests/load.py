"""Steady load through the gateway: concurrent streaming chat completions until told to stop.

Runs inside the gateway's container (python3, stdlib only), so every request goes to its own loopback
and from there to the scenario's servers. Bounded: it stops at the stop file, after --max-seconds or
after --max-requests, whichever comes first, and writes a summary:
  {requests, ok, failed, failures: [first 20 reasons], latency_s: {p50, p99}, seconds}
A request counts as ok only with HTTP 200, a stream that ends with "data: [DONE]" and no error event.
Usage: load.py --url URL --key-file F --out F [--concurrency 4] [--max-seconds 1200] [--max-requests 20000]
"""

import argparse
import json
import os
import threading
import time
import urllib.error
import urllib.request


def one(url, key, timeout):
    body = json.dumps({"messages": [{"role": "user", "content": "Count to five."}], "max_tokens": 12,
                       "temperature": 0, "stream": True}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + key})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            done = False
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: ") and '"error"' in line:
                    return f"error event: {line[:200]}"
                elif line.startswith("error:"):
                    return f"error event: {line[:200]}"
            return None if done else "stream ended without [DONE]"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read()[:200]!r}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-file", default="/root/llm-load.stop")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=1200)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    key = open(args.key_file).read().strip()
    start, lock = time.monotonic(), threading.Lock()
    results = []  # (latency, failure or None)

    def stop():
        return (os.path.exists(args.stop_file) or time.monotonic() - start > args.max_seconds
                or len(results) >= args.max_requests)

    def worker():
        while not stop():
            began = time.monotonic()
            failure = one(args.url, key, args.timeout)
            with lock:
                results.append((time.monotonic() - began, failure))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failures = [f for _, f in results if f]
    latencies = [lat for lat, f in results if not f]
    summary = {"requests": len(results), "ok": len(latencies), "failed": len(failures), "failures": failures[:20],
               "latency_s": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)},
               "seconds": time.monotonic() - start}
    with open(args.out + ".tmp", "w") as f:
        json.dump(summary, f)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
