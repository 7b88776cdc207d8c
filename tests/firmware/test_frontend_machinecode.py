"""The sensor front end as the ESP32's own machine code: edgenn_fe_viper.fe_load / fe_series compiled
by mpy-cross for xtensawin (qemu-xtensa) and rv32imc (unicorn), run on raw windows including constant,
saturated and alternating ones: the features equal the golden model's, and the counts are sane."""

from __future__ import annotations

import numpy as np
import pytest

from edgenn import frontend
from edgenn.machinecode.estimate import CORES
from edgenn.machinecode.frontend import estimate_frontend, run_frontend
from edgenn.machinecode.xtensa import qemu_path

ARCHES = ["xtensawin", "rv32imc"]


def windows(n_values: int) -> np.ndarray:
    rng = np.random.default_rng(4)
    alternating = np.tile([32767, -32768], n_values // 2)
    return np.vstack(
        [
            rng.integers(-32768, 32768, (2, n_values)),
            np.full((1, n_values), 32767),
            np.full((1, n_values), -777),
            alternating,
            rng.integers(-3, 4, (1, n_values)),
            np.full((1, n_values), 10**6),  # saturates
        ]
    )


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize(
    ("kind", "axes", "window"),
    [("spectral", 3, 32), ("stats", 2, 16), ("spectral", 1, 64), ("spectral", 2, 16), ("spectral", 4, 8)],
)
def test_front_end_machine_code_is_bit_exact(arch, kind, axes, window):
    if arch == "xtensawin" and qemu_path() is None:
        pytest.skip("qemu-xtensa is not installed (Debian: apt-get install qemu-user)")
    if arch == "rv32imc":
        pytest.importorskip("unicorn")
    fe = frontend.make(kind, axes, [f"a{a}_{t}" for a in range(axes) for t in range(window)])
    for row in windows(fe.n_values):
        run = run_frontend(arch, fe, row)
        np.testing.assert_array_equal(run["features"], frontend.features_int(fe, row.reshape(1, -1))[0])
        assert 0 < run["instructions"] and run["other_instructions"] < 100  # argument conversion only


def test_spectral_costs_more_than_stats_and_grows_with_the_window():
    if qemu_path() is None:
        pytest.skip("qemu-xtensa is not installed")
    core = CORES["esp32"]
    cost = {}
    for kind in ("stats", "spectral"):
        for window in (32, 128):
            fe = frontend.make(kind, 3, [f"a{a}_{t}" for a in range(3) for t in range(window)])
            cost[kind, window] = estimate_frontend(fe, "xtensawin", core.cycles, core.mhz)["instructions"]
    assert cost["stats", 32] < cost["spectral", 32] < cost["spectral", 128]
    assert 3 < cost["stats", 128] / cost["stats", 32] < 5  # per-sample passes: ~linear in the window
