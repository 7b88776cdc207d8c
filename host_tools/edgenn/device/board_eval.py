"""Run a dataset through a board and compare every answer with the golden integer model.

`evaluate_on_board` is what `edgenn eval-device`, the demo and the serial benchmark call. The golden
model (edgenn.golden) computes exactly what the board should: its int8 outputs must match the board's
byte for byte, so any disagreement is a bug, not noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgenn import golden, modelfile
from edgenn.data import Dataset, load_for_model, read_table
from edgenn.device.client import BoardClient, format_features
from edgenn.errors import UserError
from edgenn.metrics import classification_summary, confusion_lines
from edgenn.modelfile import QuantModel


@dataclass
class BoardRun:
    """What the board answered for each row, next to what the golden model says."""

    n: int
    outputs: np.ndarray  # board int8 outputs (n, n_out); rows with an error reply hold 0
    golden_outputs: np.ndarray  # golden int8 outputs (n, n_out)
    # class ids (classify), first output value (regress), the integer score (anomaly); NaN/-1 on error
    board_pred: np.ndarray
    latency_us: np.ndarray  # board-measured inference time per answered row
    errors: list[tuple[int, str]]  # (row, message) for rows the board refused
    seconds: float  # wall time of the streaming phase
    bytes_out: int
    bytes_in: int
    mismatches: list[int] = field(default_factory=list)  # rows whose outputs differ from golden
    # Rows whose raw values the board scaled to other input codes than the host (an ESP32 parses a
    # value to a float32, which can cross a code boundary; its codes are then golden's for that
    # float32), and whose outputs are exactly golden's for the board's own codes: the integer network
    # agrees, the input value differs.
    input_rounding: list[int] = field(default_factory=list)


def model_crc32(data: bytes) -> str:
    """The CRC32 stored in a .enn file's last 4 bytes, as the board's `info` reports it."""
    return f"{int.from_bytes(data[-4:], 'little'):08x}"


LEAVE_OUT_LOCAL = "or leave out --model to compare with what the board runs"  # eval-device's option


def golden_model_for_board(
    client: BoardClient, info: dict[str, Any], local: str | None, otherwise: str = LEAVE_OUT_LOCAL
) -> QuantModel:
    """The model to compare against: LOCAL (checked against the board's CRC) or read back from the board.
    `otherwise`: the message's other way out, in the calling command's own options."""
    if info.get("model") is None:
        raise UserError(f"the board has no working model: {info.get('error')}")
    if local is not None:
        data = _read_local(local)
        if info.get("model_crc32") and model_crc32(data) != info["model_crc32"]:
            raise UserError(
                f"{local} is not the model on the board (CRC32 {model_crc32(data)} here, "
                f"{info['model_crc32']} on the board): deploy it with `edgenn deploy {local} --port "
                f"{client.port}`, {otherwise}"
            )
    else:
        data = client.read_model_file()
    try:
        return modelfile.from_bytes(data)
    except modelfile.ModelFormatError as exc:
        raise UserError(f"the model on the board ({info.get('model_file')}) is not readable: {exc}") from None


def _read_local(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None


def load_data_for(model: QuantModel, data: str, label: str | None) -> Dataset:
    """DATA's rows in the model's feature order. Without --label the label is the one column that
    is not one of the model's features."""
    if label is None:
        from edgenn.data import bundled_path

        table = read_table(bundled_path(data) or data)
        others = [h for h in table.header if h not in model.input_names]
        if others and any(f not in table.header for f in model.input_names):
            # columns that do not match the model: say that first, in evaluate's words
            load_for_model(data, model.input_names, others[-1], model.task, model.labels)
        if len(others) != 1:
            raise UserError(
                f"{data}: which column is the label? pass --label COLUMN "
                f"(columns that are not model features: {', '.join(others) or 'none'})"
            )
        label = others[0]
    dataset, _ = load_for_model(data, model.input_names, label, model.task, model.labels)
    return dataset


def run_rows(
    client: BoardClient,
    model: QuantModel,
    X: np.ndarray,
    codes: bool = False,
    progress: Callable[[int], None] | None = None,
    float_bits: int = 64,
) -> BoardRun:
    """Stream X through the board (pipelined). codes=True sends the golden input codes (`q` requests),
    which checks the integer network alone, independent of float parsing and input scaling.
    float_bits=32 (the board's `info` says so; ESP32) lets a mismatching row be explained by the
    board's single-precision input scaling if its own codes reproduce its outputs exactly."""
    U = golden.quantize_input(model, X)
    G = golden.forward_q(model, U)
    n, n_out = G.shape
    if codes:
        lines = ["q " + ",".join(str(int(v)) for v in row) for row in U]
        key = "q"
    else:
        lines = [format_features(row) for row in X]
        key = "scores"
    outputs = np.zeros((n, n_out), dtype=np.int64)
    pred = np.full(n, np.nan)
    latency = []
    errors: list[tuple[int, str]] = []
    out0, in0 = client.bytes_out, client.bytes_in
    start = time.perf_counter()
    for i, reply in enumerate(client.stream(lines)):
        if "error" in reply:
            errors.append((i, str(reply["error"])))
        else:
            row = reply.get(key)
            if isinstance(row, list) and len(row) == n_out:
                outputs[i] = row
            else:
                errors.append((i, f"reply without {key}: {reply}"))
            if model.task == "anomaly":  # the board's integer score (plain, q and x replies alike)
                pred[i] = reply.get("score", np.nan)
            elif codes:
                pred[i] = int(np.argmax(outputs[i])) if model.task == "classify" else np.nan
            elif model.task == "classify":
                pred[i] = reply.get("class", -1)
            else:
                pred[i] = reply.get("value", np.nan)
            latency.append(int(reply.get("us", 0)))
        if progress is not None:
            progress(i + 1)
    seconds = time.perf_counter() - start
    answered = np.ones(n, dtype=bool)
    answered[[r for r, _ in errors]] = False
    mismatches = [int(i) for i in np.flatnonzero(answered & np.any(outputs != G, axis=1))]
    rounding: list[int] = []
    if mismatches and not codes and float_bits == 32:
        rounding = explain_by_input_rounding(client, model, X, U, outputs, mismatches)
        mismatches = [i for i in mismatches if i not in set(rounding)]
    return BoardRun(
        n=n,
        outputs=outputs,
        golden_outputs=G.astype(np.int64),
        board_pred=pred,
        latency_us=np.asarray(latency, dtype=np.int64),
        errors=errors,
        seconds=seconds,
        bytes_out=client.bytes_out - out0,
        bytes_in=client.bytes_in - in0,
        mismatches=mismatches,
        input_rounding=rounding,
    )


def explain_by_input_rounding(
    client: BoardClient, model: QuantModel, X: np.ndarray, U: np.ndarray, outputs: np.ndarray, rows: list[int]
) -> list[int]:
    """The rows among `rows` whose difference from golden is only the board's float32 input scaling:
    asked again with an `x` request, the board's input codes differ from the host's, and golden's
    integer network on the board's codes gives exactly the board's outputs."""
    explained = []
    for i in rows:
        reply = client.request("x " + format_features(X[i]))
        board_codes, board_out = reply.get("x"), reply.get("q")
        if not (isinstance(board_codes, list) and isinstance(board_out, list)):
            continue
        codes = np.asarray(board_codes, dtype=np.int64)
        if codes.shape != U[i].shape or np.array_equal(codes, U[i]) or board_out != outputs[i].tolist():
            continue
        expected = golden.forward_q(model, codes.astype(np.uint8)[None, :])[0]
        if expected.tolist() == board_out:
            explained.append(i)
    return explained


def summarize(run: BoardRun, model: QuantModel, y: np.ndarray, X: np.ndarray) -> dict[str, Any]:
    """The numbers eval-device reports (all JSON-able)."""
    ok = run.n - len(run.errors)
    exact = ok - len(run.mismatches)
    result: dict[str, Any] = {
        "n": run.n,
        "answered": ok,
        "errors": len(run.errors),
        # Agreement: rows whose int8 outputs equal the golden model's byte for byte, given the input
        # codes the board computed (an error reply is a disagreement too). Anything below 1.0 is a bug.
        "agreement": exact / run.n if run.n else 0.0,
        "input_rounding_rows": len(run.input_rounding),
        "latency_us": _percentiles(run.latency_us),
        "rows_per_s": run.n / run.seconds if run.seconds > 0 else None,
        "seconds": run.seconds,
        "bytes_per_row": {
            "request": run.bytes_out / run.n if run.n else 0,
            "reply": run.bytes_in / run.n if run.n else 0,
        },
        "first_mismatches": [
            {"row": i, "board": run.outputs[i].tolist(), "golden": run.golden_outputs[i].tolist()}
            for i in run.mismatches[:5]
        ],
        "first_errors": [{"row": i, "error": e} for i, e in run.errors[:5]],
    }
    if model.task == "anomaly":
        result.update(_anomaly_summary(run, model, y, X))
    elif model.task == "classify":
        golden_pred = np.argmax(run.golden_outputs, axis=1)
        board_pred = run.board_pred
        result["accuracy"] = float(np.mean(board_pred == y)) if run.n else 0.0
        result["golden_accuracy"] = float(np.mean(golden_pred == y)) if run.n else 0.0
        result["class_agreement"] = float(np.mean(board_pred == golden_pred)) if run.n else 0.0
        result["labels"] = list(model.labels)
        result.update(classification_summary(y, board_pred, model.labels))  # refused rows left out
    else:
        answered = ~np.isnan(run.board_pred)
        err = run.board_pred[answered] - y[answered]
        result["accuracy"] = None  # not a classifier: see mae / rmse
        result["mae"] = float(np.mean(np.abs(err))) if err.size else None
        result["rmse"] = float(np.sqrt(np.mean(err**2))) if err.size else None
        golden_value = golden.dequantize(model, run.golden_outputs)[:, 0]
        result["golden_mae"] = float(np.mean(np.abs(golden_value - y))) if run.n else None
    return result


def _anomaly_summary(run: BoardRun, model: QuantModel, anomalous: np.ndarray | None, X: np.ndarray) -> dict:
    """Every score the board sent against golden's (a differing score is a disagreement, like a
    differing output byte), and the detection figures of the board's own scores when DATA is labelled."""
    from edgenn import anomaly
    from edgenn.metrics import anomaly_summary

    want = anomaly.golden_scores_q(model, golden.quantize_input(model, X)).astype(np.float64)
    got = run.board_pred
    same = got == want
    out: dict[str, Any] = {
        "accuracy": None,
        "score_agreement": float(np.mean(same)) if run.n else 0.0,
        "threshold": int(model.threshold),
        "flagged": int(np.sum(got > model.threshold)),
        "first_score_mismatches": [
            {"row": int(i), "board": None if np.isnan(got[i]) else int(got[i]), "golden": int(want[i])}
            for i in np.flatnonzero(~same)[:5]
        ],
    }
    wrong = set(run.mismatches) | {r for r, _ in run.errors} | set(np.flatnonzero(~same).tolist())
    exact = run.n - len(wrong)
    out["agreement"] = exact / run.n if run.n else 0.0
    if anomalous is not None and anomalous.any() and (~anomalous).any():
        answered = ~np.isnan(got)
        detection = anomaly_summary(got[answered], anomalous[answered], model.threshold)
        out.update({k: detection[k] for k in ("auc", "precision", "recall", "f1", "n_normal", "n_anomalous")})
    return out


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def report_lines(r: dict[str, Any]) -> list[str]:
    """The human-readable eval-device report for a `summarize` result (plus the keys eval-device adds)."""
    board = r["board"]
    where = f"{board['platform']}, MicroPython {board['micropython']}, {board['kernel']} kernel"
    lines = [
        f"model      {r['model']} ({r['network']}) on the board ({where})",
        f"data       {r['data']}: {r['n']} rows, {r['answered']} answered, {r['errors']} refused",
    ]
    if "score_agreement" in r:
        lines.append(
            f"scores     {100 * r['score_agreement']:.2f}% of rows: the board's anomaly score equals the "
            f"golden model's; {r['flagged']} over the threshold {r['threshold']}"
        )
        if "auc" in r:
            lines.append(
                f"detection  ROC AUC {r['auc']:.4f}, precision {100 * r['precision']:.1f}%, recall "
                f"{100 * r['recall']:.1f}% ({r['n_normal']} normal, {r['n_anomalous']} anomalous rows)"
            )
    elif r["accuracy"] is not None:
        acc, gold = 100 * r["accuracy"], 100 * r["golden_accuracy"]
        lines.append(f"accuracy   {acc:.2f}%  (golden model: {gold:.2f}%)")
    else:
        mae, gold = r["mae"], r["golden_mae"]
        lines.append(f"MAE        {mae:.4g}  (golden model: {gold:.4g}), RMSE {r['rmse']:.4g}")
    lines.append(f"agreement  {100 * r['agreement']:.2f}% of rows: int8 outputs equal the golden model's")
    if r.get("input_rounding_rows"):
        lines.append(
            f"input      {r['input_rounding_rows']} row(s) scaled to a neighbouring input code by the "
            "board's 32-bit floats (outputs equal golden's for the board's codes; --codes avoids it)"
        )
    if "confusion" in r:
        lines += ["confusion  (the board's classes)"]
        lines += ["  " + line for line in confusion_lines(r["confusion"], r["labels"])]
    lat = r["latency_us"]
    note = "  (virtual board: x86-64 timings, not an ESP32's)" if board["platform"] == "linux" else ""
    lines.append(f"latency    p50 {lat['p50']:.0f} us, p95 {lat['p95']:.0f} us on the board{note}")
    per_row = r["bytes_per_row"]
    lines.append(
        f"link       {r['rows_per_s']:.0f} rows/s ({per_row['request']:.0f} B request + "
        f"{per_row['reply']:.0f} B reply per row)"
    )
    return lines


def disagreement_lines(r: dict[str, Any]) -> list[str]:
    """The loud part: which rows differ from the golden model (shown when agreement < 100%)."""
    bad = r["n"] - round(r["agreement"] * r["n"])
    lines = [
        f"DISAGREEMENT: {bad} of {r['n']} rows differ from the golden model. The board must compute "
        "exactly what edgenn.golden computes: this is a bug, please report it with the rows below."
    ]
    for m in r["first_mismatches"]:
        lines.append(f"  row {m['row']}: board {m['board']}  golden {m['golden']}")
    for m in r.get("first_score_mismatches", []):
        lines.append(f"  row {m['row']}: board score {m['board']}  golden {m['golden']}")
    for e in r["first_errors"]:
        lines.append(f"  row {e['row']}: board refused it: {e['error']}")
    return lines
