"""The timing engine (chipsim/architect/timing.py) and the host link (link.py): exact schedules.

* the uncontended-limit identity with the analytic model (costs.py), on a tiny
  net that learns, and the engine never below it outside that limit;
* three hand-derived schedules (fc in sequence, conv in a pipeline, fc with
  learning), cycle for cycle, with their stalls;
* the host link, chip-bound, link-bound and buffer-bound, cycle for cycle;
* the Chrome trace: valid JSON, every event complete, no overlap on a track.
"""
import dataclasses
import json

import numpy as np
import pytest

from chipsim.architect.costs import CostConfig, geometry, inference_cost
from chipsim.architect.link import link_bound_batch, link_schedule
from chipsim.architect.timing import TIMING_COUNTERS, chrome_trace, schedule, timing_counts
from chipsim.config import LearningConfig, parse_net
from chipsim.core.chip import Chip
from chipsim.core.kernels import layout as K
from chipsim.core.learning import setup_learning

from tiny import bundle, fc_chain

IDX = {name: i for i, name in enumerate(TIMING_COUNTERS)}


def on_chip(net, **costs):
    """The net's chip config with these costs (everything else CostConfig's defaults)."""
    return dataclasses.replace(net.chip, costs=CostConfig(**costs))


def counts(T, L, **per_layer_tick):
    """Timing counts (1, T, L, K) from name=[[tick0 layer0, tick0 layer1, ...], [tick1 ...]]."""
    x = np.zeros((1, T, L, len(TIMING_COUNTERS)), np.int64)
    for name, table in per_layer_tick.items():
        x[0, :, :, IDX[name]] = np.asarray(table)
    return x


def geo_of(net):
    return geometry(net.layers, net.chip.tile_rows, net.chip.tile_cols)


# --------------------------------------------------------------------------- uncontended identity

def learning_run(delay=False, seed=0):
    net = fc_chain((24, 16, 10), T=6, input_bits=3, delay=delay)
    rng = np.random.default_rng(seed)
    ws = [rng.integers(-6, 7, (16, 24)), rng.integers(-6, 7, (10, 16))]
    chip = Chip(net, bundle(net, ws, thresholds=[12, 12]))
    cfg = LearningConfig(enabled=True, mode="sign", pulse=0.6, p=1.8, warmup=2, target_bits=2, bias=False)
    setup = setup_learning(chip, cfg, seed=seed)
    x = rng.integers(0, 8, (5, 24)).astype(np.int32)
    res = chip.run(x, learning=setup, targets=rng.integers(0, 4, (5, setup.n_targets)))
    return net, res.counters


def test_uncontended_limit_equals_the_analytic_model():
    net, c = learning_run()
    geo = geo_of(net)
    # every division exact: one unit of every resource, a 10 ns pulse = one 100 MHz cycle; unlimited router
    chip = on_chip(net, parallel_tiles=1, parallel_neurons=1, parallel_write_arrays=1, write_pulse_ns=10.0,
                   write_phases=2, spike_events_per_cycle=0.0, spike_queue_depth=0)
    assert chip.clock_mhz == 100.0 and not chip.delay
    sched = schedule(chip, geo, timing_counts(c))
    analytic = inference_cost(chip, geo, c.sum(axis=0), c.shape[0])
    assert c[..., 18].sum() > 0, "the run must write rows"
    assert sched.sample_cycles.mean() == pytest.approx(analytic["cycles_per_sample"], rel=1e-12, abs=0)
    assert analytic["cycles_per_sample"] == round(analytic["cycles_per_sample"])
    for s in range(c.shape[0]):              # sample by sample too
        one = inference_cost(chip, geo, c[s], 1)["cycles_per_sample"]
        assert sched.sample_cycles[s] == round(one)


@pytest.mark.parametrize("delay", [False, True])
def test_engine_never_below_the_analytic_model(delay):
    net, c = learning_run(delay=delay, seed=1)
    geo = geo_of(net)
    rng = np.random.default_rng(7)
    for _ in range(20):
        chip = dataclasses.replace(on_chip(
            net, parallel_tiles=int(rng.integers(1, 5)), parallel_neurons=int(rng.integers(1, 20)),
            parallel_write_arrays=int(rng.integers(1, 4)), write_pulse_ns=float(rng.choice([10.0, 25.0, 50.0])),
            cycles_tile_read=int(rng.integers(1, 9)), write_phases=int(rng.integers(1, 3)),
            spike_events_per_cycle=float(rng.choice([0.0, 0.5, 3.0])), spike_queue_depth=int(rng.integers(0, 5))),
            tile_rows=int(rng.choice([4, 8, 256])), tile_cols=int(rng.choice([4, 256])))
        g = geometry(net.layers, chip.tile_rows, chip.tile_cols)
        sched = schedule(chip, g, timing_counts(c))
        analytic = inference_cost(chip, g, c.sum(axis=0), c.shape[0])["cycles_per_sample"]
        assert sched.sample_cycles.mean() >= analytic - 1e-9


# --------------------------------------------------------------------------- hand-derived schedules

def test_fc_sequence_schedule_by_hand():
    net = fc_chain((16, 8, 4), T=2)            # fc1 16 -> 8, fc2 8 -> 4: one tile each
    chip = on_chip(net, cycles_tile_read=8, parallel_tiles=16, parallel_neurons=4, spike_events_per_cycle=2.0,
                   spike_queue_depth=0)
    x = counts(2, 2, tile_activations=[[1, 1], [0, 0]], membrane_updates=[[8, 4], [8, 4]],
               spikes=[[5, 1], [0, 0]])
    s = schedule(chip, geo_of(net), x)
    # tick 0: fc1 read [0, 8), neuron [8, 10), its 5 spikes at 2 per cycle delivered at 8 + max(2, 3) = 11;
    #         fc2 waits for them (1 cycle of dependencies): read [11, 19), neuron [19, 20)
    # tick 1: no input: fc1 neuron [20, 22), fc2 neuron [22, 23)
    assert s.tick_cycles.tolist() == [[20, 3]]
    assert s.sample_cycles.tolist() == [23]
    assert s.stalls["dependencies"].tolist() == [1] and s.stalls["queue_full"].tolist() == [0]
    assert s.busy["spike_path"].tolist() == [3]
    # a FIFO of one event and 9 spikes: the neuron block is held until 8 have left, ceil(8 / 2) = 4 cycles
    # after its phase began: 2 cycles of queue_full; delivery at 8 + 5 = 13, fc2 read [13, 21), neuron [21, 22)
    chip1 = dataclasses.replace(chip, costs=dataclasses.replace(chip.costs, spike_queue_depth=1))
    x[0, 0, 0, IDX["spikes"]] = 9
    s1 = schedule(chip1, geo_of(net), x)
    assert s1.tick_cycles.tolist() == [[22, 3]]
    assert s1.stalls["queue_full"].tolist() == [2] and s1.stalls["dependencies"].tolist() == [1]


def test_conv_pipeline_schedule_by_hand():
    data = {"name": "c", "input_shape": [4, 4, 4], "time_steps": 2, "encoder": {"kind": "rate"},
            "chip": {"tile_rows": 16, "delay": True},
            "layers": [{"name": "conv1", "type": "conv", "out": 8, "kernel": 3, "padding": 1},
                       {"type": "flatten"}, {"name": "fc2", "type": "fc", "out": 4}]}
    net = parse_net(data, "<conv>")
    geo = geo_of(net)
    assert [(g.row_bands, g.col_tiles) for g in geo] == [(3, 1), (8, 1)]   # fan-in 36 and 128, 16 rows a tile
    chip = on_chip(net, cycles_tile_read=2, parallel_tiles=4, parallel_neurons=16, spike_events_per_cycle=0.0)
    x = counts(2, 2, tile_activations=[[40, 0], [40, 6]], membrane_updates=[[128, 4], [128, 4]],
               spikes=[[10, 0], [12, 1]])
    s = schedule(chip, geo, x, trace_sample=0)
    # tick 0: conv1 reads on min(4, 3) = 3 tiles: ceil(40 / 3) = 14 rounds x 2 = [0, 28); neuron 8 rounds [28, 36);
    #         fc2 (pipeline: starts at once) has no reads; its neuron round waits for the pool: [36, 37)
    # tick 1: conv1 read [37, 65), neuron [65, 73); fc2 read ceil(6 / 4) x 2 = 4 waits for the read drivers:
    #         [65, 69), then for the neuron blocks: [73, 74)
    assert s.tick_cycles.tolist() == [[37, 37]]
    assert s.stalls["contention"].tolist() == [36 + 28 + 4]
    assert s.stalls["dependencies"].tolist() == [0]
    assert ("read", "fc2 read t1", 65, 4) in s.trace and ("neuron", "fc2 neuron t0", 36, 1) in s.trace


def test_learning_write_ports_by_hand():
    net = fc_chain((16, 8), T=1)
    net = dataclasses.replace(net, chip=dataclasses.replace(net.chip, tile_rows=4))   # 4 row bands: 4 tiles
    geo = geo_of(net)
    x = counts(1, 1, tile_activations=[[3]], membrane_updates=[[8]], updates_ungated=[[8 * 16]],
               write_rows=[[3]], write_set_slots=[[3]], write_reset_slots=[[2]], write_rmw_slots=[[4]])
    # read ceil(3 / 4) = 1 [0, 1); neuron [1, 2); gates ceil(8 / 8) [2, 3); writes: 3 + 2 = 5 pulse slots (SET
    # and RESET apart) of 50 ns = 5 cycles at 100 MHz on min(ports, 4 tiles) ports
    expected = {1: 3 + 25, 2: 3 + 15, 4: 3 + 10, 16: 3 + 10}
    for ports, cycles in expected.items():
        chip = on_chip(net, cycles_tile_read=1, parallel_tiles=4, parallel_neurons=8, write_pulse_ns=50.0,
                       write_phases=2, parallel_write_arrays=ports)
        s = schedule(chip, geo, x)
        assert s.sample_cycles.tolist() == [cycles], ports
    # one phase (SRAM read-modify-write): the 4 slots of the rows' larger pulse counts, 2 ports: 2 x 5
    chip = on_chip(net, cycles_tile_read=1, parallel_tiles=4, parallel_neurons=8, write_pulse_ns=50.0,
                   write_phases=1, parallel_write_arrays=2)
    s = schedule(chip, geo, x)
    assert s.sample_cycles.tolist() == [13]
    # 2 ports, 2 phases: 15 write cycles against ceil(5 / 3 rows) x 5 = 10 with a port per row
    chip = on_chip(net, cycles_tile_read=1, parallel_tiles=4, parallel_neurons=8, write_pulse_ns=50.0,
                   write_phases=2, parallel_write_arrays=2)
    assert schedule(chip, geo, x).stalls["write_ports"].tolist() == [5]


# --------------------------------------------------------------------------- host link

def link_costs(**kw):
    base = dict(link_gbit_s=0.8, link_latency_ns=100.0, link_buffers=2)   # 1 byte per 100 MHz cycle, 10 cycles
    return CostConfig(**{**base, **kw})


def test_link_chip_bound_by_hand():
    r = link_schedule(link_costs(), 100.0, [100] * 4, 2, 50, 0, 0)
    # batch 0 down [0, 110) (10 + 100 bytes), chip [110, 310); batch 1 down [110, 220), chip [310, 510)
    assert r["total_cycles"] == 510 and r["chip_stall_cycles"] == 110 and r["link_stall_cycles"] == 0
    assert r["bound"] == "chip" and r["busy_cycles_down"] == 220
    assert r["link_bound_below_batch_size"] == 1


def test_link_bound_by_hand():
    r = link_schedule(link_costs(), 100.0, [100] * 4, 2, 150, 0, 0)
    # down 10 + 300 = 310 per batch > chip 200: batch 0 down [0, 310), chip [310, 510); batch 1 down
    # [310, 620), chip [620, 820); the chip waits 310 + 110 cycles
    assert r["total_cycles"] == 820 and r["chip_stall_cycles"] == 420 and r["bound"] == "link"
    assert r["link_bound_below_batch_size"] is None          # 10 + 150 n > 100 n for every n
    # latency-bound only: 1000 cycles per transfer, 50 bytes a sample: 1000 + 50 n <= 100 n from n = 20
    assert link_bound_batch(link_costs(link_latency_ns=10000.0), 100.0, 100.0, 50, 0, 0) == 20


def test_link_single_buffer_by_hand():
    r = link_schedule(link_costs(link_buffers=1), 100.0, [100] * 4, 2, 50, 0, 0)
    # one input buffer: batch 1 is sent only when the chip is done with batch 0: down [310, 420), chip [420, 620)
    assert r["total_cycles"] == 620 and r["link_stall_cycles"] == 200 and r["chip_stall_cycles"] == 220


# --------------------------------------------------------------------------- Chrome trace

def test_chrome_trace_is_valid_and_tracks_do_not_overlap():
    net, c = learning_run(delay=True, seed=2)
    chip = on_chip(net, parallel_tiles=2, parallel_neurons=4, spike_events_per_cycle=1.0, spike_queue_depth=2)
    sched = schedule(chip, geo_of(net), timing_counts(c), trace_sample=1)
    trace = json.loads(json.dumps(chrome_trace(sched, chip.clock_mhz, 1)))
    events = trace["traceEvents"]
    assert len([e for e in events if e["ph"] == "X"]) > 10
    for e in events:
        assert {"ph", "ts", "dur", "pid", "tid"} <= set(e)
    by_track = {}
    for e in events:
        if e["ph"] == "X":
            by_track.setdefault(e["tid"], []).append((e["args"]["start_cycle"], e["args"]["cycles"]))
    for spans in by_track.values():
        spans.sort()
        for (s0, d0), (s1, _) in zip(spans, spans[1:]):
            assert s0 + d0 <= s1
    last = max(e["args"]["start_cycle"] + e["args"]["cycles"] for e in events if e["ph"] == "X")
    assert last <= sched.sample_cycles[1]


# --------------------------------------------------------------------------- the busiest tile bounds the reads

def lrf_rounds(band_reads, col_tiles, P):
    """Rounds of a greedy read schedule by simulation: each round the (up to) P tiles with the most reads
    left do one read each (a tile reads one output position at a time)."""
    left = np.repeat(np.asarray(band_reads, np.int64), col_tiles)
    rounds = 0
    while left.any():
        left[np.argsort(-left, kind="stable")[:P]] -= 1
        left = np.maximum(left, 0)
        rounds += 1
    return rounds


def test_read_rounds_are_the_optimal_makespan():
    """max(ceil(N / P), busiest) is a lower bound on any schedule (docstring of timing.py), and the greedy
    schedule reaches it: so it is the optimal makespan. Random band reads, column tiles and drivers."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        bands = rng.integers(0, 12, rng.integers(1, 7))
        col_tiles = int(rng.integers(1, 4))
        P = int(rng.integers(1, 9))
        tiles = len(bands) * col_tiles
        N = int(bands.sum()) * col_tiles
        formula = max(-(-N // min(P, tiles)), int(bands.max()))
        assert lrf_rounds(bands, col_tiles, min(P, tiles)) == formula, (bands, col_tiles, P)


def bottleneck_net(out_c=2, tile_cols=256):
    """One conv layer, 1 x 4 x 4 input, 3 x 3 kernel, padding 1, 3 crossbar rows a tile: row band ky holds
    kernel row ky (offsets (ky, 0..2))."""
    data = {"name": "b", "input_shape": [1, 4, 4], "time_steps": 1, "encoder": {"kind": "rate"},
            "chip": {"tile_rows": 3, "tile_cols": tile_cols},
            "layers": [{"name": "conv", "type": "conv", "out": out_c, "kernel": 3, "padding": 1}]}
    return parse_net(data, "<bottleneck>")


@pytest.mark.parametrize("out_c,tile_cols", [(2, 256), (8, 4)])
def test_busiest_band_bounds_the_reads_by_hand(out_c, tile_cols):
    net = bottleneck_net(out_c, tile_cols)
    w = np.ones((out_c, 1, 3, 3), np.int64)
    chip = Chip(net, bundle(net, [w], thresholds=[100]))
    res = chip.run(np.packbits(np.ones((1, 1, 16), np.uint8), axis=2))     # every input spikes
    geo = geo_of(net)
    col_tiles = out_c // tile_cols if out_c > tile_cols else 1
    assert (geo[0].row_bands, geo[0].col_tiles) == (3, col_tiles)
    # band ky is read at the outputs whose input row oy - 1 + ky is inside the 4 rows (every column is):
    # ky = 0: oy 1..3, ky = 1: oy 0..3, ky = 2: oy 0..2, 4 columns each: 12, 16, 12 reads; 40 in all
    c = res.counters[0, 0, 0]
    assert c[K.C_TILE_ACT] == 40 * col_tiles and c[K.C_TILE_BUSIEST] == 16
    chip_cfg = on_chip(net, cycles_tile_read=2, parallel_tiles=3, parallel_neurons=16)
    s = schedule(chip_cfg, geo, timing_counts(res.counters))
    neuron = -(-16 * out_c // 16)                     # 16 positions x out_c neurons, 16 at a time, 1 cycle
    if col_tiles == 1:
        # 3 drivers, 3 tiles: ceil(40 / 3) = 14 rounds would do if the reads were spread evenly, but the
        # middle band's tile has 16 reads, one after another: 16 rounds x 2 = 32 cycles, then the neurons
        assert s.sample_cycles.tolist() == [32 + neuron]
        analytic = 40 / 3 * 2 + neuron
    else:
        # 2 column tiles a band: 80 reads on min(3, 6) = 3 drivers, ceil(80 / 3) = 27 rounds > 16
        assert s.sample_cycles.tolist() == [27 * 2 + neuron]
        analytic = 80 / 3 * 2 + neuron
    assert inference_cost(chip_cfg, geo, res.counters.sum(axis=0), 1)["cycles_per_sample"] == \
        pytest.approx(analytic)
    # one driver: 40 rounds whatever the spread
    one = on_chip(net, cycles_tile_read=2, parallel_tiles=1, parallel_neurons=16)
    assert schedule(one, geo, timing_counts(res.counters)).sample_cycles.tolist() == [40 * col_tiles * 2 + neuron]


def test_old_timing_counts_fall_back_to_the_even_spread(tmp_path):
    """A timing_counts.npz without tile_reads_busiest (an older chipsim) loads with a warning; its reads
    are priced as spread evenly over the tiles and the timing section says so. Other column sets are
    refused, naming the file."""
    from chipsim.architect.link import link_schedule
    from chipsim.architect.timed_run import load_counts
    from chipsim.architect.timing import TIMING_COUNTERS_EVEN_SPREAD, timing_section

    net = bottleneck_net()
    chip = Chip(net, bundle(net, [np.ones((2, 1, 3, 3), np.int64)], thresholds=[100]))
    res = chip.run(np.packbits(np.ones((1, 1, 16), np.uint8), axis=2))
    new = timing_counts(res.counters)
    old = new[..., :len(TIMING_COUNTERS_EVEN_SPREAD)]
    path = tmp_path / "timing_counts.npz"
    np.savez_compressed(path, counts=old, names=np.array(TIMING_COUNTERS_EVEN_SPREAD), meta="{}")
    with pytest.warns(UserWarning, match="older chipsim without tile_reads_busiest.*spread evenly"):
        loaded, meta = load_counts(path)
    assert loaded.shape == new.shape and (loaded[..., -1] == -1).all() and meta == {}
    chip_cfg = on_chip(net, cycles_tile_read=2, parallel_tiles=3, parallel_neurons=16)
    geo = geo_of(net)
    s_old, s_new = schedule(chip_cfg, geo, loaded), schedule(chip_cfg, geo, new)
    assert s_old.sample_cycles.tolist() == [14 * 2 + 2] and s_new.sample_cycles.tolist() == [16 * 2 + 2]
    link = link_schedule(chip_cfg.costs, chip_cfg.clock_mhz, s_old.sample_cycles, 1, 2, 0, 0)
    assert "ASSUMED spread evenly" in timing_section(chip_cfg, geo, loaded, link)["read_rounds"]
    assert "ASSUMED" not in timing_section(chip_cfg, geo, new, link)["read_rounds"]
    bad = tmp_path / "bad.npz"
    np.savez_compressed(bad, counts=old[..., :3], names=np.array(TIMING_COUNTERS_EVEN_SPREAD[:3]), meta="{}")
    with pytest.raises(ValueError, match="bad.npz: counts of columns"):
        load_counts(bad)
