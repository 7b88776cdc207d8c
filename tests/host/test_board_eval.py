"""eval-device's reading of a board whose single-precision floats scale an input to a neighbouring code.

The board is scripted here (its `x` replies are computed with the golden model on altered codes); the
real server's `x` request is tested inside MicroPython in tests/e2e/test_server.py.
"""

from __future__ import annotations

import numpy as np

from edgenn import golden, zoo
from edgenn.device.board_eval import explain_by_input_rounding

MODEL = zoo.build_zoo(0)["relu_2"]


class ScriptedBoard:
    """Answers `x` requests with fixed codes and outputs, as a float32 board would."""

    def __init__(self, replies: list[dict]):
        self.replies = replies
        self.sent: list[str] = []

    def request(self, line: str) -> dict:
        self.sent.append(line)
        return self.replies[len(self.sent) - 1]


def _rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    codes = rng.integers(1, 255, size=(n, MODEL.n_inputs))
    X = (codes - MODEL.in_offset.astype(np.float64)) / MODEL.in_scale.astype(np.float64)
    U = golden.quantize_input(MODEL, X)
    return X, U


def _first_row_where_one_code_step_changes_the_output(U: np.ndarray) -> tuple[int, np.ndarray]:
    for i, u in enumerate(U):
        for d in range(len(u)):
            moved = u.copy()
            moved[d] = u[d] + 1
            before, after = golden.forward_q(MODEL, u[None])[0], golden.forward_q(MODEL, moved[None])[0]
            if not np.array_equal(before, after):
                return i, moved
    raise AssertionError("no code step changes this model's output")


def test_a_neighbouring_input_code_that_reproduces_the_board_output_is_explained() -> None:
    X, U = _rows(40)
    i, board_codes = _first_row_where_one_code_step_changes_the_output(U)
    board_out = golden.forward_q(MODEL, board_codes[None])[0]
    outputs = golden.forward_q(MODEL, U).astype(np.int64)
    outputs[i] = board_out
    board = ScriptedBoard([{"x": board_codes.tolist(), "q": board_out.tolist(), "us": 5}])
    assert explain_by_input_rounding(board, MODEL, X, U, outputs, [i]) == [i]
    assert board.sent[0].startswith("x ")


def test_an_output_that_golden_does_not_reproduce_stays_a_disagreement() -> None:
    X, U = _rows(40)
    i, board_codes = _first_row_where_one_code_step_changes_the_output(U)
    wrong = golden.forward_q(MODEL, board_codes[None])[0].astype(np.int64)
    wrong[0] = wrong[0] + 1 if wrong[0] < 127 else wrong[0] - 1  # a network bug: no codes explain it
    outputs = golden.forward_q(MODEL, U).astype(np.int64)
    outputs[i] = wrong
    board = ScriptedBoard([{"x": board_codes.tolist(), "q": wrong.tolist(), "us": 5}])
    assert explain_by_input_rounding(board, MODEL, X, U, outputs, [i]) == []


def test_same_codes_as_the_host_cannot_explain_a_difference() -> None:
    X, U = _rows(10)
    outputs = golden.forward_q(MODEL, U).astype(np.int64)
    outputs[0, 0] ^= 1
    board = ScriptedBoard([{"x": U[0].tolist(), "q": outputs[0].tolist(), "us": 5}])
    assert explain_by_input_rounding(board, MODEL, X, U, outputs, [0]) == []
