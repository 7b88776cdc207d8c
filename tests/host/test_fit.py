"""edgenn.fit: the memory arithmetic deploy, `quantize --board` and `tune` share (no board needed)."""

from __future__ import annotations

import numpy as np
import pytest

from edgenn import fit, modelfile, zoo
from edgenn.boards import load_board


def _model(n_in: int, hidden: list[int], act: str = "relu") -> modelfile.QuantModel:
    return zoo.random_model(np.random.default_rng(0), n_in, hidden, [act] * len(hidden), 4, "classify")


def test_layer_block_and_file_bytes_follow_the_format() -> None:
    model = _model(10, [7, 5], "tanh")
    data = modelfile.to_bytes(model)
    shapes = [(10, 7, True), (7, 5, True), (5, 4, False)]
    layers = sum(fit.layer_file_bytes(*s) for s in shapes)
    assert layers < len(data)  # header, scaling, strings and CRC come on top
    assert fit.largest_layer_block(model) == 10 * 7 + 7 * 7 + 256
    # the figure check_fit reports for a model given as bytes, as a QuantModel and as a path agree
    assert fit.check_fit(data, "esp32") == fit.check_fit(model, "esp32")


def test_small_model_fits_with_figures(tmp_path) -> None:
    path = tmp_path / "m.enn"
    modelfile.save(_model(4, [8]), path)
    result = fit.check_fit(path, "esp32")
    assert result.fits and result.reasons == () and result.hidden_fewer == 0
    assert result.model_bytes == path.stat().st_size
    assert result.heap_needed < result.heap_free
    assert result.summary().startswith("fits the esp32 board (heap ")
    assert result.as_dict()["fits"] is True


def test_too_big_model_says_how_many_hidden_units_fewer_fit() -> None:
    esp32 = load_board("esp32")
    result = fit.check_fit(_model(96, [512, 64]), esp32)
    assert not result.fits
    assert result.hidden == (512, 64)
    assert result.hidden_fewer is not None and result.hidden_fewer > 0
    assert result.smaller_hidden is not None and sum(result.smaller_hidden) == 576 - result.hidden_fewer
    # the suggestion is right at the edge: it fits, and one unit more on its widest layer does not
    smaller = fit.check_fit(_model(96, list(result.smaller_hidden)), esp32)
    assert smaller.fits
    bigger = list(result.smaller_hidden)
    bigger[bigger.index(max(bigger))] += 1
    assert not fit.check_fit(_model(96, bigger), esp32).fits
    assert f"{result.hidden_fewer} hidden unit(s) fewer would fit (--hidden " in result.summary()


def test_measured_board_figures_tighten_the_profile() -> None:
    model = _model(16, [32])
    roomy = fit.check_fit(model, "esp32")
    tight = fit.check_fit(model, "esp32", heap_free=20_000, largest_block=500)
    assert roomy.fits and not tight.fits
    assert len(tight.reasons) == 2
    assert "largest free block is 500 B" in tight.reasons[1]
    # measured figures never raise the profile's ceiling
    assert fit.check_fit(model, "esp32", heap_free=10**9).heap_free == load_board("esp32").heap_bytes


def test_no_smaller_hidden_layer_can_fit() -> None:
    result = fit.check_fit(_model(8, [4]), "esp32", heap_free=100)
    assert not result.fits and result.hidden_fewer is None and result.smaller_hidden is None
    assert "no smaller hidden layer would fit" in result.summary()


@pytest.mark.parametrize("board", ["esp32", "virtual"])
def test_fit_is_monotone_in_hidden_width(board: str) -> None:
    fits = [fit.check_fit(_model(96, [h]), board).fits for h in range(100, 1000, 60)]
    assert fits == sorted(fits, reverse=True)  # once too big, every wider model is too big
