"""The trained float network and its `.npz` file: what `train` writes and `quantize`/`evaluate` read.

A model is a stack of dense layers `y = act(x @ W + b)` applied to standardized inputs
`(x_raw - input_mean) / input_std`. Hidden layers use one of ACTIVATIONS; the last layer is
always `identity` (logits for classify, standardized targets for regress, the reconstruction of the
standardized inputs for anomaly). Regression outputs are de-standardized with `target_mean + target_std * y`.
An anomaly model also carries its score's per-feature weights and its threshold (edgenn.anomaly).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgenn import frontend
from edgenn.errors import UserError
from edgenn.frontend import FrontEnd
from edgenn.outputs import write_atomic

ACTIVATIONS = ("relu", "sigmoid", "tanh")
TASKS = ("classify", "regress", "anomaly")
NPZ_FORMAT = 1


def activate(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free form of 1 / (1 + exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "identity":
        return z
    raise ValueError(f"unknown activation {name!r}")


@dataclass
class FloatModel:
    weights: list[np.ndarray]  # W[l] has shape (n_in, n_out)
    biases: list[np.ndarray]  # b[l] has shape (n_out,)
    activations: list[str]  # one per layer; the last is "identity"
    task: str  # "classify" | "regress"
    labels: list[str]  # class names (classify) or target names (regress), one per output
    feature_names: list[str]
    input_mean: np.ndarray
    input_std: np.ndarray
    target_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))  # regress only
    target_std: np.ndarray = field(default_factory=lambda: np.ones(0))
    meta: dict = field(default_factory=dict)  # dataset, seed, history, timings: informational
    # Raw windows -> features before the network (feature_names then name the raw columns).
    frontend: FrontEnd | None = None
    # anomaly only (edgenn.anomaly): s = sum_d score_weights[d] * e_d**2 + deviation_weights[d] * z_d**2
    score_weights: np.ndarray | None = None
    deviation_weights: np.ndarray | None = None
    threshold: float | None = None  # s > threshold: anomalous

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.weights[-1].shape[1])

    @property
    def layer_sizes(self) -> list[int]:
        return [self.n_inputs] + [int(w.shape[1]) for w in self.weights]

    @property
    def input_names(self) -> list[str]:
        """The columns a data row holds (raw window values with a front end)."""
        return list(self.feature_names)

    def features(self, x_raw: np.ndarray) -> np.ndarray:
        """What the network's input scaling sees: the float front end's features, or x_raw itself."""
        if self.frontend is None:
            return np.asarray(x_raw, dtype=np.float64)
        return frontend.features_float(self.frontend, x_raw)

    def standardize(self, x_raw: np.ndarray) -> np.ndarray:
        return (self.features(x_raw) - self.input_mean) / self.input_std

    def forward_layers(self, x_raw: np.ndarray) -> list[np.ndarray]:
        """Pre-activations and activations of every layer: [(z_0, a_0), ...] for calibration."""
        a = self.standardize(x_raw)
        out = []
        for w, b, act in zip(self.weights, self.biases, self.activations):
            z = a @ w + b
            a = activate(act, z)
            out.append((z, a))
        return out

    def forward(self, x_raw: np.ndarray) -> np.ndarray:
        """Raw features -> output scores (logits, or standardized regression targets)."""
        return self.forward_layers(x_raw)[-1][1]

    def predict(self, x_raw: np.ndarray) -> np.ndarray:
        """Class ids (classify) or de-standardized values, shape (n, n_outputs) (regress)."""
        y = self.forward(x_raw)
        if self.task == "classify":
            return np.argmax(y, axis=1)
        return self.target_mean + self.target_std * y

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"W{i}"] = np.asarray(w, dtype=np.float64)
            arrays[f"b{i}"] = np.asarray(b, dtype=np.float64)
        header = {
            "format": "edgenn-float",
            "version": NPZ_FORMAT,
            "n_layers": len(self.weights),
            "activations": self.activations,
            "task": self.task,
            "labels": self.labels,
            "feature_names": self.feature_names,
            "meta": self.meta,
        }
        if self.frontend is not None:
            header["frontend"] = self.frontend.to_dict()
        if self.task == "anomaly":
            header["threshold"] = float(self.threshold)
            arrays["score_weights"] = np.asarray(self.score_weights, dtype=np.float64)
            arrays["deviation_weights"] = np.asarray(self.deviation_weights, dtype=np.float64)
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        arrays["input_mean"] = np.asarray(self.input_mean, dtype=np.float64)
        arrays["input_std"] = np.asarray(self.input_std, dtype=np.float64)
        arrays["target_mean"] = np.asarray(self.target_mean, dtype=np.float64)
        arrays["target_std"] = np.asarray(self.target_std, dtype=np.float64)
        # a file object: np.savez appends .npz to bare names; write_atomic never leaves half a model
        write_atomic(path, lambda fh: np.savez(fh, **arrays))

    @classmethod
    def load(cls, path: str | Path) -> FloatModel:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: no such file (train one with `edgenn train`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                if header.get("format") != "edgenn-float":
                    raise UserError(f"{path}: not an edgenn float model (.npz written by `edgenn train`)")
                if header.get("version") != NPZ_FORMAT:
                    raise UserError(
                        f"{path}: float model format version {header.get('version')} is not supported "
                        f"(this edgenn reads version {NPZ_FORMAT}); retrain or upgrade edgenn"
                    )
                n = int(header["n_layers"])
                return cls(
                    weights=[z[f"W{i}"] for i in range(n)],
                    biases=[z[f"b{i}"] for i in range(n)],
                    activations=list(header["activations"]),
                    task=header["task"],
                    labels=list(header["labels"]),
                    feature_names=list(header["feature_names"]),
                    input_mean=z["input_mean"],
                    input_std=z["input_std"],
                    target_mean=z["target_mean"],
                    target_std=z["target_std"],
                    meta=header.get("meta", {}),
                    frontend=FrontEnd.from_dict(header["frontend"]) if header.get("frontend") else None,
                    score_weights=z["score_weights"] if header["task"] == "anomaly" else None,
                    deviation_weights=z["deviation_weights"] if header["task"] == "anomaly" else None,
                    threshold=float(header["threshold"]) if header["task"] == "anomaly" else None,
                )
        except UserError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: not a readable edgenn float model ({exc})") from None
