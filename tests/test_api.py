"""The Python API: the documented calls give what the command line's code gives, exactly."""
from __future__ import annotations

import numpy as np
import pytest

import chipsim
from chipsim.core.kernels.layout import COUNTER_NAMES
from chipsim.architect.labelled import Counters
from chipsim.workflows.runner import RunError, RunOptions, run_inference


def test_evaluate_equals_chipsim_run():
    res = chipsim.deploy("digits", noise=["mismatch=0.2"], seed=3).evaluate(samples=100)
    ref = run_inference(RunOptions(net="digits", noise=("mismatch=0.2",), seed=3, samples=100))
    np.testing.assert_array_equal(res.predictions, ref.predictions)
    np.testing.assert_array_equal(res.counters_per_tick.values, ref.counters)
    assert res.accuracy == ref.summary["accuracy"]
    assert res.counters.sel(layer="fc2", counter="spikes") == ref.summary["layers"]["fc2"]["spikes"]


def test_counters_select_by_label():
    table = np.arange(2 * 3 * len(COUNTER_NAMES)).reshape(2, 3, -1)
    c = Counters.from_table(table, ("a", "b", "c"), ("tick",))
    assert c.sel(tick=1, layer="b", counter="spikes") == table[1, 1, 0]
    np.testing.assert_array_equal(c.sum("tick").sel(layer="c").values, table[:, 2].sum(axis=0))
    assert c.sum("tick").to_dict()["a"]["input_events"] == table[:, 0, 1].sum()
    with pytest.raises(KeyError, match="layer='zz': no such label"):
        c.sel(layer="zz")
    with pytest.raises(KeyError, match="no dimension 'neuron'"):
        c.sel(neuron=1)


def test_save_restores_the_calibrated_chip(tmp_path):
    chip = chipsim.deploy("digits", noise=["mismatch=0.4"], seed=0)
    cal = chip.calibrate(epochs=1, calib_samples=300, out=tmp_path / "cal")
    assert cal.accuracy_after == chip.evaluate().accuracy
    chip.save(tmp_path / "chip.h5")
    again = chipsim.deploy("digits", weights=tmp_path / "chip.h5").evaluate()
    np.testing.assert_array_equal(again.predictions, chip.evaluate().predictions)
    assert cal.learning.sel(layer="fc2", counter="updates_sign_gated") == \
        cal.summary["learning_layers"]["fc2"]["updates_sign_gated"]
    with pytest.raises(ValueError, match="calibrated already"):
        chip.calibrate()


def test_chip_preset_reprices_without_changing_results():
    a = chipsim.deploy("digits").evaluate(samples=50)
    b = chipsim.deploy("digits", chip="rram256").evaluate(samples=50)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    assert a.summary["cost"]["energy_uj_per_sample_total"] != b.summary["cost"]["energy_uj_per_sample_total"]


def test_bad_arguments_name_what_was_expected():
    with pytest.raises(FileNotFoundError, match="--net nonet: no such file"):
        chipsim.deploy("nonet")
    with pytest.raises(RunError, match="chip='nochip'"):
        chipsim.deploy("digits", chip="nochip")
    with pytest.raises(RunError, match="mismatch"):
        chipsim.deploy("digits", noise=["mismatch=abc"])


def test_traces_are_per_layer():
    res = chipsim.deploy("digits").evaluate(samples=20, record=["spikes"])
    s = res.traces["spikes"]["fc3"]
    assert s.shape == (20, 32, 10)
    np.testing.assert_array_equal(s.sum(axis=(0, 1)).sum(), res.counters.sel(layer="fc3", counter="spikes"))
