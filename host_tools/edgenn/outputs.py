"""Where a command may write: `-o` checked before any slow work (a directory, a missing directory, or
the name of a model of another kind, which would be overwritten), with one message for every command."""

from __future__ import annotations

from pathlib import Path

from edgenn.errors import UserError

MODEL_SUFFIXES = {
    ".npz": "a float model (`edgenn train`, `edgenn tune`)",
    ".enn": "an integer model (`edgenn quantize`)",
}
WRITES = {**MODEL_SUFFIXES, ".html": "an HTML page (`edgenn report`)", ".csv": "CSV rows (`edgenn record`)"}


def output_file(value: str | Path, suffix: str) -> Path:
    """-o VALUE for a file with `suffix` (a key of WRITES): refused, before any work, when it is a
    directory, its directory is missing, or it names a model of another kind (train -o model.enn, or
    report -o model.enn, which would overwrite a model with a page)."""
    path = Path(value)
    example = {".html": "report.html", ".csv": "data.csv"}.get(suffix, f"model{suffix}")
    if path.is_dir():
        raise UserError(f"-o {path}: is a directory; give a file name such as {path / example}")
    if not path.parent.is_dir():
        raise UserError(f"-o {path}: directory {path.parent} does not exist")
    wrong = path.suffix.lower()
    if wrong != suffix and wrong in MODEL_SUFFIXES:
        raise UserError(
            f"-o {path}: {wrong} is {MODEL_SUFFIXES[wrong]}, but this writes {WRITES[suffix]}; "
            f"name it {path.with_suffix(suffix)}"
        )
    return path
