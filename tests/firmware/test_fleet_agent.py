"""The fleet agent (firmware/edgenn_fleet.py) inside real MicroPython (the unix port): its HMAC-SHA256 and
signing string against CPython's hmac and the host's pinned manifest vector, the manifest verdicts, and
the prediction queue (bounded, oldest dropped and counted, publish policies, nothing allocated)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
from pathlib import Path

import pytest
from fleet_vector import KEY, VECTOR, VECTOR_SIG
from mpy_helpers import FIRMWARE, MICROPYTHON, need_micropython

from edgenn.fleet import manifest as mf



def run_mp(tmp_path: Path, script: str, heapsize: str = "256K") -> list:
    """Run `script` in the unix port with the firmware importable and tmp_path as the board's root;
    returns the JSON value of each line it prints."""
    need_micropython()
    (tmp_path / "t.py").write_text(script)
    env = dict(os.environ, MICROPYPATH=str(FIRMWARE))
    out = subprocess.run(
        [MICROPYTHON, "-X", f"heapsize={heapsize}", "t.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_hmac_matches_cpython_for_every_key_length(tmp_path: Path) -> None:
    cases = [
        (os.urandom(n), os.urandom(m)) for n, m in [(0, 0), (1, 5), (32, 100), (64, 64), (65, 3), (100, 1000)]
    ]
    script = "import binascii, edgenn_fleet as f\n" + "".join(
        f"print('\"' + binascii.hexlify(f.hmac_sha256({k!r}, {m!r})).decode() + '\"')\n" for k, m in cases
    )
    assert run_mp(tmp_path, script) == [hmac.new(k, m, hashlib.sha256).hexdigest() for k, m in cases]


def test_board_verdicts_on_manifests_signed_by_the_host(tmp_path: Path) -> None:
    good = mf.sign(VECTOR, KEY)
    other = mf.sign(VECTOR, bytes(range(1, 33)))
    everyone = mf.sign(mf.Manifest(**{**VECTOR.__dict__, "boards": None}), KEY)
    altered = {**good.to_dict(), "size": 1235}  # the signature no longer covers it
    cases = {
        "good": good.to_dict(),
        "other_key": other.to_dict(),
        "everyone": everyone.to_dict(),
        "altered": altered,
        "no_sig": {k: v for k, v in good.to_dict().items() if k != "sig"},
        "missing": {k: v for k, v in good.to_dict().items() if k != "check"},
        "other_group": {**good.to_dict(), "group": "lab2"},
    }
    script = (
        "import json, edgenn_fleet as f\n"
        f"key = {KEY!r}\n"
        f"cases = json.loads({json.dumps(cases)!r})\n"
        "for name in sorted(cases):\n"
        "    print(json.dumps([name, f.check_manifest(cases[name], 'lab', 'b1', key)]))\n"
        "print(json.dumps(['nb', f.check_manifest(cases['good'], 'lab', 'b3', key)]))\n"
        "print(json.dumps(['string', f.signing_string(cases['good'])]))\n"
    )
    got = dict(run_mp(tmp_path, script))
    assert got["string"] == good.signing_string()  # the same bytes the host signs
    assert got["good"] is None and got["everyone"] is None
    assert got["nb"] == ""  # for other boards: ignored without a word
    assert got["other_key"] == mf.BAD_SIGNATURE
    assert got["altered"] == mf.BAD_SIGNATURE
    assert got["no_sig"] == mf.BAD_SIGNATURE
    assert got["missing"].startswith("bad manifest")
    assert got["other_group"].startswith("bad manifest")


def test_board_signature_equals_the_pinned_vector(tmp_path: Path) -> None:
    vector = VECTOR.to_dict()
    script = (
        "import json, binascii, edgenn_fleet as f\n"
        f"m = json.loads({json.dumps(vector)!r})\n"
        f"print(json.dumps(binascii.hexlify(f.hmac_sha256({KEY!r}, f.signing_string(m).encode())).decode()))\n"
    )
    assert run_mp(tmp_path, script) == [mf.signature(VECTOR, KEY)] == [VECTOR_SIG]


def _agent_script(policy: str, predictions: int) -> str:
    # An agent whose broker is away (never connected): every prediction waits in the queue.
    return f"""
import json, gc, micropython
with open('fleet.json', 'w') as fh:
    json.dump({{'host': '127.0.0.1', 'port': 1, 'group': 'g', 'id': 'b1', 'publish': {policy!r}}}, fh)
with open('fleet.key', 'w') as fh:
    fh.write('00' * 32)
import edgenn_fleet as f
a = f.start()
classes = [0, 0, 1, 1, 1, 2, 0, 0]
k = 0
i = 0  # a global made under heap_lock would grow the globals dict
gc.collect()
micropython.heap_lock()
for i in range({predictions}):
    f.publish(classes[k], f.SRC_WINDOW)
    k = (k + 1) % 8
micropython.heap_unlock()
queued = []
i = a.head
for _ in range(a.count):
    p = a._build(i * 4)
    queued.append(json.loads(bytes(a.payload[:p])))
    i = (i + 1) % 64
print(json.dumps({{'n': a.n, 'count': a.count, 'dropped': a.dropped, 'queued': queued}}))
"""


@pytest.mark.parametrize("policy", ["every", "every:3", "change"])
def test_prediction_queue_is_bounded_drops_oldest_and_allocates_nothing(tmp_path: Path, policy: str) -> None:
    (result,) = run_mp(tmp_path, _agent_script(policy, 200))
    assert result["n"] == 200
    classes = [[0, 0, 1, 1, 1, 2, 0, 0][i % 8] for i in range(200)]
    if policy == "every":
        wanted = list(range(1, 201))
    elif policy == "every:3":
        wanted = [n for n in range(1, 201) if n % 3 == 0]
    else:
        wanted = [n for n in range(1, 201) if n == 1 or classes[n - 1] != classes[n - 2]]
    kept = wanted[-64:]
    assert result["count"] == len(kept)
    assert result["dropped"] == len(wanted) - len(kept)
    assert [q["n"] for q in result["queued"]] == kept  # the newest kept, oldest first
    first = result["queued"][0]
    assert first["id"] == "b1" and first["src"] == "window"
    assert first["class"] == classes[first["n"] - 1]
    assert set(first) == {"id", "n", "src", "class", "t"}  # no net: no label to name


# ---- frame sizes: a bytecode function whose state exceeds 11 words gets its frame from the heap on every
# call (docs: notes/micropython.md); the agent's per-prediction and idle-loop functions must not.
HOT = [
    "publish",
    "step",
    "note",
    "flush",
    "_send_oldest",
    "_publish_oldest",
    "_build",
    "_put_result",
    "_guarded",
]
MAX_STATE_WORDS = 11


def _vuint(b: bytes, p: int) -> tuple[int, int]:
    v = 0
    while True:
        c = b[p]
        p += 1
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            return v, p


def _state_words(code: bytes) -> tuple[int, int]:
    """(state words, simple-name qstr index) from a bytecode prelude (py/bc.h, MP_BC_PRELUDE_*_DECODE)."""
    z, p = code[0], 1
    n_state, n_exc, n = (z >> 3) & 0xF, (z >> 2) & 1, 0
    while z & 0x80:
        z, p = code[p], p + 1
        n_state |= (z & 0x30) << (2 * n)
        n_exc |= (z & 0x02) << n
        n += 1
    z, p = code[p], p + 1  # the prelude size: xIIIIIIC
    while z & 0x80:
        z, p = code[p], p + 1
    name, _ = _vuint(code, p)
    return n_state + 1 + 3 * n_exc, name  # an exception-stack entry is 3 words


def test_hot_path_frames_stay_on_the_c_stack(tmp_path: Path) -> None:
    from mpy_helpers import MPY_CROSS

    from edgenn.machinecode import mpy as mpyfile

    if not MPY_CROSS:
        pytest.skip("mpy-cross is not installed")
    out = tmp_path / "edgenn_fleet.mpy"
    subprocess.run(
        [MPY_CROSS, "-march=xtensawin", "-o", str(out), str(FIRMWARE / "edgenn_fleet.py")], check=True
    )
    m = mpyfile.read(out.read_bytes())
    words: dict[str, int] = {}

    def walk(rc) -> None:
        if rc.kind == "bytecode":
            state, name = _state_words(rc.code)
            if name < len(m.qstrs):
                words[str(m.qstrs[name])] = state
        for child in rc.children:
            walk(child)

    walk(m.module)
    # names MicroPython has built in (step, flush, ...) are numbers in a .mpy: learn them the same way
    probe = tmp_path / "names.py"
    probe.write_text("".join(f"def {name}():\n    pass\n" for name in HOT))
    subprocess.run([MPY_CROSS, "-o", str(tmp_path / "names.mpy"), str(probe)], check=True)
    names = mpyfile.read((tmp_path / "names.mpy").read_bytes())
    for rc in names.module.children:
        number = names.qstrs[_state_words(rc.code)[1]]
        if not isinstance(number, str):
            words[HOT[names.module.children.index(rc)]] = words.pop(str(number), -1)
    assert words["_connect"] > MAX_STATE_WORDS  # the decoder reads real preludes (a big function is big)
    assert {name: words[name] for name in HOT if words[name] > MAX_STATE_WORDS} == {}
