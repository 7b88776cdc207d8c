"""`make bench`: run every benchmark, print its tables, write bench/results/<name>.json and all.json.

Benchmarks compare against a baseline measured in the same run (ratios), never against a fixed time.
Timings on the virtual board are x86-64 MicroPython timings, not ESP32 timings; the instruction counts of
the board's own machine code (run in qemu-xtensa / unicorn) are the ESP32 figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

BENCHMARKS = {
    "training": "float training and integer accuracy vs scikit-learn",
    "runtime": "device runtime: viper vs portable vs float MicroPython MLP",
    "serial": "prediction rows per second over the serial link",
    "frontend": "sensor front end: gestures raw/stats/spectral vs scikit-learn; its cost",
    "report": "edgenn report build time and page size vs scoring alone",
    "predict": "predict from a list / array('f') vs forward_q vs an everywhereml random forest",
    "fleet": "fleet deploy to 1, 10, 100, 1,000 simulated boards through one mosquitto: time, broker bytes",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    which = ", ".join(BENCHMARKS)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"which to run: {which} (default: all)")
    parser.add_argument("--results", type=Path, default=Path("bench/results"), help="where JSON goes")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    args.results.mkdir(parents=True, exist_ok=True)
    combined: dict = {
        "host": {"python": platform.python_version(), "machine": platform.machine(), "node": platform.node()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "benchmarks": {},
    }
    failed = []
    for name in names:
        print(f"\n=== {name}: {BENCHMARKS[name]} ===", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            print(f"(skipped: {exc})")
            continue
        try:
            result = module.run(args.results)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        (args.results / f"{name}.json").write_text(json.dumps(result, indent=2, default=float))
        combined["benchmarks"][name] = result
    (args.results / "all.json").write_text(json.dumps(combined, indent=2, default=float))
    print(f"\nresults written to {args.results}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
