"""`edgenn doctor`: what is on the other end of a serial port, and is it ready to serve a model?

Reports MicroPython version, the `.mpy` format and whether an installed mpy-cross can target it, the
kernel the runtime will use (by loading the deployed model on the board, or by trying to compile a viper
function there), free heap and flash, the deployed model (name, SHA-256) and whether it matches a local
file. Problems are listed with what to do about them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgenn import fit, modelfile
from edgenn.boards import load_board
from edgenn.device import mpy
from edgenn.device.board_info import board_eval, close_board, open_board, probe
from edgenn.device.deep import DeepReport, run_on_board
from edgenn.device.deploy import ASM_NAME, MAIN_NAME, MODEL_NAME, build_runtime, runtime_sources, sha256_hex
from edgenn.device.swap import LARGEST_BLOCK

# Does the deployed model load? Asked first after a soft reset, on the heap as main.py finds it at power-on
# (nothing else loaded, nothing compiled): a viper test compile or a second copy of the model beside a
# served one would fragment the heap and report a MemoryError for a model the board serves well (issue 18).
_LOAD_CHECK = """
import gc
gc.collect()
_net = None
_rt = None
try:
    try:  # as main.py imports it (edgenn_server._import_runtime: collections keep it packed)
        import edgenn_server
        edgenn = edgenn_server._import_runtime()
    except (ImportError, AttributeError):
        import edgenn
    _rt = getattr(edgenn, '__version__', 'present')
    gc.collect()
    try:
        _n = edgenn.load({model!r})
        _net = (getattr(_n, 'kernel', '?'), getattr(_n, 'name', ''), _n.n_inputs, _n.n_outputs, '')
        _n = None
    except Exception as e:
        _net = (None, None, None, None, repr(e))
    _asm = edgenn.asm_status() if hasattr(edgenn, 'asm_status') else None
except Exception as e:
    _rt = 'import failed: ' + repr(e)
    _asm = None
gc.collect()
print(repr((_rt, _net, _asm)))
"""

_RUNTIME_CHECK = """
import micropython, gc
try:
    exec("@micropython.viper\\ndef _vf(x: int) -> int:\\n    return x + 1\\n_vr = _vf(1)")
    _viper = _vr == 2
except Exception:
    _viper = False
print(repr(_viper))
"""

# micropython.mem_info(): the GC areas' total and "max new split" (the largest area the ESP32 could still
# add from the ESP-IDF heap; the unix port has no split heap and prints none); the ESP-IDF data heap.
_MEM_INFO = """
import micropython
micropython.mem_info()
try:
    import esp32
    _d = esp32.idf_heap_info(esp32.HEAP_DATA)
    print(repr((sum([h[1] for h in _d]), max([h[2] for h in _d] or [0]))))
except ImportError:
    print(repr(None))
"""


def _mem_info(transport) -> dict:
    """What mem_info() and idf_heap_info(HEAP_DATA) say, as numbers (None where the board says nothing)."""
    text = transport.exec(_MEM_INFO).decode(errors="replace")
    total = re.search(r"GC: total: (\d+)", text)
    split = re.search(r"max new split: (\d+)", text)
    lines = text.strip().splitlines()
    idf = ast.literal_eval(lines[-1]) if lines else None
    return {
        "gc_total": int(total.group(1)) if total else None,
        "max_new_split": int(split.group(1)) if split else None,
        "idf_data_free": None if idf is None else idf[0],
        "idf_data_largest": None if idf is None else idf[1],
    }


READ_BACK_LIMIT = 64 * 1024  # read the deployed model back to name it (when the runtime cannot)
MAIN_READ_LIMIT = 8 * 1024  # main.py is read back to see what the board runs at power-on
SERVER_MODULE = "edgenn_server"


def _starts_server(main_py: str) -> bool:
    """Does this main.py start edgenn's prediction server (not, say, the sensor-loop example)?"""
    code = [line.split("#")[0] for line in main_py.splitlines()]
    return any(SERVER_MODULE in line and "import" in line for line in code)


def _model_name(data: bytes) -> str | None:
    try:
        return modelfile.from_bytes(data).name
    except modelfile.ModelFormatError:
        return None


@dataclass
class Diagnosis:
    port: str
    micropython: str
    platform: str
    virtual: bool
    board_profile: str
    mpy_format: str | None
    mpy_cross: str | None  # the installed compiler that targets the board, if any
    viper: bool
    runtime: str | None  # None: not installed
    runtime_up_to_date: bool
    kernel: str | None
    heap_free: int
    flash_free: int
    flash_total: int
    model_file: str | None
    model_name: str | None
    model_sha256: str | None
    model_size: int | None
    local_model: str | None = None
    local_model_matches: bool | None = None
    local_model_fits: bool | None = None
    main_py: str | None = None  # "edgenn" (starts the prediction server), "other" or None (no main.py)
    model_load_error: str | None = None
    problems: list[str] = field(default_factory=list)
    asm_kernel: str | None = None  # edgenn.asm_status() on the board: "ok" or why asm does not serve
    memory: dict = field(default_factory=dict)  # profile vs board: GC heap, largest block, executable RAM

    def as_dict(self) -> dict:
        return asdict(self)


def diagnose(
    port: str, local_model: Path | None = None, board: str | None = None, baud: int = 115200
) -> Diagnosis:
    local_bytes = None
    if local_model is not None:
        modelfile.load(local_model)  # UserError when it is not a valid .enn
        local_bytes = Path(local_model).read_bytes()
    sources = runtime_sources()
    names = {MODEL_NAME, MAIN_NAME, ASM_NAME} | {s.stem + ".mpy" for s in sources} | {s.name for s in sources}
    transport = open_board(port, baud)
    try:
        info = probe(transport, names)
        transport.enter_raw_repl(soft_reset=True)  # the heap as main.py finds it, before anything else
        runtime, net, asm = board_eval(transport, _LOAD_CHECK.format(model=MODEL_NAME))
        transport.enter_raw_repl(soft_reset=True)
        # the largest block the heap gives now, as deploy measures it after a failed load
        largest_now, heap_now = board_eval(transport, LARGEST_BLOCK)
        mem_info = _mem_info(transport)
        viper = board_eval(transport, _RUNTIME_CHECK)
        deployed = info.files.get(MODEL_NAME)
        header_name = None
        if deployed is not None and deployed[0] <= READ_BACK_LIMIT:
            header_name = _model_name(bytes(transport.fs_readfile(MODEL_NAME, chunk_size=1024)))
        main_py = None
        if MAIN_NAME in info.files:
            main_py = "other"
            if info.files[MAIN_NAME][0] <= MAIN_READ_LIMIT:
                text = bytes(transport.fs_readfile(MAIN_NAME, chunk_size=1024)).decode("utf-8", "replace")
                main_py = "edgenn" if _starts_server(text) else "other"
    finally:
        close_board(transport, restart=True)
    profile = load_board(board or info.likely_board)
    compiler = mpy.compiler_for(info.mpy) if info.mpy is not None else None
    wanted, _fmt, _warn = build_runtime(info, sources)
    runtime_ok = all(info.files.get(n, (0, ""))[1] == sha256_hex(d) for n, d in wanted.items())
    problems: list[str] = []
    fitted = None
    if local_bytes is not None:
        fitted = fit.check_fit(
            local_bytes,
            profile,
            heap_free=info.heap_free,
            flash_free=info.flash_free,
            exec_free=info.exec_free,
        )
    advised = local_model if fitted is not None and fitted.fits else "MODEL.enn"
    deploy_cmd = f"`edgenn deploy {advised} --port {port}`"
    if info.mpy is None:
        problems.append(
            "the board does not report its .mpy format (MicroPython < 1.19?): flash a current "
            "MicroPython with `edgenn flash`"
        )
    elif compiler is None:
        fmt = f"{info.mpy.version}.{info.mpy.sub_version}"
        problems.append(
            f"no installed mpy-cross emits .mpy {fmt}: deploy "
            "installs the runtime as .py (works, slower start); update MicroPython or mpy-cross"
        )
    if not viper:
        problems.append("this MicroPython has no viper emitter: the runtime will use its portable kernel")
    installed = any(s.stem + ".mpy" in info.files or s.name in info.files for s in sources)
    if not installed:
        runtime = None
        problems.append(f"the edgenn runtime is not installed: run {deploy_cmd}")
    elif str(runtime).startswith("import failed"):
        problems.append(f"the runtime does not import on the board ({runtime}): run {deploy_cmd}")
    elif not runtime_ok:
        problems.append(f"the runtime on the board differs from this checkout's: run {deploy_cmd}")

    model = info.files.get(MODEL_NAME)
    kernel = model_name = load_error = None
    if net is not None:
        kernel, model_name, _n_in, _n_out, load_error = net
        load_error = load_error or None
    if main_py is None:
        problems.append(
            f"no main.py: the board does not start the prediction server at power-on; run {deploy_cmd}"
        )
    elif main_py == "other":
        problems.append(
            "main.py on the board runs another program, not edgenn's prediction server (predict and "
            f"eval-device need it): {deploy_cmd} puts it back"
        )
    if model is None:
        problems.append(f"no model.enn on the board: run {deploy_cmd}")
    elif load_error:
        problems.append(f"model.enn does not load on the board: {load_error}")
    model_name = model_name or header_name
    if asm is not None and asm.startswith("refused"):
        problems.append(f"the asm kernel is installed but refused by its self-test (viper serves): {asm}")
    if kernel is None and runtime is not None:
        kernel = "viper" if viper else "portable"  # what the runtime picks, as far as the board can tell
    matches = fits = None
    if local_bytes is not None:
        matches = model is not None and model[1] == sha256_hex(local_bytes)
        fits = fitted.fits
        if not fits:
            problems.append(f"{local_model} {fitted.summary()}: deploying it would be refused")
        elif not matches:
            problems.append(
                f"the deployed model is not {local_model}: run `edgenn deploy {local_model} --port {port}`"
            )
    return Diagnosis(
        port=port,
        micropython=info.version,
        platform=info.platform,
        virtual=info.is_virtual,
        board_profile=profile.name,
        mpy_format=None if info.mpy is None else str(info.mpy),
        mpy_cross=None if compiler is None else compiler.micropython_version,
        viper=bool(viper),
        runtime=None if runtime is None else str(runtime),
        runtime_up_to_date=runtime_ok,
        kernel=kernel,
        heap_free=info.heap_free,
        flash_free=info.flash_free,
        flash_total=info.flash_total,
        model_file=MODEL_NAME if model else None,
        model_name=model_name,
        model_sha256=model[1] if model else None,
        model_size=model[0] if model else None,
        local_model=None if local_model is None else str(local_model),
        local_model_matches=matches,
        local_model_fits=fits,
        main_py=main_py,
        model_load_error=load_error,
        problems=problems,
        asm_kernel=asm,
        memory=_memory(profile, heap_now, largest_now, info, mem_info),
    )


def deep_check(port: str, baud: int = 115200) -> DeepReport:
    """`doctor --deep`: the zoo through every kernel on the board (edgenn.device.deep), after a soft
    reset; the runtime must be installed (deploy)."""
    transport = open_board(port, baud)
    try:
        return run_on_board(transport)
    finally:
        close_board(transport, restart=True)


def _memory(profile, heap_free: int, largest: int, info, mem_info: dict) -> dict:
    """Profile vs board, figure by figure (a real board's executable RAM: esp32.idf_heap_info)."""
    first = profile.gc_first_area_bytes
    growth = None if first is None or profile.gc_heap_max_bytes is None else profile.gc_heap_max_bytes - first
    return {
        "gc_areas": {"profile": first, "board": mem_info["gc_total"]},  # at boot: the first area
        "max_new_split": {"profile": growth, "board": mem_info["max_new_split"]},
        "idf_data": {"free": mem_info["idf_data_free"], "largest": mem_info["idf_data_largest"]},
        "heap_free": {"profile": profile.heap_bytes, "board": heap_free},
        "largest_block": {"profile": profile.largest_block_bytes, "board": largest},
        "exec_ram": {
            "profile": profile.exec_ram_bytes,
            "board_total": info.exec_total,
            "board_free": info.exec_free,
        },
    }


def memory_lines(memory: dict) -> list[str]:
    """`profile vs board` lines for doctor's report."""

    def b(v: int | None) -> str:
        return "-" if v is None else f"{v} B"

    lines = []
    for key, label in (
        ("gc_areas", "GC areas total"),
        ("max_new_split", "max new split"),
        ("heap_free", "GC heap free"),
        ("largest_block", "largest block"),
    ):
        row = memory.get(key, {})
        lines.append(f"  {label:<16} profile {b(row.get('profile')):>10}   board {b(row.get('board')):>10}")
    row = memory.get("exec_ram", {})
    free, total = b(row.get("board_free")), b(row.get("board_total"))
    lines.append(
        f"  {'executable RAM':<16} profile {b(row.get('profile')):>10}   board {free:>10} free of {total}"
    )
    return lines


def _runtime_text(d: Diagnosis) -> str:
    if d.runtime is None:
        return "not installed"
    return f"{d.runtime}, {'up to date' if d.runtime_up_to_date else 'differs from this checkout'}"


def report_lines(d: Diagnosis) -> list[str]:
    kind = "virtual board (x86-64 unix port; timings are not ESP32 timings)" if d.virtual else d.platform
    lines = [
        f"port          {d.port}",
        f"MicroPython   {d.micropython} on {kind}; profile {d.board_profile}",
        f".mpy format   {d.mpy_format or 'unknown'}; "
        f"mpy-cross for it: {d.mpy_cross or 'none (runtime as .py)'}",
        f"viper         {'yes' if d.viper else 'no'}",
        f"runtime       {_runtime_text(d)}",
        f"kernel        {d.kernel or '-'}",
        f"asm kernel    {d.asm_kernel or '-'}",
        f"heap free     {d.heap_free} B",
        "memory        profile vs board (native code goes to executable RAM, outside the GC heap)",
        *memory_lines(d.memory),
        f"flash free    {d.flash_free // 1024} KB of {d.flash_total // 1024} KB",
    ]
    if d.model_file:
        sha = d.model_sha256[:16] if d.model_sha256 else "?"
        name = d.model_name or "?"
        lines.append(f"model         {d.model_file}: {name!r}, {d.model_size} B, sha256 {sha}...")
    else:
        lines.append("model         none deployed")
    if d.local_model is not None:
        lines.append(f"local model   {d.local_model}: {'matches' if d.local_model_matches else 'DIFFERENT'}")
    if d.problems:
        lines.append("problems:")
        lines += [f"  - {p}" for p in d.problems]
    else:
        lines.append("ok: ready to serve predictions")
    return lines
