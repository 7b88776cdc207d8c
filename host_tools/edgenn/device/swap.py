"""Changing the model a board serves without ever leaving it with none: verify, swap, health check, roll back.

The files on the board: `model.enn` (served), `model.enn.bak` (the previous model), `model.enn.part`
(a new model being installed). The server (firmware/edgenn_server.py) serves model.enn, else
model.enn.bak, so every state a power cut can leave has a model to serve:

1. verify: soft-reset into the raw REPL (main.py does not run there, so the heap is as the server will
   see it), build the server on `model.enn.part` and run one inference against input codes whose golden
   answer the host knows. A model that does not load or answers wrongly never becomes model.enn;
2. swap, one snippet that runs to its end once the board has it: drop the old backup only while model.enn
   exists, rename model.enn -> model.enn.bak, then model.enn.part -> model.enn. Between the two renames
   only the backup is there, and the server serves it;
3. health check: after the restart, the server's ready line names the new model without an error, and a
   prediction equals the golden model's;
4. roll back: the same three renames the other way (`edgenn rollback`, or deploy when step 3 fails).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from edgenn import golden, modelfile
from edgenn.device.board_info import board_eval, close_board, open_board
from edgenn.device.client import BoardClient
from edgenn.errors import UserError

MODEL_NAME = "model.enn"
MODEL_BACKUP = "model.enn.bak"
PART_SUFFIX = ".part"  # not ".enn": the server looks for *.enn when model.enn is missing
MODEL_PART = MODEL_NAME + PART_SUFFIX
READY_TIMEOUT_S = 15.0


def model_label(name: str, data: bytes) -> str:
    """How every message names a model: its name and a SHA-256 prefix (the hash `deploy` checks on the
    board), so two models with the same name -- two trainings of `iris` -- are told apart."""
    return f"{name!r} (sha256 {hashlib.sha256(data).hexdigest()[:12]})"


def probe_codes(model: modelfile.QuantModel, seed: int = 0) -> tuple[list[int], list[int]]:
    """Input codes (fixed pseudo-random bytes) and the int8 outputs golden computes for them."""
    codes = np.random.default_rng(seed).integers(0, 256, model.n_inputs, dtype=np.uint8)
    return [int(c) for c in codes], [int(v) for v in golden.forward_q(model, codes[None, :])[0]]


def board_exec(transport: SerialTransport, code: str) -> str:
    try:
        return transport.exec(code).decode(errors="replace")
    except TransportExecError as exc:
        last = exc.error_output.strip().splitlines()[-1] if exc.error_output.strip() else "error"
        if "ENOSPC" in exc.error_output or last.endswith("OSError: 28"):
            raise UserError("the board's filesystem is full; delete files with `mpremote rm`") from None
        raise UserError(f"the board reported: {last}") from None


# Runs right after a soft reset into the raw REPL: what main.py would do, on another file, then one
# inference. Short, and a collection first: the heap must look as main.py leaves it, not as the REPL's
# reading and compiling of a long snippet leaves it (long-lived bits of that split the free space).
_VERIFY = """import gc
gc.collect()
import edgenn_server
try:
    _s = edgenn_server.Server({name!r})
    _n, _p = _s.net, _s.problem
except MemoryError as _e:
    _n, _p = None, 'the server itself does not fit beside it: %s' % _e
print(repr(('ok', list(_n.forward_q(bytes({codes!r}))), gc.mem_free()) if _n else ('fail', _p)))
"""
# After a failed load (the server still holds its buffers): the heap's largest free block.
LARGEST_BLOCK = """
import gc
gc.collect()
_lo, _hi = 0, gc.mem_free()
while _lo < _hi:
    _m = (_lo + _hi + 1) // 2
    try:
        _b = bytearray(_m)
        _b = None
        _lo = _m
    except MemoryError:
        _hi = _m - 1
_b = None
gc.collect()  # the probes' garbage is free heap again
print(repr((_lo, gc.mem_free())))
"""


@dataclass
class Verdict:
    ok: bool
    problem: str = ""  # what the board said
    needed: int | None = None  # bytes of the allocation that failed
    largest_block: int | None = None  # the heap's largest free block with the runtime loaded
    heap_free: int | None = None


def verify_on_board(transport: SerialTransport, name: str, model: modelfile.QuantModel) -> Verdict:
    """Soft-reset into the raw REPL, load `name` as the server would and check one inference."""
    transport.enter_raw_repl(soft_reset=True)
    codes, want = probe_codes(model)
    try:
        result = board_eval(transport, _VERIFY.format(name=name, codes=tuple(codes)))
    except UserError as exc:
        return Verdict(False, str(exc))
    if result[0] == "ok":
        if result[1] != want:
            return Verdict(False, f"its outputs {result[1][:4]}... differ from golden's {want[:4]}...")
        return Verdict(True, heap_free=result[2])
    problem = str(result[1])
    largest, free = board_eval(transport, LARGEST_BLOCK)
    found = re.search(r"allocating (\d+) bytes", problem)
    return Verdict(False, problem, int(found.group(1)) if found else None, int(largest), int(free))


_SWAP_IN = """
import os
def _has(n):
    try:
        os.stat(n)
        return True
    except OSError:
        return False
if _has({name!r}):
    if _has({backup!r}):
        os.remove({backup!r})
    os.rename({name!r}, {backup!r})
os.rename({part!r}, {name!r})
"""


def swap_in(transport: SerialTransport) -> None:
    """model.enn.part becomes model.enn, the old model.enn becomes model.enn.bak (one snippet)."""
    board_exec(transport, _SWAP_IN.format(name=MODEL_NAME, backup=MODEL_BACKUP, part=MODEL_PART))


_ROLL_BACK = """
import os
def _has(n):
    try:
        os.stat(n)
        return True
    except OSError:
        return False
if not _has({backup!r}):
    print('none')
else:
    if _has({part!r}):
        os.remove({part!r})
    os.rename({backup!r}, {part!r})
    if _has({name!r}):
        os.rename({name!r}, {backup!r})
    os.rename({part!r}, {name!r})
    print('done')
"""


def roll_back(transport: SerialTransport, keep_current: bool = True) -> bool:
    """model.enn.bak becomes model.enn again; the current one becomes the backup (keep_current) or is
    removed. False when the board has no backup. At every step model.enn or model.enn.bak is there."""
    out = board_exec(transport, _ROLL_BACK.format(name=MODEL_NAME, backup=MODEL_BACKUP, part=MODEL_PART))
    if out.strip().splitlines()[-1:] != ["done"]:
        return False
    if not keep_current:
        board_exec(transport, f"import os\nos.remove({MODEL_BACKUP!r})")
    return True


@dataclass
class Health:
    ok: bool
    model: str | None  # the model name the server reports
    problem: str = ""


def health_check(port: str, model: modelfile.QuantModel | None, baud: int = 115200) -> Health:
    """After a restart: the server is up, serves `model` (by name) without an error, and one prediction
    equals golden's. With model=None: the server is up and answers a prediction (any model)."""
    try:
        with BoardClient(port, baud=baud, timeout=READY_TIMEOUT_S) as client:
            info = client.connect(reset_timeout=READY_TIMEOUT_S)
            name = info.get("model")
            problem = info.get("error") or info.get("warning")
            if problem:
                return Health(False, name, str(problem))
            if model is None:
                n_in = int(info.get("inputs") or 0)
                reply = client.request("q " + ",".join(["0"] * n_in))
                return Health("q" in reply, name, str(reply.get("error", "")))
            if name != model.name:
                return Health(False, name, f"the board serves {name!r}, not {model.name!r}")
            codes, want = probe_codes(model)
            reply = client.request("q " + ",".join(map(str, codes)))
            if reply.get("q") != want:
                return Health(False, name, f"its prediction {reply} differs from the golden model's {want}")
            return Health(True, name)
    except UserError as exc:
        return Health(False, None, str(exc))
    except (TransportError, OSError) as exc:
        return Health(False, None, f"lost the serial port ({exc})")


@dataclass
class RollbackResult:
    model: str  # the model the board serves now: name and sha256 prefix (model_label)
    previous: str | None  # the one that became model.enn.bak


def rollback(port: str, baud: int = 115200, say: Callable[[str], None] = print) -> RollbackResult:
    """`edgenn rollback`: model.enn.bak back as model.enn (checked on the board first), the current
    model kept as the backup, so a second rollback undoes the first."""
    transport = open_board(port, baud)
    try:
        names = board_eval(transport, "import os\nprint(os.listdir())")
        current = None
        if MODEL_NAME in names:
            now = bytes(transport.fs_readfile(MODEL_NAME, chunk_size=1024))
            try:
                current = model_label(modelfile.from_bytes(now).name, now)
            except modelfile.ModelFormatError:
                current = f"{MODEL_NAME} (not a valid model)"
        if MODEL_BACKUP not in names:
            only = f"; it has only {current} (deploying another model keeps this one)" if current else ""
            raise UserError(
                f"the board on {port} has no previous model ({MODEL_BACKUP}): nothing to roll back to{only}"
            )
        data = bytes(transport.fs_readfile(MODEL_BACKUP, chunk_size=1024))
        try:
            backup = modelfile.from_bytes(data)
        except modelfile.ModelFormatError as exc:
            raise UserError(
                f"{MODEL_BACKUP} on the board is not a valid model ({exc}); left as it is"
            ) from None
        previous = model_label(backup.name, data)
        verdict = verify_on_board(transport, MODEL_BACKUP, backup)
        if not verdict.ok:
            raise UserError(
                f"the previous model {previous} does not run on the board ({verdict.problem}); "
                "nothing was changed"
            )
        say(f"  {MODEL_BACKUP:<18} {len(data):>7} B  {previous} loads and answers as the golden model")
        roll_back(transport, keep_current=True)
    except (TransportError, OSError) as exc:
        raise UserError(f"lost the connection to {port} ({exc}); run rollback again") from None
    finally:
        close_board(transport, restart=True)
    health = health_check(port, backup, baud)
    if not health.ok:
        raise UserError(
            f"rolled back to {previous}, but it does not start ({health.problem}); "
            "`edgenn rollback` again returns to the model before"
        )
    say(
        f"rolled back: the board serves {previous} again"
        + (f"; {current} is kept as {MODEL_BACKUP}" if current else "")
    )
    return RollbackResult(previous, current)
