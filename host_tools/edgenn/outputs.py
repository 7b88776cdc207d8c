"""Where and how a command writes: `-o` checked before any slow work (a directory, a missing directory,
the name of a model of another kind, or one of the command's own inputs, which would be overwritten),
with one message for every command; and the one atomic writer every output goes through."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from edgenn.errors import UserError

MODEL_SUFFIXES = {
    ".npz": "a float model (`edgenn train`, `edgenn tune`)",
    ".enn": "an integer model (`edgenn quantize`)",
}
WRITES = {**MODEL_SUFFIXES, ".html": "an HTML page (`edgenn report`)", ".csv": "CSV rows (`edgenn record`)"}


def output_file(value: str | Path, suffix: str, inputs: Iterable[str | Path | None] = ()) -> Path:
    """-o VALUE for a file with `suffix` (a key of WRITES): refused, before any work, when it is a
        directory, its directory is missing, or it names a model of another kind (train -o model.enn, or
        report -o model.enn, which would overwrite a model with a page), or is one of `inputs` (the files
    the command reads: DATA, MODEL, ...; names that are not files, such as bundled datasets, are skipped)."""
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
    check_not_input(path, inputs)
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # follows symlinks on both sides: a link to DATA is DATA
    except OSError:
        return False  # one of them does not exist (a dataset name, a new output): not the same file


def check_not_input(output: Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output that is one of the command's input files (also through a symlink or a hard
    link): `train data.csv -o data.csv` would replace the user's data with a model."""
    for value in inputs:
        if value is not None and _same_file(output, Path(value)):
            raise UserError(f"-o {output}: that is the input file {value}; write the output to another name")


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    """Make a rename durable; not on every platform (Windows): the replace itself is still atomic."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(path: Path, exc: OSError) -> UserError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full"
    elif exc.errno == errno.EFBIG:
        why = "the file is larger than the system allows (file size limit)"
    else:
        why = exc.strerror or str(exc)
    return UserError(f"cannot write {path}: {why}; nothing was written (the old file, if any, is unchanged)")


class AtomicFile:
    """A new file beside `path` (mkstemp: a fresh name opened with O_EXCL, so a symlink planted at any
    name is never followed) that replaces `path` in one `os.replace` at `commit()`: readers see the old
    file or the whole new one, never half. `abandon()` (or an exception in a `with` block) removes it,
    so nothing is left behind. The new file gets `mode` (default 0666 minus the umask, as open() would
    give it; mkstemp makes 0600). A write error (disk full, file too large) is one-line UserError."""

    def __init__(self, path: str | Path, mode: int | None = None) -> None:
        self.path = Path(path)
        self.mode = mode
        directory = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise UserError(f"cannot write next to {self.path}: {exc.strerror}") from None
        self.tmp = Path(tmp)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as exc:
            self.abandon()
            raise _write_error(self.path, exc) from None

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            os.fchmod(self.file.fileno(), self.mode if self.mode is not None else 0o666 & ~umask())
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abandon()
            raise _write_error(self.path, exc) from None
        fsync_dir(self.path.parent)

    def abandon(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # a close that flushes into a full disk: the file goes anyway
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.abandon()


def write_atomic(path: str | Path, data: bytes | Callable[[BinaryIO], None]) -> int:
    """Write `data` (bytes, or a function that writes into a binary file) to `path` atomically with the
    usual mode; returns the size written. The one way every command writes an output file."""
    with AtomicFile(path) as out:
        if callable(data):
            try:
                data(out.file)
            except OSError as exc:
                raise _write_error(out.path, exc) from None
        else:
            out.write(data)
        size = out.file.tell()
    return size
