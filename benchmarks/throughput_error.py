#!/usr/bin/env python3
"""Prediction error of llm_throughput on published measurements (tests/fixtures/throughput_calibration.json).

Prints one line per point and, last, a machine-readable summary:
  median_abs_error=<fraction> max_ratio=<x> points=<n>
The prediction is for mainline llama.cpp; points measured with ik_llama.cpp (typically 10-25%
faster at generation, per the calibration file) are compared with the prediction x IK_SPEEDUP.
Usage: throughput_error.py [FILE]
"""

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A standalone script: the one place outside Ansible and pytest (pytest.ini) that needs the
# embedded collection's root on the import path to import the model by its collection name.
sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model as llm_throughput  # noqa: E402

IK_SPEEDUP = 1.15


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fixtures" / "throughput_calibration.json"
    points = json.loads(path.read_text())["points"]
    errors, ratios, naive_errors = [], [], []
    for point in points:
        options = point.get("options", {})
        result = llm_throughput.estimate(point["hardware"], point["model"], threads=options.get("threads"),
                                         numa=options.get("numa", "interleave"))
        predicted = result["tokens_per_second"] * (IK_SPEEDUP if point.get("engine") == "ik" else 1)
        measured = point["measured_tps"]
        error = predicted / measured - 1
        errors.append(abs(error))
        naive = result["peak_bandwidth_gbs"] * 1e9 / point["model"].get("active_bytes", point["model"]["size_bytes"])
        naive_errors.append(abs(naive / measured - 1))
        ratios.append(max(predicted / measured, measured / predicted))
        print(f"{point['hardware']['cpu_model'][:40]:40} {point['model'].get('quant', ''):7} "
              f"measured {measured:7.2f}  predicted {predicted:7.2f}  error {error:+6.1%}  [{point['source'][:50]}]")
    print(f"naive peak/size formula: median_abs_error={statistics.median(naive_errors):.3f}")
    print(f"median_abs_error={statistics.median(errors):.3f} max_ratio={max(ratios):.2f} points={len(points)}")


if __name__ == "__main__":
    main()
