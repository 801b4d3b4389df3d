"""NeuroBench metrics on a tiny net, counted by hand (chipsim/architect/neurobench.py)."""
from __future__ import annotations

import numpy as np
import pytest

from tiny import bundle, fc_chain

from chipsim.core.chip import Chip
from chipsim.architect.counters import layer_totals
from chipsim.architect.neurobench import input_activity, neurobench_metrics


def metrics_of(net, weights, x, thresholds):
    chip = Chip(net, bundle(net, weights, thresholds=thresholds))
    inputs = np.asarray(x, np.int32)
    res = chip.run(inputs)
    totals = layer_totals(res.counters, chip.layer_names)
    return neurobench_metrics(chip, totals, input_activity(chip, inputs), res.neuron_counts.sum(axis=0), len(x))


def test_hand_counted_tiny_net():
    # 3 pixels -> 2 -> 1, T = 2, direct input [1, 0, 5]. fc1 current: n0 = 1 + 2*5 = 11 >= 10 every tick
    # (U 11 -> spike, 1 + 11 = 12 -> spike), n1 = 0. fc2 current 4 per tick < 10: silent.
    net = fc_chain([3, 2, 1], T=2)
    m = metrics_of(net, [[[1, 0, 2], [0, 3, 0]], [[4, 0]]], [[1, 0, 5]], thresholds=[10, 10])
    # MACs: pixels 0 and 2 are nonzero for 2 ticks, each meets 1 nonzero weight: 2*1 + 2*1 = 4
    assert m["effective_macs_per_sample"] == 4
    # ACs: n0's 2 spikes meet fc2's one nonzero weight; n1 never fires: 2
    assert m["effective_acs_per_sample"] == 2
    # dense: (3*2 + 2*1) pairs x 2 ticks
    assert m["synops_dense_per_sample"] == 16
    assert m["connection_sparsity"] == pytest.approx(4 / 8)          # 3 + 1 zeros among 8 weights
    assert m["activation_sparsity"] == pytest.approx(1 - 2 / 6)      # 2 spikes of 3 neurons x 2 ticks
    # registers: 8 weights x 8 bits + 3 biases x 16 + 3 thresholds x 24 (IF: no leak registers)
    assert m["footprint_parameter_bytes"] == (8 * 8 + 3 * 16 + 3 * 24) / 8
    assert m["footprint_state_bytes"] == 3 * (24 + 16 + 1) / 8       # membrane, counter, spike bit


def test_digits_dense_ops_equal_the_ann_macs_per_tick():
    from chipsim.workflows.runner import RunOptions, run_inference

    s = run_inference(RunOptions(net="digits", samples=30)).summary
    assert s["neurobench"]["synops_dense_per_sample"] == (64 * 256 + 256 * 128 + 128 * 10) * 32
    assert s["neurobench"]["effective_acs_per_sample"] <= s["synops"]["synops_ac_per_sample"]


def test_summary_and_report_carry_the_metrics(tmp_path):
    from chipsim.architect.report import build_report, format_table, load_run
    from chipsim.workflows.runner import RunOptions, run_inference

    s = run_inference(RunOptions(net="digits", samples=30, out=tmp_path / "r")).summary
    table = format_table(build_report(load_run(tmp_path / "r")))
    nb = s["neurobench"]
    assert f"effective ACs {nb['effective_acs_per_sample']:.4g}" in table
    assert f"connection sparsity {nb['connection_sparsity']:.4f}" in table
