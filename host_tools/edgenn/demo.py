"""`python -m edgenn.demo --out out` (what `make demo` runs): the whole journey on a virtual board.

train iris -> quantize -> start a virtual board -> deploy -> eval-device -> a few predictions -> stop.
Every step is a library call (the same functions the `edgenn` commands use), so a failure shows where.
Exit status 0 when every step worked and the board agreed with the golden model on every row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgenn import golden, modelfile
from edgenn.data import load_dataset
from edgenn.device.board_eval import disagreement_lines, report_lines, run_rows, summarize
from edgenn.device.client import BoardClient, format_features
from edgenn.errors import UserError
from edgenn.modelfile import QuantModel
from edgenn.nn import TrainConfig, split_for_model, train
from edgenn.qat import fine_tune

DATASET = "iris"
HIDDEN = (16,)


class Steps:
    """Numbered step headings with their duration."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.n = 0
        self.started = time.perf_counter()
        self.step_started = self.started

    def __call__(self, title: str) -> None:
        self.n += 1
        self.step_started = time.perf_counter()
        print(f"\n[{self.n}/{self.total}] {title}", flush=True)

    def took(self) -> str:
        return f"{time.perf_counter() - self.step_started:.1f} s"


def train_and_quantize(dataset_name: str, hidden: tuple[int, ...], seed: int = 0, epochs: int = 200):
    """Train on the bundled dataset (cross-validated, then refitted on every row, as `edgenn train`) and
    quantize as `edgenn quantize` does (calibrated on the training rows, fine-tuned when that helps).
    Returns (dataset, float model, integer model, quantizer warnings)."""
    dataset = load_dataset(dataset_name)
    fm = train(dataset, TrainConfig(hidden=hidden, seed=seed, epochs=epochs))
    split = split_for_model(fm, dataset)
    calib = dataset.X[split.train] if split is not None else dataset.X
    result = fine_tune(fm, calib, name=dataset_name, seed=seed)
    return dataset, fm, result.model, result.warnings


def deploy_model(model_path: Path, port: str) -> None:
    """Runtime + main.py + model onto the board: the same code as `edgenn deploy` (it soft-resets the
    board at the end, so main.py starts with the new model)."""
    from edgenn.device.deploy import deploy

    deploy(model_path, port, board="esp32", say=lambda text: print("  " + text))


def run_demo(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    step = Steps(6)

    step(f"Train a float MLP on the bundled {DATASET} dataset (hidden {','.join(map(str, HIDDEN))})")
    dataset, fm, qm, warnings = train_and_quantize(DATASET, HIDDEN)
    fm.save(out / f"{DATASET}.npz")
    cv = fm.meta.get("cv")
    shown = f"{100 * cv['mean']:.1f}% ± {100 * cv['std']:.1f} over {cv['k']} folds" if cv else "n/a"
    print(
        f"  {dataset.n_rows} rows, {dataset.n_features} features, {len(dataset.labels)} classes; "
        f"cross-validated accuracy {shown}; then trained on all {dataset.n_rows} rows for "
        f"{fm.meta['epochs']} epochs; wrote {out / f'{DATASET}.npz'} ({step.took()})"
    )

    step("Quantize to integers (int8 weights, int32 biases) and write the .enn model file")
    model_path = out / f"{DATASET}.enn"
    size = modelfile.save(qm, model_path)
    int_pred, float_pred = golden.predict(qm, dataset.X), fm.predict(dataset.X)
    agreement = float(np.mean(int_pred == float_pred))
    float_acc, int_acc = float(np.mean(float_pred == dataset.y)), float(np.mean(int_pred == dataset.y))
    print(
        f"  {modelfile.describe(qm)}, {size} bytes; on the {dataset.n_rows} training rows the integer model "
        f"(golden) agrees with the float model on {100 * agreement:.1f}% (accuracy there: float "
        f"{100 * float_acc:.1f}%, integer {100 * int_acc:.1f}%); "
        f"wrote {model_path}"
    )
    for w in warnings:
        print(f"  warning: {w}")

    step("Start a virtual board (MicroPython unix port behind a pty, ESP32-sized heap)")
    from edgenn.device.vboard import VirtualBoard

    flash_dir = out / "vboard"
    board = VirtualBoard(flash_dir, board="esp32")
    port = board.start()
    print(f"  port {port}, flash directory {flash_dir}")
    try:
        step(f"Deploy runtime, main.py and {model_path.name} to the board")
        deploy_model(model_path, port)

        with BoardClient(port) as client:
            info = client.connect()
            print(
                f"  the board says: model {info['model']!r}, {info['inputs']} inputs, kernel "
                f"{info['kernel']}, MicroPython {info['micropython']}, {info['heap_free']} bytes heap free"
            )

            step(
                f"eval-device: all {dataset.n_rows} rows of {DATASET} through the board vs the golden model "
                "(the training rows: this checks the board, not new data; step 1's cross-validated "
                "figure is the estimate for new rows)"
            )
            run = run_rows(client, qm, dataset.X)
            result = summarize(run, qm, dataset.y, dataset.X)
            result.update(
                model=qm.name,
                network=modelfile.describe(qm),
                data=DATASET,
                board={k: info.get(k) for k in ("platform", "micropython", "kernel")},
            )
            for line in report_lines(result):
                print("  " + line)

            step("A few predictions (the serial protocol: one line in, one JSON line out)")
            show_predictions(client, qm, dataset)
    finally:
        board.stop()
        print("\nvirtual board stopped")
    total = time.perf_counter() - step.started
    if result["agreement"] < 1.0:
        print("\n" + "\n".join(disagreement_lines(result)), file=sys.stderr)
        print(f"demo FAILED after {total:.1f} s: the board disagrees with the golden model", file=sys.stderr)
        return 1
    print(
        f"demo done in {total:.1f} s: the board agrees with the golden model on every row. Next: "
        f"`edgenn vboard` in one terminal, then `edgenn deploy {model_path} --port PORT` and "
        "`edgenn predict --port PORT 5.1,3.5,1.4,0.2` in another (or a real ESP32's port)."
    )
    return 0


def show_predictions(client: BoardClient, qm: QuantModel, dataset) -> None:
    picks = [int(np.flatnonzero(dataset.y == k)[0]) for k in range(len(dataset.labels))]
    for i in picks:
        line = format_features(dataset.X[i])
        reply = client.request(line)
        print(f"  > {line}")
        print(f"  < {json.dumps(reply)}    (true: {dataset.labels[dataset.y[i]]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgenn.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="where models and the board's flash go")
    args = parser.parse_args(argv)
    try:
        return run_demo(args.out)
    except UserError as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
