"""Where the files that ship beside the Python package live: firmware/ (device code) and boards/.

An editable install (`make setup`) uses them in the source tree; a wheel install (`pip install .`)
carries them as data files under `<prefix>/share/edgenn/`; an environment variable overrides both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SOURCE_TREE = Path(__file__).resolve().parents[2]  # host_tools/edgenn/resources.py -> repository root


def shipped_dir(name: str, env_var: str) -> Path:
    """The directory `name` ("firmware" or "boards"): $env_var, else the source tree, else the install."""
    override = os.environ.get(env_var)
    if override:
        return Path(override)
    in_tree = SOURCE_TREE / name
    if in_tree.is_dir():
        return in_tree
    return Path(sys.prefix) / "share" / "edgenn" / name
