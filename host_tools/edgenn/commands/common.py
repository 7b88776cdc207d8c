"""What every subcommand does the same way: print `--json` as one line with floats rounded to what the
figures mean (not `155.0999999999999`). Output paths are checked by edgenn.outputs."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

SIGNIFICANT = 6  # digits kept in --json floats: far below any figure's own noise


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
