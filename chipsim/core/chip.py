"""A deployed chip: the integer state of every layer and the calls into the kernels. No I/O.

`Chip(net, weights)` maps the weights onto crossbars (see kernels/crossbar.py
for the layout), builds the per-neuron registers (threshold, leak
multiplier, enable bit) and runs batches of host input through the kernels.
Noise models modify a deployed chip's `registers` (frozen noise) before a run.
"""
from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from chipsim.config import NetConfig
from chipsim.core.kernels import device as _D
from chipsim.core.kernels import layout as K
from chipsim.core.kernels.forward import run_samples
from chipsim.core.learning import LearningSetup
from chipsim.core.pipeline import LayerPipeline
from chipsim.core.weights import WeightBundle, check_bundle


class DeployError(ValueError):
    """The weights cannot be represented exactly on this chip configuration."""


@dataclass
class Registers:
    """Everything a noise model or the learning circuit may change, as flat arrays."""

    weights: np.ndarray     #: crossbar cells, all layers, row-major per layer (int8 or int16)
    bias: np.ndarray        #: int32, one per output channel of each weighted layer
    theta: np.ndarray       #: int32, one threshold register per neuron
    leak: np.ndarray        #: int32, one leak multiplier per neuron (2^leak_bits = no leak)
    enabled: np.ndarray     #: uint8, 0 = silenced neuron (never spikes)
    weight_max: np.ndarray  #: int64 per chip layer: largest |weight| a cell may hold (saturation bound)
    weight_step: np.ndarray  #: int64 per chip layer: LSBs per register level (1; 2^f after `bits` noise)
    noise_rate: np.ndarray  #: float64 (L, K.N_NOISE): dynamic noise per layer (columns K.NZ_*)
    noise_key: np.ndarray   #: uint64 (L, K.N_NOISE): 64-bit keys of those dynamic noise streams

    def copy(self) -> "Registers":
        return Registers(*(getattr(self, f.name).copy() for f in dataclasses.fields(self)))


@dataclass
class BatchResult:
    predictions: np.ndarray     #: (B,) class index
    counts: np.ndarray          #: (B, classes) output spike counts
    potentials: np.ndarray      #: (B, classes) final output membrane
    counters: np.ndarray        #: (B, T, L, N_COUNTERS) int64
    spikes: np.ndarray | None   #: (B, T, neurons) uint8 when recorded
    membrane: np.ndarray | None  #: (B, T, neurons) int32 when recorded
    neuron_counts: np.ndarray | None = None  #: (B, neurons) spike counts (saturating counter_bits registers)


def input_mode(net: NetConfig) -> tuple[int, int]:
    """What the host sends the first layer (kernels/layout.py IN_*) and the largest value of one input:
    the direct encoder's 2^input_bits - 1, the events encoder's cap with bin_value count, else 1 (a spike)."""
    enc = net.encoder
    if enc.kind == "direct":
        return K.IN_HELD, (1 << enc.input_bits) - 1
    if enc.events is not None and enc.events.bin_value == "count":
        return K.IN_COUNTS, int(enc.events.cap)
    return K.IN_SPIKES, 1


def chip_order_permutation(shape: tuple[int, int, int]) -> np.ndarray:
    """perm[j_chip] = j_teacher: chip order is (y, x, c), teacher (flatten) order is (c, y, x)."""
    c, h, w = shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def crossbar_matrix(layer, weight: np.ndarray) -> np.ndarray:
    """The (fan_in x out) crossbar matrix of a weighted layer, rows in chip input order."""
    if layer.type == "conv":  # rows in (ky, kx, c) order, see kernels/crossbar.py
        out, in_c, k, _ = weight.shape
        return weight.transpose(2, 3, 1, 0).reshape(k * k * in_c, out)
    perm = chip_order_permutation(layer.input_map)   # a flatten reads the map in chip order (y, x, c)
    return weight[:, perm].T


class Chip:
    """A network deployed on the simulated chip."""

    def __init__(self, net: NetConfig, weights: WeightBundle, source: str = "<weights>"):
        check_bundle(net, weights, source)
        self.net = net
        self.chip = net.chip
        self.layers = net.chip_layers
        self.layer_names = tuple(layer.name for layer in self.layers)
        self.source = source          #: where the weights came from (a file, "random", ...)
        self.scales = {name: weights.layers[name].scale for name in weights.layers}
        self.input_mode, self.input_max = input_mode(net)
        self._build(weights, source)

    # ------------------------------------------------------------------ mapping
    def _build(self, bundle: WeightBundle, source: str) -> None:
        net, chip = self.net, self.chip
        if self.layers[0].type == "pool" and self.input_mode != K.IN_SPIKES:
            what = "the direct encoder's" if self.input_mode == K.IN_HELD else "the events encoder's count"
            raise DeployError(f"{net.source}: layers[0]: a pooling layer cannot take {what} "
                              f"multi-bit input; expected a conv or fc first layer, encoder.kind rate/if, "
                              f"or encoder.bin_value spike")
        L = len(self.layers)
        desc = np.zeros((L, K.N_COLS), np.int64)
        mats, biases = [], []
        thetas, leaks, nominal = [], [], []
        w_off = b_off = n_off = 0
        full = 1 << chip.leak_bits
        lif_a = int(round(net.neuron.alpha * full)) if net.neuron.model == "LIF" else full
        reset = K.RESET_ZERO if net.neuron.reset == "zero" else K.RESET_SUBTRACT
        self.tiles: dict[str, int] = {}
        self.tile_utilisation: dict[str, float] = {}
        for li, layer in enumerate(self.layers):
            c, h, w = layer.in_shape
            oc, oh, ow = layer.out_shape
            last = li == L - 1
            row = desc[li]
            row[K.IN_C], row[K.IN_H], row[K.IN_W] = c, h, w
            row[K.OUT_C], row[K.OUT_H], row[K.OUT_W] = oc, oh, ow
            row[K.KERNEL], row[K.STRIDE], row[K.PAD] = layer.kernel, layer.stride, layer.padding
            row[K.N_OFF] = n_off
            row[K.N_OUT] = layer.n_out
            row[K.FAN_IN] = layer.fan_in
            row[K.RESET] = reset
            row[K.SPIKING] = 0 if (last and net.readout == "potential") else 1
            a = lif_a
            if layer.weighted:
                lw = bundle.layers[layer.name]
                mat = crossbar_matrix(layer, lw.weight)
                row[K.KIND] = K.KIND_CONV if layer.type == "conv" else K.KIND_FC
                row[K.W_OFF], row[K.B_OFF] = w_off, b_off
                row[K.ROW_BANDS] = math.ceil(layer.fan_in / chip.tile_rows)
                row[K.COL_TILES] = math.ceil(oc / chip.tile_cols)
                in_max = self.input_max if li == 0 else 1
                bound = int(np.abs(mat).sum(axis=0).max()) * in_max + int(np.abs(lw.bias).max(initial=0))
                if bound > 2**31 - 1:
                    raise DeployError(f"{source}: layers/{layer.name}: worst-case input current {bound} "
                                      f"exceeds the 32-bit accumulator; use fewer weight or input bits")
                # the ADC's full scale in this layer's input units: the rows are driven at the input's
                # full-scale value (a spike, or a DAC at 2^input_bits - 1), so one ADC design serves every layer
                row[K.ADC_RANGE] = chip.adc_range_of(layer.name) * in_max
                adc_bound = int(row[K.ROW_BANDS]) * (int(row[K.ADC_RANGE]) + 1) + int(np.abs(lw.bias).max(initial=0))
                if chip.adc_bits and adc_bound > 2**31 - 1:
                    raise DeployError(f"{net.source}: chip.adc_range: {row[K.ROW_BANDS]} row bands of layer "
                                      f"{layer.name!r} at full scale {row[K.ADC_RANGE] // in_max} x input full scale {in_max} "
                                      f"exceed the 32-bit current; expected a smaller adc_range or larger tile_rows")
                mats.append(mat.reshape(-1))
                biases.append(lw.bias)
                w_off += mat.size
                b_off += oc
                theta = lw.threshold
                tiles = int(row[K.ROW_BANDS] * row[K.COL_TILES])
                self.tiles[layer.name] = tiles
                self.tile_utilisation[layer.name] = layer.fan_in * oc / (tiles * chip.tile_rows * chip.tile_cols)
                if last and net.readout == "potential":
                    a = full  # the paper's output layer integrates without leak or reset
            else:  # pooling: fixed-weight neurons, no crossbar
                row[K.KIND] = K.KIND_POOL_AVG if layer.pool == "avg" else K.KIND_POOL_OR
                row[K.MEMORYLESS] = 1 if layer.pool == "or" else 0
                row[K.RESET] = K.RESET_SUBTRACT
                theta = layer.kernel * layer.kernel if layer.pool == "avg" else 1
                a = full
            thetas.append(np.full(layer.n_out, theta, np.int32))
            nominal.append(theta)
            leaks.append(np.full(layer.n_out, a, np.int32))
            n_off += layer.n_out
        wdtype = np.int8 if chip.weight_bits <= 8 else np.int16
        self.desc = desc
        self.n_neurons = n_off
        #: each layer's threshold as deployed (before noise): the centre of the threshold-trim window
        self.threshold_nominal = np.array(nominal, np.int64)
        self.registers = Registers(
            weights=np.concatenate(mats).astype(wdtype),
            bias=np.concatenate(biases).astype(np.int32),
            theta=np.concatenate(thetas),
            leak=np.concatenate(leaks),
            enabled=np.ones(n_off, np.uint8),
            weight_max=np.full(L, chip.weight_max, np.int64),
            weight_step=np.ones(L, np.int64),
            noise_rate=np.zeros((L, K.N_NOISE), np.float64),
            noise_key=np.zeros((L, K.N_NOISE), np.uint64),
        )
        first = self.layers[0]
        self.n_inputs = int(np.prod(first.in_shape))
        self.max_layer = int(max(layer.n_out for layer in self.layers))
        self.pipeline_fill = L if chip.delay else 0
        #: write noise of on-chip learning: (relative spread, 64-bit key per layer); set by noise.mismatch
        self.write_noise = (0.0, np.zeros(L, np.uint64))
        #: per-cell device arrays beside the weight register (chipsim/core/synapse.py); made by learning or noise
        self.synapse_cells = None
        #: learning on several threads: one layer pipeline per thread count (it keeps its measured layer costs)
        self._pipelines: dict[int, LayerPipeline] = {}

    # ------------------------------------------------------------------ queries
    def layer_slice(self, name: str) -> slice:
        li = self.layer_names.index(name)
        off = int(self.desc[li, K.N_OFF])
        return slice(off, off + int(self.desc[li, K.N_OUT]))

    def bias_slice(self, name: str) -> slice:
        li = self.layer_names.index(name)
        off = int(self.desc[li, K.B_OFF])
        return slice(off, off + self.layers[li].out_shape[0])

    def weight_slice(self, name: str) -> slice:
        li = self.layer_names.index(name)
        layer = self.layers[li]
        off = int(self.desc[li, K.W_OFF])
        return slice(off, off + layer.fan_in * layer.out_shape[0])

    def params(self, record: int = 0, learning=None, largest: int | None = None) -> np.ndarray:
        """Scalar kernel parameters; `largest` = largest_weight(learning) when the caller has it."""
        chip = self.chip
        p = np.zeros(K.N_PARAMS, np.int64)
        p[K.P_T] = self.net.time_steps
        p[K.P_DELAY] = int(chip.delay)
        p[K.P_UMIN] = chip.membrane_min
        p[K.P_UMAX] = chip.membrane_max
        p[K.P_CMAX] = chip.counter_max
        p[K.P_LEAK_BITS] = chip.leak_bits
        p[K.P_DIRECT] = self.input_mode
        p[K.P_N_IN] = self.n_inputs
        p[K.P_MAX_N] = self.max_layer
        p[K.P_RECORD] = record
        p[K.P_BIAS_MAX] = chip.bias_max
        p[K.P_ADC_HALF] = (1 << (chip.adc_bits - 1)) if chip.adc_bits else 0
        if largest is None:
            largest = self.largest_weight(learning)
        p[K.P_NARROW] = int(self.narrow_datapath(learning, largest))
        p[K.P_ACC_LIMIT] = np.iinfo(self.acc_dtype(largest)).max // largest
        if learning is not None:
            p[K.P_WARMUP] = learning.config.warmup
            p[K.P_TARGET_MAX] = (1 << learning.config.target_bits) - 1
        return p

    def narrow_datapath(self, learning=None, w_max: int | None = None) -> bool:
        """Whether the neuron update may run in int32 lanes (kernels/neuron.py, integrate_narrow):
        true when, with the registers as they are now (and the weight and bias ranges when
        learning), no intermediate value can leave int32. Exact integer bounds, checked per run."""
        chip, r = self.chip, self.registers
        F = chip.leak_bits
        a_max = int(r.leak.max(initial=0))
        if F > 15 or a_max >= 1 << (31 - F):
            return False
        u_max = max(chip.membrane_max, -chip.membrane_min)
        leaked = (u_max * max(a_max, 1 << F) >> F) + a_max      # |leak(u)| and its partial products
        theta_max = int(np.abs(r.theta).max(initial=0))
        if learning is not None:                # threshold trim: registers move within their window
            theta_max = max(theta_max, int(learning.lparams[:, K.L_TH_HI].max(initial=0)))
        if w_max is None:
            w_max = self.largest_weight(learning)
        b_max = int(np.abs(r.bias).max(initial=0))
        if learning is not None:
            b_max = max(b_max, chip.bias_max)
        in_max = self.input_max
        current = 0
        for li, layer in enumerate(self.layers):
            if layer.weighted:
                bound = self.read_bound(li, w_max * (in_max if li == 0 else 1)) + b_max
            else:
                bound = layer.fan_in
            # |xi| <= 2 sqrt(3) for the Irwin-Hall draw (kernels/rng.py); +2 covers the roundings
            for col in (K.NZ_THERMAL, K.NZ_THERMAL_IN):      # relative to the current, or to each input
                s = float(r.noise_rate[li, col])
                if s > 0:
                    bound = int(bound * (1.0 + 3.4642 * s)) + 2
            additive = float(r.noise_rate[li, K.NZ_THERMAL_ADD])
            if additive > 0:                                  # in units of the threshold
                bound += int(3.4642 * additive * theta_max) + 2
            current = max(current, bound)
        return leaked + theta_max + current + 32768 < 2**31

    def read_bound(self, li: int, cell_max: int) -> int:
        """Bound on |crossbar read| of weighted layer `li` (bias excluded) with |W x| <= cell_max per cell:
        fan_in x cell_max for the exact read; with read noise (kernels/analog.py) each tile read adds at most
        3.4642 sigma sqrt(active rows) x_max plus a rounding; a column ADC's output is at most its full scale."""
        layer, chip = self.layers[li], self.chip
        bands = int(self.desc[li, K.ROW_BANDS])
        if chip.adc_bits:
            return bands * (int(self.desc[li, K.ADC_RANGE]) + 1)
        bound = layer.fan_in * cell_max
        sigma = float(self.registers.noise_rate[li, K.NZ_READ])
        if sigma > 0:
            x_max = self.input_max if li == 0 else 1
            if float(self.registers.noise_rate[li, K.NZ_THERMAL_IN]) > 0:   # perturbed inputs: up to 1 + 3.47 s
                x_max *= 1.0 + 3.4642 * float(self.registers.noise_rate[li, K.NZ_THERMAL_IN])
            rows = min(chip.tile_rows, layer.fan_in)
            bound += int(bands * (3.4642 * sigma * x_max * math.sqrt(rows) + 1)) + 1
        return bound

    def largest_weight(self, learning=None) -> int:
        """Bound on |weight| during the run: the stored maximum, or the register range when learning."""
        stored = int(np.abs(self.registers.weights).max(initial=0))
        if learning is not None:
            stored = max(stored, int(self.registers.weight_max.max()))
        return max(1, stored)

    @staticmethod
    def acc_dtype(largest: int):
        """16-bit accumulator lanes when eight summed rows fit them (exact: see kernels/crossbar.py)."""
        return np.int16 if 8 * largest <= np.iinfo(np.int16).max else np.int32

    def learning_device(self, learning: "LearningSetup") -> tuple:
        """The kernels' `dev` tuple of a learning run: (dparams, dkeys, state, writes, frozen)."""
        cells = self.synapse_cells
        if cells is None or cells.writes.shape != self.registers.weights.shape:
            from chipsim.core.synapse import SynapseCells

            cells = self.synapse_cells = SynapseCells.of(self.registers.weights)
        return (learning.dparams, learning.dkeys, cells.state, cells.writes, cells.frozen)

    # ------------------------------------------------------------------ running
    def warm_up(self, record: tuple[str, ...] = ()) -> float:
        """Compile (or load from Numba's cache) the inference kernel for this chip's register types by
        running an empty batch; returns the seconds it took, so runs can time the chip apart from the
        one-off compilation."""
        t0 = time.perf_counter()
        shape, dtype = self.input_format(0)
        self.run(np.zeros(shape, dtype), record)
        return time.perf_counter() - t0

    def input_format(self, batch: int) -> tuple[tuple[int, ...], type]:
        """Shape and dtype of a batch of chip input: multi-bit values (batch, n_in) for the direct
        encoder, per-tick counts (batch, T, n_in) for the events encoder with bin_value count,
        else packed spikes (batch, T, ceil(n_in / 8))."""
        if self.input_mode == K.IN_HELD:
            return (batch, self.n_inputs), np.int32
        if self.input_mode == K.IN_COUNTS:
            return (batch, self.net.time_steps, self.n_inputs), np.int32
        return (batch, self.net.time_steps, (self.n_inputs + 7) // 8), np.uint8

    def run(self, inputs: np.ndarray, record: tuple[str, ...] = (), sample_ids: np.ndarray | None = None,
            learning: "LearningSetup | None" = None, targets: np.ndarray | None = None) -> BatchResult:
        """Run a batch. `inputs`: packed spikes (B, T, ceil(n_in/8)) uint8 for rate/if encoders,
        or multi-bit values (B, n_in) int32 in chip input order for the direct encoder, or per-tick
        counts (B, T, n_in) int32 in chip input order for the events encoder with bin_value count
        (each in 0..cap: larger values are refused, as they could overflow the proved current bound).
        `sample_ids`: global sample indices that key dynamic noise (default 0..B-1).
        With `learning` (from `setup_learning`) and per-sample rate `targets`, the chip learns
        online while it runs (samples in order, weights changing as they go; on several threads
        as a layer pipeline across samples, chipsim/core/pipeline.py, with the same result)."""
        T = self.net.time_steps
        mode = self.input_mode
        B = inputs.shape[0]
        shape, dtype = self.input_format(B)
        if inputs.shape != shape:
            what = {K.IN_HELD: "direct input", K.IN_COUNTS: "event counts"}.get(mode, "packed spikes")
            raise ValueError(f"{what}: expected shape (batch, {', '.join(map(str, shape[1:]))}), got {inputs.shape}")
        if mode == K.IN_COUNTS:
            in_direct = np.ascontiguousarray(inputs, dtype=dtype).reshape(B, T * self.n_inputs)   # tick t: [t*n_in:(t+1)*n_in]
            if in_direct.size and (in_direct.min() < 0 or in_direct.max() > self.input_max):
                raise ValueError(f"event counts: expected values in 0..{self.input_max} (encoder.cap), "
                                 f"got {in_direct.min()}..{in_direct.max()}")
            in_packed = np.zeros((1, 1, 1), np.uint8)
        elif mode == K.IN_HELD:
            in_direct = np.ascontiguousarray(inputs, dtype=dtype)
            in_packed = np.zeros((1, 1, 1), np.uint8)
        else:
            in_packed = np.ascontiguousarray(inputs, dtype=dtype)
            in_direct = np.zeros((1, 1), np.int32)
        rec = (1 if "spikes" in record else 0) | (2 if "membrane" in record else 0)
        N = self.n_neurons
        U = np.empty((B, N), np.int32)
        S = np.empty((B, N), np.uint8)
        C = np.empty((B, N), np.int32)
        counters = np.zeros((B, T, len(self.layers), K.N_COUNTERS), np.int64)
        rec_S = np.zeros((B, T, N) if rec & 1 else (1, 1, 1), np.uint8)
        rec_U = np.zeros((B, T, N) if rec & 2 else (1, 1, 1), np.int32)
        r = self.registers
        ids = np.arange(B, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, np.int64)
        if ids.shape != (B,):
            raise ValueError(f"sample_ids: expected shape ({B},), got {ids.shape}")
        args = [self.desc, r.weights, r.bias, r.theta, r.leak, r.enabled, None, self.chip.tile_rows, None,
                r.noise_rate, r.noise_key, ids, in_packed, in_direct, U, S, C, counters, rec_S, rec_U]
        if learning is None:
            largest = self.largest_weight()
            args[6] = self.params(rec, None, largest)
            args[8] = np.zeros(1, self.acc_dtype(largest))
            _run_parallel(args, B)
        else:
            if targets is None or targets.shape != (B, learning.n_targets):
                raise ValueError(f"targets: expected shape ({B}, {learning.n_targets}), "
                                 f"got {None if targets is None else targets.shape}")
            largest = self.largest_weight(learning)
            if r.weights.dtype != np.int16 and largest > 127:
                r.weights = r.weights.astype(np.int16)
                args[1] = r.weights
            args[6] = self.params(rec, learning, largest)
            args[8] = np.zeros(1, self.acc_dtype(largest))
            wlim = np.stack([r.weight_max, r.weight_step], axis=1).astype(np.int64)
            dev = self.learning_device(learning)
            tail = [True, np.ascontiguousarray(targets, np.uint16), learning.lparams, learning.lkeys, wlim,
                    float(self.write_noise[0]), dev, learning.written]
            threads = min(numba.get_num_threads(), len(self.layers))
            if threads <= 1 or B == 1:
                run_samples(0, B, *args, *tail)
            else:   # layer ranges of consecutive samples at once: the same result as run_samples
                pipe = self._pipelines.get(threads)
                if pipe is None:
                    pipe = self._pipelines[threads] = LayerPipeline(len(self.layers), threads)
                pipe.run(args, tail, B, self.net.time_steps, self.max_layer)
        out = self.layer_slice(self.layer_names[-1])
        counts, pots = C[:, out], U[:, out]
        return BatchResult(readout(counts, pots, self.net.readout, self.chip.membrane_min), counts, pots,
                           counters, rec_S if rec & 1 else None, rec_U if rec & 2 else None, C)


_NO_TARGETS = np.zeros((1, 1), np.uint16)
_NO_LPARAMS = np.zeros((1, K.N_LPARAMS), np.float64)
_NO_KEYS = np.zeros((1, 2), np.uint64)
_NO_WLIM = np.zeros((1, 2), np.int64)
_NO_WRITTEN = np.zeros(1, np.uint8)
_NO_DEV = (np.zeros((1, _D.N_DPARAMS), np.float64), np.zeros((1, 2), np.uint64), np.zeros(1, np.int32),
           np.zeros(1, np.uint32), np.zeros(1, np.uint8))
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _run_parallel(args: list, batch: int) -> None:
    """Inference: split the batch into sample ranges over `numba.get_num_threads()` host threads.

    The kernel releases the GIL and each sample writes only its own rows, so
    this is parallel and the result is the same for any thread count."""
    threads = min(numba.get_num_threads(), batch)
    tail = (False, _NO_TARGETS, _NO_LPARAMS, _NO_KEYS, _NO_WLIM, 0.0, _NO_DEV, _NO_WRITTEN)
    if threads <= 1:
        run_samples(0, batch, *args, *tail)
        return
    pool = _POOLS.get(threads)
    if pool is None:
        pool = _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chipsim-chip")
    chunk = -(-batch // (4 * threads))          # a few ranges per thread for balance
    futures = [pool.submit(run_samples, s, min(batch, s + chunk), *args, *tail) for s in range(0, batch, chunk)]
    for f in futures:
        f.result()


def readout(counts: np.ndarray, potentials: np.ndarray, mode: str, umin: int) -> np.ndarray:
    """Class = most output spikes, ties broken by the higher membrane, then the lower index.
    `potential` readout: the highest membrane (non-spiking integrator)."""
    pot = potentials.astype(np.int64) - umin          # >= 0, < 2^31
    if mode == "potential":
        return np.argmax(pot, axis=1)
    key = (counts.astype(np.int64) << 32) | pot
    return np.argmax(key, axis=1)
