"""Serial benchmark: prediction rows per second over the link, against what 115200 baud would allow.

Two networks, trained and quantized here: 4-16-3 (iris) and 64-32-10 (digits). Each is deployed to a
virtual board (edgenn.device.vboard + edgenn.device.deploy) and every row of its dataset is streamed
through main.py with the protocol client, in two modes:
- features: the raw values as text (what `edgenn predict` / `eval-device` send),
- codes: `q C1,C2,...` with the golden input codes (shorter requests; `eval-device --codes`),
each one row at a time (lockstep) and pipelined (what eval-device does: up to 192 unanswered bytes).

The "115200 baud" columns are computed, not measured: 8N1 framing moves 11520 bytes/s each way, so a
pipelined stream can do at most 11520 / max(request, reply) rows/s (both directions at once) and a
lockstep one at most 11520 / (request + reply). The virtual board's pty has no baud rate at all, so
its measured rows/s is a different quantity (bytecode speed of parsing + replying, x86-64): the ratio
column says how many times faster than the 115200-baud limit the pty ran, i.e. whether the link (and not
the board's parsing) would be the bottleneck at 115200 baud. Board-side inference time is x86-64 too.

Run standalone: `python -m bench.serial`; `make bench` calls `run(results_dir)`.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

import numpy as np

from edgenn import golden, modelfile
from edgenn.demo import train_and_quantize
from edgenn.device.board_eval import run_rows
from edgenn.device.client import BoardClient
from edgenn.device.deploy import deploy
from edgenn.device.vboard import VirtualBoard

BAUD = 115200
BYTES_PER_S = BAUD / 10  # 8N1: a start bit, 8 data bits, a stop bit
NETWORKS = [("iris", (16,), 4), ("digits", (32,), 1)]  # dataset, hidden, times through the dataset


def measure(client: BoardClient, qm, X: np.ndarray, codes: bool, lockstep: bool) -> dict:
    window = client.window_bytes
    if lockstep:
        client.window_bytes = 0  # stream() keeps at least one line in flight: exactly one
    try:
        run = run_rows(client, qm, X, codes=codes)
    finally:
        client.window_bytes = window
    request = run.bytes_out / run.n
    reply = run.bytes_in / run.n
    limit = BYTES_PER_S / (request + reply) if lockstep else BYTES_PER_S / max(request, reply)
    rows_per_s = run.n / run.seconds
    return {
        "mode": "codes" if codes else "features",
        "lockstep": lockstep,
        "rows": run.n,
        "agreement": 1.0 - (len(run.mismatches) + len(run.errors)) / run.n,
        "request_bytes": round(request, 2),
        "reply_bytes": round(reply, 2),
        "rows_per_s": round(rows_per_s, 1),
        "rows_per_s_115200_limit": round(limit, 1),
        "pty_vs_115200": round(rows_per_s / limit, 2),
        "board_us_p50": float(np.percentile(run.latency_us, 50)) if run.latency_us.size else None,
    }


def run(results_dir: pathlib.Path | None = None) -> dict:
    results: dict = {
        "baud": BAUD,
        "note": "measured on the virtual board (pty: no baud limit, x86-64 MicroPython); "
        "115200-baud limits are computed from the measured bytes per row",
        "networks": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        board = VirtualBoard(pathlib.Path(tmp) / "flash", board="esp32")
        port = board.start()
        try:
            for name, hidden, repeats in NETWORKS:
                dataset, _fm, qm, _warnings = train_and_quantize(name, hidden)
                path = pathlib.Path(tmp) / f"{name}.enn"
                modelfile.save(qm, path)
                deploy(path, port, board="esp32", say=lambda _text: None)
                X = np.concatenate([dataset.X] * repeats)
                rows = []
                with BoardClient(port, timeout=10) as client:
                    client.connect()
                    for codes in (False, True):
                        for lockstep in (True, False):
                            rows.append(measure(client, qm, X, codes, lockstep))
                golden_acc = float(np.mean(golden.predict(qm, dataset.X) == dataset.y))
                results["networks"][modelfile.describe(qm)] = {
                    "dataset": name,
                    "golden_accuracy": golden_acc,
                    "runs": rows,
                }
        finally:
            board.stop()
    print_table(results)
    return results


def print_table(results: dict) -> None:
    print(f"rows/s over the serial link: virtual board (pty, no baud limit) vs the {BAUD}-baud limit")
    head = (
        f"{'network':<26} {'mode':<9} {'flow':<10} {'req B':>6} {'reply B':>7} {'pty rows/s':>10} "
        f"{'115200 rows/s':>13} {'pty/115200':>10} {'board us':>8} {'agree':>6}"
    )
    print(head)
    print("-" * len(head))
    for network, entry in results["networks"].items():
        for r in entry["runs"]:
            flow = "lockstep" if r["lockstep"] else "pipelined"
            print(
                f"{network:<26} {r['mode']:<9} {flow:<10} {r['request_bytes']:>6.1f} "
                f"{r['reply_bytes']:>7.1f} {r['rows_per_s']:>10.0f} {r['rows_per_s_115200_limit']:>13.1f} "
                f"{r['pty_vs_115200']:>10.1f} {r['board_us_p50']:>8.0f} {100 * r['agreement']:>5.1f}%"
            )
    print(
        "115200 rows/s = 11520 B/s / max(request, reply) pipelined, / (request + reply) lockstep "
        "(computed, 8N1)."
    )
    print("pty rows/s and board us are x86-64 MicroPython on the virtual board, not ESP32 figures.")


if __name__ == "__main__":
    run()
    sys.exit(0)
