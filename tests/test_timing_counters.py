"""The row-write counters of the timing engine against a reference derived from the weight changes.

In an fc layer every cell is written at most once per tick, so with a single
learning tick (warm-up T - 1), no write noise and no saturation, the change of
crossbar row j (input j) is the row's pulses: its largest positive change is
its largest SET pulse count, its largest negative change its largest RESET
count. Random nets, every write path of the kernel: whole sign pulses,
fractional pulses (geometric skipping), whole-plus-fraction, exact mode, and a
multi-bit first layer scaled to its full scale. (The conv paths are checked
pulse for pulse in tests/test_learning_reference.py.)"""
import numpy as np
import pytest

from chipsim.config import LearningConfig
from chipsim.core.chip import Chip
from chipsim.core.kernels import layout as K
from chipsim.core.learning import setup_learning

from tiny import bundle, fc_chain

T = 4


def row_reference(w_before, w_after, fan_in, out_c):
    """(rows, sum of max SET, sum of max RESET, sum of max either) from one tick's weight change."""
    d = (w_after.astype(np.int64) - w_before.astype(np.int64)).reshape(fan_in, out_c)
    up = np.clip(d, 0, None).max(axis=1)
    down = np.clip(-d, 0, None).max(axis=1)
    written = (up > 0) | (down > 0)
    return int(written.sum()), int(up.sum()), int(down.sum()), int(np.maximum(up, down).sum())


@pytest.mark.parametrize("seed,mode,pulse,lr,multibit", [
    (0, "sign", 1.0, 0.0, "count"), (1, "sign", 0.6, 0.0, "count"), (2, "sign", 2.5, 0.0, "count"),
    (3, "exact", 1.0, 4.0, "count"), (4, "sign", 0.7, 0.0, "scale"), (5, "sign", 2.0, 0.0, "scale")])
def test_row_write_counters_match_weight_changes(seed, mode, pulse, lr, multibit):
    rng = np.random.default_rng(seed)
    sizes = (24, 16, 10)
    net = fc_chain(sizes, T=T, input_bits=3)
    ws = [rng.integers(-6, 7, (sizes[i + 1], sizes[i])) for i in range(2)]
    chip = Chip(net, bundle(net, ws, thresholds=[12, 12]))
    cfg = LearningConfig(enabled=True, mode=mode, pulse=pulse, lr=lr, p=1.8, warmup=T - 1, target_bits=2,
                         bias=False, multibit_input=multibit)
    setup = setup_learning(chip, cfg, seed=seed)
    x = rng.integers(0, 8, (1, sizes[0])).astype(np.int32)
    targets = rng.integers(0, 4, (1, setup.n_targets))
    before = chip.registers.weights.copy()
    res = chip.run(x, learning=setup, targets=targets)
    after = chip.registers.weights
    assert not res.counters[..., K.C_W_SAT].any(), "the reference needs writes without saturation"
    total_rows = 0
    for li, layer in enumerate(chip.layers):
        sl = chip.weight_slice(layer.name)
        ref = row_reference(before[sl], after[sl], layer.fan_in, layer.out_shape[0])
        c = res.counters[0, :, li]
        got = (int(c[:, K.C_WRITE_ROWS].sum()), int(c[:, K.C_ROW_SET].sum()), int(c[:, K.C_ROW_RESET].sum()),
               int(c[:, K.C_ROW_RMW].sum()))
        assert got == ref, f"layer {layer.name}: chip {got}, reference {ref}"
        assert c[:, K.C_PULSES].sum() >= got[3] and got[0] <= layer.fan_in
        total_rows += got[0]
    assert total_rows > 3, "the case must write rows"
