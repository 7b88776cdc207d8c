"""The page: one self-contained HTML file (inline CSS, figures as data URIs, no scripts, no fonts to
fetch) that reads on screen and prints on paper."""

from __future__ import annotations

import html

import numpy as np

from edgenn import __version__, modelfile
from edgenn.metrics import anomaly_summary, confusion_matrix, regression_summary, roc_curve
from edgenn.report import figures
from edgenn.report.collect import ReportData
from edgenn.report.tables import Cell, disagreement_table, layer_table, num, pct, per_class_table, table

SECTIONS = [
    ("data", "Data"),
    ("training", "Training"),
    ("results", "Results"),
    ("quantization", "Quantization"),
    ("board", "Board"),
]

CSS = """
:root { --fg: #1a1a1a; --muted: #666; --line: #ddd; --bad: #b00020; --ok: #1b7a1b; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: #fff; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-top: 8px; border-top: 2px solid var(--fg); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p { margin: 6px 0; }
.sub { color: var(--muted); margin-bottom: 14px; }
nav { margin: 10px 0 4px; font-size: 13px; }
nav a { margin-right: 14px; color: #0b57d0; text-decoration: none; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.card .v { font-size: 20px; font-weight: 600; }
.card .k { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; }
table.facts td:first-child { color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: var(--bad); font-weight: 600; }
.ok { color: var(--ok); }
.note { color: var(--muted); font-size: 13px; }
.warn { border-left: 4px solid var(--bad); padding: 4px 10px; background: #fff4f4; }
img.fig { max-width: 100%; height: auto; display: block; margin: 8px 0; }
figure { margin: 0; break-inside: avoid; }
.scroll { overflow-x: auto; }
code { font-size: 12.5px; background: #f4f4f4; padding: 1px 4px; border-radius: 3px; }
@media print {
  body { font-size: 11px; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  h2 { break-before: auto; break-after: avoid; }
  table, figure, .cards { break-inside: avoid; }
  .scroll { overflow: visible; }
}
"""


def render(report: ReportData) -> str:
    """The whole page as one string."""
    parts = [
        _header(report),
        _data_section(report),
        _training_section(report),
        _results_section(report),
        _quantization_section(report),
        _board_section(report),
        f'<p class="note">Made by edgenn {html.escape(__version__)} (<code>edgenn report</code>).</p>',
    ]
    title = html.escape(f"edgenn report: {report.title}")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><main>{''.join(parts)}</main></body></html>\n"
    )


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{html.escape(title)}</h2>{body}</section>'


def _p(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def _card(value: str, key: str, cls: str = "") -> str:
    v, k = html.escape(value), html.escape(key)
    return f'<div class="card"><div class="v {cls}">{v}</div><div class="k">{k}</div></div>'


def _scores(report: ReportData) -> dict[str, dict]:
    y = report.dataset.y
    out = {}
    for name, pred in report.predictions.items():
        if report.task == "classify":
            out[name] = {"accuracy": float(np.mean(pred == y)), "correct": int(np.sum(pred == y))}
        else:
            ok = np.isfinite(pred)
            out[name] = regression_summary(pred[ok], y[ok])
    return out


def _header(r: ReportData) -> str:
    qm = r.qm
    arch = modelfile.describe(qm) if qm is not None else ""
    kinds = " + ".join(r.predictions if r.anomaly is None else r.anomaly.scores)
    sub = (
        f"{r.task} model {r.model_path} ({arch}); data {r.data_name}: {r.dataset.n_rows} rows; "
        f"compared: {kinds}"
    )
    cards = _anomaly_cards(r) if r.anomaly is not None else []
    for name, s in _scores(r).items():
        if "accuracy" in s:
            cards.append(_card(f"{100 * s['accuracy']:.2f}%", f"{name} accuracy"))
        else:
            cards.append(_card(f"{s['rmse']:.4g}", f"{name} RMSE (MAE {s['mae']:.4g})"))
    if "float" in r.predictions:
        f, q = r.predictions["float"], r.predictions["integer"]
        if r.task == "classify":
            agree = float(np.mean(f == q))
            cards.append(_card(f"{100 * agree:.2f}%", "integer = float class", "" if agree == 1 else "bad"))
    if r.board is not None:
        agree = r.board.summary["agreement"]
        cards.append(_card(f"{100 * agree:.2f}%", "board = golden outputs", "" if agree == 1 else "bad"))
    if qm is not None:
        cards.append(_card(f"{len(modelfile.to_bytes(qm))} B", ".enn model size"))
    nav = "".join(f'<a href="#{k}">{html.escape(t)}</a>' for k, t in SECTIONS)
    notes = "".join(_p(n, "note") for n in r.notes)
    return (
        f"<header><h1>{html.escape(r.title)}</h1>{_p(sub, 'sub')}<nav>{nav}</nav>"
        f'<div class="cards">{"".join(cards)}</div>{notes}</header>'
    )


# ---------------------------------------------------------------------------------------------------


def _data_section(r: ReportData) -> str:
    ds = r.dataset
    body = [_p(f"{ds.n_rows} rows, {ds.n_features} columns besides the label {ds.label_column!r}.")]
    if r.task == "classify":
        counts = np.bincount(ds.y, minlength=len(r.labels))
        share = ", ".join(f"{label} {c} ({100 * c / ds.n_rows:.0f}%)" for label, c in zip(r.labels, counts))
        ratio = counts.max() / max(1, counts.min())
        body.append(
            _p(
                f"Class balance: {share}."
                + (f" Largest/smallest class: {ratio:.1f}x." if ratio > 1.5 else "")
            )
        )
        body.append(f"<figure>{figures.class_balance(r.labels, counts)}</figure>")
    elif r.anomaly is not None:
        body.append(_p(_anomaly_rows_text(r)))
    else:
        y = ds.y
        body.append(
            _p(
                f"Target {ds.label_column}: min {y.min():.4g}, mean {y.mean():.4g}, max {y.max():.4g}, "
                f"std {y.std():.4g}."
            )
        )
    if r.calibrated_range is not None and r.inputs is not None:
        cal_lo, cal_hi = r.calibrated_range
        X = r.inputs  # what the input scaling sees: the raw features, or the front end's features
        lo, hi = X.min(axis=0), X.max(axis=0)
        outside = (X < cal_lo) | (X > cal_hi)
        rows_out = outside.any(axis=1)
        body.append("<h3>Feature ranges: seen in DATA vs calibrated</h3>")
        body.append(
            _p(
                "The board maps each feature onto 256 input codes over the range the model was "
                "calibrated on; a value outside that range saturates at code 0 or 255 (the network sees "
                "the edge of the range instead of the value)."
                + (
                    " With a sensor front end these are its features of each window."
                    if r.qm and r.qm.frontend
                    else ""
                )
            )
        )
        body.append(f"<figure>{figures.feature_ranges(r.input_names, lo, hi, cal_lo, cal_hi)}</figure>")
        bad = np.flatnonzero(outside.any(axis=0))
        if len(bad):
            body.append(
                _p(
                    f"{len(bad)} feature(s) leave the calibrated range; {int(rows_out.sum())} of "
                    f"{ds.n_rows} rows have at least one saturating input.",
                    "warn",
                )
            )
            rows = [
                [
                    r.input_names[j],
                    num(lo[j]),
                    num(hi[j]),
                    num(cal_lo[j]),
                    num(cal_hi[j]),
                    int(outside[:, j].sum()),
                ]
                for j in bad
            ]
            body.append(
                table(
                    ["feature", "seen min", "seen max", "calibrated min", "calibrated max", "rows outside"],
                    rows,
                )
            )
        else:
            body.append(
                _p("Every feature value in DATA lies inside the calibrated range: no input saturates.", "ok")
            )
    return _section("data", "Data", "".join(body))


def _metric_name(name: str | None) -> str:
    return {"rmse": "RMSE", "mae": "MAE"}.get(str(name), str(name))


def _training_section(r: ReportData) -> str:
    body = []
    if r.fm is None:
        body.append(
            _p("No float model given (pass --float MODEL.npz): training history is in the .npz.", "note")
        )
        return _section("training", "Training", "".join(body))
    meta = r.fm.meta
    config = meta.get("config") or {}
    facts = []
    if config and r.task == "anomaly":  # train --task anomaly records the shape and the seed
        facts.append(f"hidden {config.get('hidden')}, {config.get('activation')}, seed {config.get('seed')}")
        if "epochs" in meta:
            facts.append(f"final fit on every normal row: {meta['epochs']} epochs")
    elif config:
        lr = config.get("lr") or "default"
        facts.append(
            f"hidden {config.get('hidden')}, {config.get('activation')}, optimizer {config.get('optimizer')} "
            f"(learning rate {lr}), batch {config.get('batch_size')}, seed {config.get('seed')}"
        )
    if meta.get("cv"):  # cross-validation chose the epochs; the saved weights ran exactly that many
        facts.append(f"final fit on every row: {meta.get('epochs_run')} epochs")
    elif "epochs_run" in meta:
        facts.append(
            f"{meta['epochs_run']} epochs run, best validation epoch {meta.get('best_epoch')} "
            "(its weights are the ones saved)"
        )
    if "train_seconds" in meta:
        facts.append(f"{meta['train_seconds']:.2f} s of training")
    if facts:
        body.append(_p("; ".join(facts) + "."))
    cv = meta.get("cv")
    if cv:
        scale = 100 if r.task == "classify" else 1
        unit = "%" if r.task == "classify" else ""
        folds = ", ".join(f"{scale * v:.1f}{unit}" for v in cv.get("folds", []))
        body.append(
            _p(
                f"{cv.get('k')}-fold cross-validation {_metric_name(cv.get('metric'))}: "
                f"{scale * cv['mean']:.2f}{unit} ± {scale * cv['std']:.2f}{unit} (folds: {folds}); "
                f"the final fit on every row ran {cv.get('epochs')} epochs, the median of the folds' best "
                f"epochs {cv.get('best_epochs')}."
            )
        )
    info = meta.get("anomaly")
    if info:
        body.append(_p(_threshold_text(info)))
        oof = info.get("oof_scores")
        if oof:  # where the threshold comes from: the normal rows as a new normal row would score
            panel = {"out-of-fold (training)": (np.asarray(oof, np.float64), None, float(info["threshold"]))}
            body.append(f"<figure>{figures.score_histograms(panel)}</figure>")
    if r.histories:
        metric = "accuracy" if r.task == "classify" else "RMSE (standardized units)"
        body.append(f"<figure>{figures.training_curves(r.histories, metric)}</figure>")
        body.append(_p(f"Runs: {', '.join(r.histories)}.", "note"))
    elif r.task != "anomaly":
        body.append(
            _p("This model has no per-epoch training history (it was not trained by `edgenn train`).", "warn")
        )
    metrics = meta.get("metrics") or {}
    if metrics:
        key = "accuracy" if r.task == "classify" else "rmse"
        rows = [
            [part, m.get("n", "-"), pct(m.get(key)) if key == "accuracy" else num(m.get(key))]
            for part, m in metrics.items()
        ]
        body.append(_p("Scores `edgenn train` recorded for the float model, by the rows it used:"))
        body.append(table(["rows", "count", key], rows))
    return _section("training", "Training", "".join(body))


def _results_section(r: ReportData) -> str:
    y = r.dataset.y
    preds = r.predictions
    body = []
    scores = _scores(r)
    if r.anomaly is not None:
        body.append(_anomaly_results(r))
    elif r.task == "classify":
        rows = [[name, s["correct"], len(y), pct(s["accuracy"], 2)] for name, s in scores.items()]
        body.append(table(["model", "correct", "rows", "accuracy"], rows))
        body.append(
            _p(
                "Confusion matrices: rows are the true class, columns the predicted one; "
                "colour is the share of the row, numbers are rows.",
                "note",
            )
        )
        matrices = {name: confusion_matrix(y, p, len(r.labels)) for name, p in preds.items()}
        body.append(f'<figure class="scroll">{figures.confusion_matrices(matrices, r.labels)}</figure>')
        body.append("<h3>Per class</h3>")
        body.append(f'<div class="scroll">{per_class_table(y, preds, r.labels)}</div>')
        if "float" in preds:
            html_table, count = disagreement_table(y, preds, r.labels)
            body.append("<h3>Rows where the integer and float models disagree</h3>")
            if count:
                body.append(_p(f"{count} of {len(y)} rows get another class from the integer model:"))
                body.append(html_table)
            else:
                body.append(
                    _p("None: the integer model predicts the float model's class on every row.", "ok")
                )
    else:
        rows = [[name, num(s["rmse"]), num(s["mae"])] for name, s in scores.items()]
        body.append(table(["model", "RMSE", "MAE"], rows))
        body.append(f"<figure>{figures.regression_plots(y, preds, r.dataset.label_column)}</figure>")
        if "float" in preds:
            diff = np.abs(preds["integer"] - preds["float"])
            order = np.argsort(-diff)[:10]
            body.append("<h3>Rows where the integer model is furthest from the float model</h3>")
            fmt = ".2f" if np.abs(y).max() >= 1 else ".4g"  # one format per column, like a spreadsheet
            rows2: list[list[Cell]] = [
                [
                    int(i),
                    num(y[i], fmt),
                    num(preds["float"][i], fmt),
                    num(preds["integer"][i], fmt),
                    num(diff[i], fmt),
                ]
                for i in order
            ]
            body.append(table(["row", "true", "float", "integer", "|integer - float|"], rows2))
    return _section("results", "Results", "".join(body))


def _quantization_section(r: ReportData) -> str:
    body = [_p(f"Integer model: {r.qm_source}.")]
    if r.layers is None:
        body.append(
            _p(
                "The per-layer error needs the float model beside the integer one: pass --float MODEL.npz.",
                "note",
            )
        )
        return _section("quantization", "Quantization", "".join(body))
    body.append(
        _p(
            "Each tensor of the integer pipeline, mapped back to real units with the scales the quantizer "
            "chose, against the float model's on every row of DATA. SNR = 10 log10(signal power / error "
            "power): 20 dB is an error of 10% of the signal's RMS, 40 dB of 1%. Clipped values hit the end "
            "of their code range by more than one code (input outside the calibrated range, ReLU above "
            "its top code, pre-activations beyond the output's int8 range, or beyond a sigmoid/tanh "
            "table's range where the function has not flattened out yet)."
        )
    )
    body.append(layer_table(r.layers))
    rows = []
    for e in r.layers:
        if e.name == "output":
            span = (-128, 127)
        else:
            span = (0, 255)
        rows.append((e.name, e.weights, e.codes, span))
    body.append(f"<figure>{figures.layer_histograms(rows)}</figure>")
    return _section("quantization", "Quantization", "".join(body))


def _board_section(r: ReportData) -> str:
    body = []
    b = r.board
    if b is None:
        body.append(
            _p(
                "Not measured: pass --port PORT: a board (or `edgenn vboard`) serving the model "
                "`edgenn deploy` put there.",
                "note",
            )
        )
    else:
        s, info = b.summary, b.info
        virtual = info.get("platform") == "linux"
        lat = s["latency_us"]
        rows: list[list[Cell]] = [
            [
                "board",
                f"{info.get('platform')}, MicroPython {info.get('micropython')}"
                + (" (virtual board)" if virtual else ""),
            ],
            ["kernel", str(info.get("kernel"))],
            ["model on the board", f"{info.get('model_file')} (CRC32 {info.get('model_crc32')})"],
            ["rows answered", f"{s['answered']} of {s['n']} ({s['errors']} refused)"],
            [
                "agreement with golden",
                (
                    f"{100 * s['agreement']:.2f}% of rows: int8 outputs byte for byte",
                    "ok" if s["agreement"] == 1 else "bad",
                ),
            ],
            [
                "latency p50 / p95 / max",
                f"{lat['p50']:.0f} / {lat['p95']:.0f} / {lat['max']:.0f} us (measured on the board)",
            ],
            ["heap free", f"{info.get('heap_free')} B (heap in use {info.get('heap_alloc')} B)"],
            ["link", f"{s['rows_per_s']:.0f} rows/s over the serial line"],
        ]
        if "score_agreement" in s:
            rows.append(
                [
                    "anomaly scores equal to golden",
                    (
                        f"{100 * s['score_agreement']:.2f}% of rows",
                        "ok" if s["score_agreement"] == 1 else "bad",
                    ),
                ]
            )
        if s.get("input_rounding_rows"):
            rows.append(
                [
                    "input rounding",
                    f"{s['input_rounding_rows']} rows scaled to a neighbouring code by 32-bit floats",
                ]
            )
        body.append(table(None, rows, "facts"))
        if virtual:
            body.append(
                _p(
                    "Virtual board: these are x86-64 timings of the MicroPython unix port, not an ESP32's.",
                    "warn",
                )
            )
        if len(b.latency_us):
            body.append(f"<figure>{figures.latency_histogram(b.latency_us)}</figure>")
        if s["agreement"] < 1:
            mism = "; ".join(
                [f"row {m['row']}: board {m['board']} golden {m['golden']}" for m in s["first_mismatches"]]
                + [  # an anomaly model: the scores the board sent that differ from golden's
                    f"row {m['row']}: board score {m['board']} golden {m['golden']}"
                    for m in s.get("first_score_mismatches", [])
                ]
            )
            body.append(_p(f"DISAGREEMENT with the golden model (a bug): {mism}", "warn"))
    body.append(_fit(r))
    return _section("board", "Board", "".join(body))


def _fit(r: ReportData) -> str:
    f = r.fit
    if f is None:
        return "<h3>Memory fit</h3>" + _p(
            "Pass --board B (e.g. esp32) to check the model against a board's heap and flash.", "note"
        )
    fit = f.fit

    def verdict(need: int, have: int) -> Cell:
        if need > have:
            return ("does not fit", "bad")
        share = 100 * need / have
        return (f"{share:.0f}% used" if share >= 1 else "under 1% used", "ok")

    rows: list[list[Cell]] = [
        [
            "model file in flash",
            f"{fit.flash_needed} B ({fit.model_bytes} B file in 4 KB blocks)",
            f"{fit.flash_free} B filesystem",
            verdict(fit.flash_needed, fit.flash_free),
        ],
        [
            "heap: runtime + the model's arrays + loading + working memory",
            f"{fit.heap_needed} B",
            f"{fit.heap_free} B",
            verdict(fit.heap_needed, fit.heap_free),
        ],
        [
            "layer blocks, together in one free block (one GC area at most)",
            f"{fit.block_needed} B",
            f"{fit.largest_block} B largest free block",
            verdict(fit.block_needed, fit.largest_block),
        ],
    ]
    if fit.exec_needed is not None and fit.exec_free is not None:
        rows.append(
            [
                "executable RAM: the runtime's viper/asm machine code (outside the GC heap)",
                f"{fit.exec_needed} B",
                f"{fit.exec_free} B",
                verdict(fit.exec_needed, fit.exec_free),
            ]
        )
    body = [f"<h3>Memory fit on {html.escape(fit.board)}</h3>", table(["", "needs", "board has", ""], rows)]
    body.append(_p(fit.summary()[0].upper() + fit.summary()[1:] + ".", "ok" if fit.fits else "warn"))
    body.append(
        _p(
            "edgenn.fit's arithmetic (what `edgenn deploy` checks before it copies anything; deploy then "
            "checks the model on the board itself): the runtime's heap (measured on the virtual board), "
            "the model's arrays, loading and working memory, the layer blocks together in the heap's "
            "largest free block, and the kernels' machine code in executable RAM; the board profile's "
            "figures (each with its source in boards/*.json), not a measurement of this board.",
            "note",
        )
    )
    e = f.estimate
    if e:
        body.append("<h3>Estimated latency (the board's own machine code, emulated)</h3>")
        body.append(
            table(
                None,
                [
                    ["estimated time per inference", f"{e['us']} us at {e['clock_mhz']} MHz ({e['core']})"],
                    ["kernel", f"{e['kernel']} ({e['arch']})"],
                    ["multiply-accumulates", str(e["macs"])],
                    [
                        "kernel instructions",
                        f"{e['kernel_instructions']} ({e['instructions_per_mac']} per MAC)",
                    ],
                ],
                "facts",
            )
        )
        body.append(
            _p(
                "From `edgenn estimate`: the instructions are counted exactly in an emulator; the time comes "
                "from a per-instruction-class cycle model (an estimate). Not counted: "
                f"{e.get('uncounted', '')}",
                "note",
            )
        )
    else:
        body.append(_p(f"Estimated latency: {f.estimate_note}.", "note"))
    return "".join(body)


# ---------------------------------------------------------------------------------------------------
# Anomaly models: scores, not classes (edgenn.anomaly)


def _anomaly_summaries(r: ReportData) -> dict[str, dict]:
    """Per source: anomaly_summary (AUC, precision, recall, F1, confusion) with labels, else the count
    over the threshold."""
    a = r.anomaly
    assert a is not None
    out = {}
    for name, scores in a.scores.items():
        t = a.thresholds[name]
        if a.anomalous is not None:
            ok = np.isfinite(scores)  # the board's refused rows have no score
            out[name] = anomaly_summary(scores[ok], a.anomalous[ok], t)
        else:
            out[name] = {"threshold": t, "flagged": int(np.sum(scores > t)), "auc": None}
    return out


def _threshold(source: str, t: float) -> Cell:
    """The integer threshold is an exact integer (the board compares S > T); the float one a float."""
    return (str(int(t)), "num") if source != "float" else num(t, ".6g")


def _anomaly_cards(r: ReportData) -> list[str]:
    cards = []
    n = r.dataset.n_rows
    for name, s in _anomaly_summaries(r).items():
        if s["auc"] is not None:
            cards.append(_card(f"{s['auc']:.3f}", f"{name} ROC AUC"))
        cards.append(_card(f"{s['flagged']} of {n}", f"{name}: rows over the threshold"))
    return cards


def _anomaly_rows_text(r: ReportData) -> str:
    a = r.anomaly
    assert a is not None
    n = r.dataset.n_rows
    if a.anomalous is None:
        return (
            f"No label column: the {n} rows are scored without knowing which are normal (pass --label COL "
            "--normal V for the ROC curve, precision and recall)."
        )
    k = int(a.anomalous.sum())
    kinds = ""
    if a.row_labels is not None:
        values, counts = np.unique(np.asarray(a.row_labels)[a.anomalous], return_counts=True)
        if len(values):
            kinds = " (" + ", ".join(f"{v} {c}" for v, c in zip(values, counts)) + ")"
    normal = ", ".join(a.normal or [])
    return (
        f"Label column {r.dataset.label_column!r}: {n - k} normal rows ({normal}) and {k} anomalous "
        f"rows{kinds}."
    )


def _threshold_text(info: dict) -> str:
    text = (
        f"Autoencoder trained on {info.get('n_normal')} normal rows; threshold {info.get('threshold'):.4g}: "
        f"the {info.get('threshold_quantile')} quantile of their out-of-fold scores "
        f"({info.get('folds')}-fold cross-validation, each row scored by a model that did not see it)."
    )
    estimate = info.get("estimate")
    if estimate:
        text += (
            f" Estimate at training on the {estimate['n_anomalous']} other rows of its data (never fitted): "
            f"ROC AUC {estimate['auc']:.3f}, {estimate['flagged']} over the threshold."
        )
    return text


def _anomaly_results(r: ReportData) -> str:
    a = r.anomaly
    assert a is not None
    summaries = _anomaly_summaries(r)
    body = []
    if a.anomalous is not None:
        rows: list[list[Cell]] = [
            [
                name,
                num(s["auc"], ".4f"),
                _threshold(name, a.thresholds[name]),
                pct(s["precision"]),
                pct(s["recall"]),
                num(s["f1"], ".3f"),
                f"{s['confusion'][0][1]} of {s['n_normal']}",
                f"{s['confusion'][1][1]} of {s['n_anomalous']}",
            ]
            for name, s in summaries.items()
        ]
        header = ["model", "ROC AUC", "threshold", "precision", "recall", "F1", "normal flagged"]
        body.append(table([*header, "anomalous flagged"], rows))
        body.append(
            _p(
                "Precision, recall and F1 of the flag (score over the model's stored threshold); the ROC AUC "
                "does not depend on the threshold: it is the chance that an anomalous row scores higher "
                "than a normal one.",
                "note",
            )
        )
    else:
        rows = [[name, _threshold(name, a.thresholds[name]), s["flagged"]] for name, s in summaries.items()]
        body.append(table(["model", "threshold", "rows over it"], rows))
    panels = {}
    same = "board" in a.scores and np.array_equal(a.scores["board"], a.scores["integer"])
    for name, scores in a.scores.items():
        if name == "board" and same:
            continue  # the integer panel already shows them
        ok = np.isfinite(scores)
        anomalous = None if a.anomalous is None else scores[a.anomalous & ok]
        normal = scores[ok] if a.anomalous is None else scores[~a.anomalous & ok]
        panels[name] = (normal, anomalous, a.thresholds[name])
    body.append("<h3>Score distribution</h3>")
    body.append(f'<figure class="scroll">{figures.score_histograms(panels)}</figure>')
    if same:
        body.append(_p("The board's scores equal the integer model's on every row (drawn once).", "note"))
    if a.anomalous is not None and a.anomalous.any() and (~a.anomalous).any():
        curves = {}
        for name, scores in a.scores.items():
            ok = np.isfinite(scores)
            fpr, tpr, _ = roc_curve(scores[ok], a.anomalous[ok])
            s = summaries[name]
            at = (
                s["confusion"][0][1] / max(1, s["n_normal"]),
                s["confusion"][1][1] / max(1, s["n_anomalous"]),
            )
            curves[name] = (fpr, tpr, float(s["auc"]), at)
        body.append("<h3>ROC curve</h3>")
        body.append(f"<figure>{figures.roc_curves(curves)}</figure>")
    body.append("<h3>The rows with the highest scores</h3>")
    body.append(_top_rows(r))
    return "".join(body)


def _top_rows(r: ReportData, limit: int = 20) -> str:
    """The highest integer scores, with the label, the flag and the inputs that contribute the most."""
    a = r.anomaly
    assert a is not None
    s_int = a.scores["integer"]
    order = np.argsort(-s_int, kind="stable")[:limit]
    t = a.thresholds["integer"]
    names = r.input_names or [f"x{j}" for j in range(a.terms.shape[1])]
    header = ["row", "integer score", "flag"]
    if "float" in a.scores:
        header.insert(2, "float score")
    if a.row_labels is not None:
        header.insert(1, r.dataset.label_column)
    rows = []
    for i in order:
        share = a.terms[i] / max(1, int(a.terms[i].sum()))
        top = np.argsort(-a.terms[i], kind="stable")[:3]
        why = ", ".join(f"{names[j]} {100 * share[j]:.0f}%" for j in top if a.terms[i, j] > 0)
        row: list[Cell] = [int(i), int(s_int[i])]
        if "float" in a.scores:
            row.append(num(a.scores["float"][i], ".4g"))
        flagged = s_int[i] > t
        row.append(("anomalous", "bad") if flagged else ("normal", "ok"))
        if a.row_labels is not None:
            truth_cls = "bad" if a.anomalous is not None and a.anomalous[i] else ""
            row.insert(1, (a.row_labels[i], truth_cls))
        row.append(why or "-")
        rows.append(row)
    intro = _p(
        f"The {len(order)} rows with the highest integer scores (what the board computes), and the inputs "
        "with the largest terms of that score (reconstruction error plus deviation from the normal mean, "
        "as a share of the score): where to look first.",
        "note",
    )
    return intro + f'<div class="scroll">{table([*header, "largest terms"], rows)}</div>'
