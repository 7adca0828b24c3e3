#!/usr/bin/env python3
"""Prediction error of llm_throughput on published measurements, in-sample and held out.

Reads the points marked "use": true in tests/fixtures/throughput_calibration.json and throughput_more.json (or
the fixture files given as arguments) and prints:
  * the naive peak bandwidth / bytes-per-token baseline,
  * the in-sample error (constants fitted on all points, i.e. FITTED in the module),
  * the leave-one-out error: for each point the fitted constants are refitted without it and the point is
    predicted; the held-out error is what to expect on hardware outside the fixtures,
  * each point's measured/predicted ratio held out, and the 10th/90th percentile of those ratios (the range
    estimate() returns as tokens_per_second_low/high),
and, last, a machine-readable line:
  loo_median_abs_error=<fraction> loo_within_40=<fraction> loo_max_ratio=<x> points=<n>
Errors: median |predicted/measured - 1|, share of points within +-40%, max of predicted/measured and its inverse.
Usage: throughput_error.py [FIXTURE ...]
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A standalone script: the one place outside Ansible and pytest (pytest.ini) that needs the
# embedded collection's root on the import path to import the model by its collection name.
sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model  # noqa: E402

FIXTURES = [ROOT / "tests" / "fixtures" / "throughput_calibration.json",
            ROOT / "tests" / "fixtures" / "throughput_more.json"]


def _line(name, summary):
    return (f"{name:10} median_abs_error={summary['median_abs_error']:.3f} within_40={summary['within_40']:.2f} "
            f"max_ratio={summary['max_ratio']:.2f} points={summary['points']}")


def main():
    paths = [Path(a) for a in sys.argv[1:]] or FIXTURES
    fixtures = [json.loads(p.read_text()) for p in paths]
    points = throughput_model.calibration_points(*fixtures)
    skipped = sum(1 for f in fixtures for p in f["points"] if not p.get("use", True))

    fitted = throughput_model.fit(points)
    in_sample = [p["measured"] / throughput_model.predict(p, fitted) for p in points]
    naive = []
    for p in points:
        hw = p["hardware"]
        peak = hw["memory_channels"] * hw["memory_speed_mts"] * 8e6
        naive.append(p["measured"] / (peak / throughput_model.model_profile(p["model"])["active"]))
    held_out = throughput_model.leave_one_out(points)

    print(f"{len(points)} points used, {skipped} not used (each fixture point says why)")
    print(f"fitted on all points: {fitted}   module FITTED: {throughput_model.FITTED}")
    print(f"{'point':62} {'measured':>8} {'predicted':>9} {'held out':>9}  measured/predicted held out")
    for p, ins, loo in zip(points, in_sample, held_out, strict=True):
        print(f"{p['label'][:62]:62} {p['measured']:8.2f} {p['measured'] / ins:9.2f} {p['measured'] / loo:9.2f}  "
              f"{loo:5.2f}")
    low, high = throughput_model.ratio_percentiles(held_out)
    print(f"held-out measured/predicted p10={low:.2f} p90={high:.2f} "
          f"(module LOO_RATIO_P10={throughput_model.LOO_RATIO_P10} P90={throughput_model.LOO_RATIO_P90})")
    print(_line("naive", throughput_model.error_summary(naive)))
    print(_line("in-sample", throughput_model.error_summary(in_sample)))
    loo = throughput_model.error_summary(held_out)
    print(_line("held-out", loo))
    print(f"loo_median_abs_error={loo['median_abs_error']:.2f} loo_within_40={loo['within_40']:.2f} "
          f"loo_max_ratio={loo['max_ratio']:.2f} points={loo['points']}")


if __name__ == "__main__":
    main()
