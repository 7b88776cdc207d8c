"""What every subcommand does the same way: check an output path before any slow work, and print
`--json` as one line with floats rounded to what the figures mean (not `155.0999999999999`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.errors import UserError

SIGNIFICANT = 6  # digits kept in --json floats: far below any figure's own noise
MODEL_SUFFIXES = {
    ".npz": "a float model (`edgenn train`, `edgenn tune`)",
    ".enn": "an integer model (`edgenn quantize`)",
}


def output_file(value: str, suffix: str) -> Path:
    """-o VALUE for a file with `suffix` (".npz", ".enn", ...): refused, before any work, when it is a
    directory, its directory is missing, or it names the other kind of model (train -o model.enn)."""
    path = Path(value)
    example = f"model{suffix}"
    if path.is_dir():
        raise UserError(f"-o {path}: is a directory; give a file name such as {path / example}")
    if not path.parent.is_dir():
        raise UserError(f"-o {path}: directory {path.parent} does not exist")
    wrong = path.suffix.lower()
    if wrong != suffix and wrong in MODEL_SUFFIXES:
        raise UserError(
            f"-o {path}: {wrong} is {MODEL_SUFFIXES[wrong]}, but this writes {MODEL_SUFFIXES[suffix]}; "
            f"name it {path.with_suffix(suffix)}"
        )
    return path


def rounded(value: Any) -> Any:
    """`value` with every float (NumPy's too) kept to SIGNIFICANT significant digits; NaN/inf become
    null (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return None
        return float(f"{value:.{SIGNIFICANT}g}") if abs(value) < 10**SIGNIFICANT else round(value, 1)
    return value


def print_json(obj: dict) -> None:
    """The one JSON object a `--json` command prints on stdout."""
    print(json.dumps(rounded(obj)))
