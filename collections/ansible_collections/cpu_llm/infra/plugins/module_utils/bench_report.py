"""Benchmark report: measured vs expected token generation. Plain Python, no Ansible imports.

Inputs come from the benchmark role: the service's own command (the record its unit carries,
module_utils/server_command.py, so the benchmark uses the same binary, model, threads and NUMA
policy), likwid-bench's bandwidth, llama-bench's JSON, the service's own timings, and
llm_throughput's predictions.
"""

import json
import re
import statistics

SLOW = 0.8  # below this fraction of the expectation, the report looks for a cause


def bandwidth_from_likwid(text):
    """GB/s (1e9 bytes) from likwid-bench output ('MByte/s: 44399.35', MByte = 1e6 bytes)."""
    match = re.search(r"MByte/s:\s*([\d.]+)", text or "")
    if not match:
        raise ValueError(f"no 'MByte/s:' line in likwid-bench output: {(text or '')[-500:]}")
    return round(float(match.group(1)) / 1000, 2)


def llama_bench_results(text):
    """{'tg_tps': .., 'pp_tps': ..} from `llama-bench -o json` (the best of each test)."""
    rows = json.loads(text)
    out = {}
    for row in rows:
        key = "tg_tps" if row.get("n_gen") and not row.get("n_prompt") else "pp_tps" if row.get("n_prompt") else None
        if key:
            out[key] = max(out.get(key, 0), float(row["avg_ts"]))
    if "tg_tps" not in out:
        raise ValueError("llama-bench reported no token-generation test")
    return out


def service_tps(responses):
    """Median generation speed llama-server reported in its own timings (predicted_per_second)."""
    speeds = [r["timings"]["predicted_per_second"] for r in responses if r.get("timings")]
    if not speeds:
        raise ValueError("the service returned no timings")
    return round(statistics.median(speeds), 2)


def tuning_section(doc):
    """The autotune document's outcome: the default configuration's speed, the chosen one's, the gain."""
    if not isinstance(doc, dict) or not doc.get("chosen"):
        return None
    chosen, default = doc["chosen"], doc["default"]

    def gain(metric):
        return round(chosen[metric] / default[metric], 3) if chosen.get(metric) and default.get(metric) else None
    changed = {key: value for key, value in chosen["config"].items() if default["config"].get(key) != value}
    return {"measured_at": doc.get("measured_at"), "default": default, "chosen": chosen, "changed": changed,
            "gain_tg": gain("tg"), "gain_pp": gain("pp"), "noise_pct": doc.get("noise_pct"),
            "seconds": doc.get("seconds"), "trials": len(doc.get("alternatives") or [])}


def build(host, hardware, measured_bw, bench, service, expected, from_measured, bytes_per_token, audit=None,
          governor=None, threads=None, tuning=None):
    """The host's report with the three ratios the issue asks for and the likely causes of a shortfall.

    tuning: the autotune role's document from the host, reported as the "tuning" section.
    """
    tg = bench["tg_tps"]
    effective = round(bytes_per_token * tg / 1e9, 2)
    reference = expected.get("tokens_per_second") if expected else None
    report = {
        "host": host,
        "cpu_model": hardware.get("cpu_model"),
        "threads": threads,
        "bandwidth": {"measured_gbs": measured_bw, "peak_gbs": hardware.get("peak_bandwidth_gbs"),
                      "effective_gbs": effective},
        "tokens_per_second": {
            "llama_bench": round(tg, 2), "prompt_llama_bench": round(bench.get("pp_tps", 0), 2),
            "service": service,
            "expected": reference,
            "expected_from_measured_bandwidth": from_measured["tokens_per_second"],
            "ceiling": expected.get("tokens_per_second_ceiling") if expected else None,
        },
        "ratios": {
            "service_vs_llama_bench": round(service / tg, 3),
            "bandwidth_fraction": round(effective / measured_bw, 3),
            # Against the hardware-based expectation where the DIMMs are known, else against the
            # expectation from the measured bandwidth (VMs and containers).
            "predicted_vs_measured": round((reference or from_measured["tokens_per_second"]) / tg, 3),
        },
        "bytes_per_token": bytes_per_token,
        "tuning": tuning_section(tuning),
        "causes": [],
    }
    causes = report["causes"]
    if reference and tg < SLOW * reference:
        causes.append(f"llama-bench reaches {tg / reference:.0%} of the {reference:.2f} tok/s the hardware allows")
    if tg < SLOW * from_measured["tokens_per_second"]:
        causes.append(f"{report['ratios']['bandwidth_fraction']:.0%} of the measured bandwidth is used per token: "
                      "check the thread count and that the model is not read from disk (RAM, --mlock)")
    if report["ratios"]["service_vs_llama_bench"] < 0.95:
        causes.append("the service is slower than llama-bench on the same binary and model: per-token HTTP, "
                      "sampling and detokenization cost (large for small models), or other requests in flight")
    if reference and hardware.get("peak_bandwidth_gbs") and measured_bw < SLOW * 0.8 * hardware["peak_bandwidth_gbs"]:
        causes.append(f"measured bandwidth is {measured_bw / hardware['peak_bandwidth_gbs']:.0%} of peak: "
                      "check the BIOS audit (channels, speed, NUMA mode)")
    for finding in audit or []:
        if finding.get("severity") == "warning":
            causes.append(f"{finding['seen']}: {finding['action']}")
    if governor and governor != "performance":
        causes.append(f"CPU governor is {governor}, not performance")
    if hardware.get("numa_balancing"):
        causes.append("kernel.numa_balancing is on")
    if threads and hardware.get("cores") and int(threads) != int(hardware["cores"]):
        causes.append(f"the service runs {threads} threads on {hardware['cores']} physical cores")
    return report


def _fmt(value, unit=""):
    return "-" if value is None else f"{value:g}{unit}" if isinstance(value, (int, float)) else str(value)


def markdown(reports):
    """A readable table for the fleet, one row per host, and each host's causes."""
    head = ("| host | bandwidth measured / peak (GB/s) | used per token | llama-bench tg | service tg | "
            "service / bench | expected | ceiling |\n|---|---|---|---|---|---|---|---|\n")
    rows = []
    for r in sorted(reports, key=lambda r: r["host"]):
        t, b = r["tokens_per_second"], r["bandwidth"]
        expected = t["expected"] or t["expected_from_measured_bandwidth"]
        rows.append(f"| {r['host']} | {_fmt(b['measured_gbs'])} / {_fmt(b['peak_gbs'])} | "
                    f"{r['ratios']['bandwidth_fraction']:.0%} | {_fmt(t['llama_bench'])} | {_fmt(t['service'])} | "
                    f"{r['ratios']['service_vs_llama_bench']:.0%} | {_fmt(expected)} | {_fmt(t['ceiling'])} |")
    notes = []
    for r in sorted(reports, key=lambda r: r["host"]):
        for cause in r["causes"]:
            notes.append(f"- **{r['host']}**: {cause}")
    body = head + "\n".join(rows) + "\n"
    tuned = [r for r in sorted(reports, key=lambda r: r["host"]) if r.get("tuning")]
    if tuned:
        body += ("\n## Tuning (autotune)\n\n| host | default tg | chosen tg | gain | changed | noise | sweep |\n"
                 "|---|---|---|---|---|---|---|\n")
        for r in tuned:
            t = r["tuning"]
            changed = ", ".join(f"{k}={v}" for k, v in sorted(t["changed"].items())) or "nothing (defaults won)"
            body += (f"| {r['host']} | {_fmt(t['default']['tg'])} | {_fmt(t['chosen']['tg'])} | "
                     f"{_fmt(t['gain_tg'], 'x')} | {changed} | {_fmt(t['noise_pct'], '%')} | "
                     f"{t['trials']} runs, {_fmt(t['seconds'], ' s')} |\n")
    return "# Token generation: measured vs expected\n\n" + body + ("\n## Likely causes\n\n" + "\n".join(notes) + "\n"
                                                                   if notes else "")


def svg(reports, width=640, bar=18):
    """Bar chart: measured (llama-bench, service) vs expected tokens/s per host."""
    reports = sorted(reports, key=lambda r: r["host"])
    series = [("llama-bench", "llama_bench", "#1f77b4"), ("service", "service", "#2ca02c"),
              ("expected", "expected", "#ff7f0e")]
    top = max([r["tokens_per_second"][k] or r["tokens_per_second"]["expected_from_measured_bandwidth"]
               for r in reports for _, k, _ in series] + [1e-9])
    left, group = 140, bar * len(series) + 14
    height = 40 + group * len(reports)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="12">', '<text x="10" y="20">tokens/s: measured vs expected</text>']
    for i, r in enumerate(reports):
        y0 = 34 + i * group
        out.append(f'<text x="10" y="{y0 + group / 2}">{r["host"]}</text>')
        for j, (label, key, colour) in enumerate(series):
            value = r["tokens_per_second"][key]
            if key == "expected" and value is None:
                value = r["tokens_per_second"]["expected_from_measured_bandwidth"]
            length = (width - left - 80) * value / top
            y = y0 + j * bar
            out.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar - 3}" fill="{colour}"/>')
            out.append(f'<text x="{left + length + 4:.1f}" y="{y + bar - 6}">{label} {value:g}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
