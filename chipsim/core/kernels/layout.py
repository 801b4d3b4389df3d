"""Integer codes shared by the host and the kernels: the one place modes become numbers.

A deployed network is described to the kernels by a 2-D int64 table `desc`
(one row per chip layer, columns below) plus flat parameter arrays; this
keeps the kernels free of Python objects.
"""

# layer kinds (column KIND)
KIND_FC = 0
KIND_CONV = 1
KIND_POOL_AVG = 2   # fixed-weight IF neurons: weight 1 from each window input, threshold k*k
KIND_POOL_OR = 3    # memoryless: spikes when any input of its window spiked this tick

# reset modes (column RESET)
RESET_SUBTRACT = 0
RESET_ZERO = 1

# columns of the layer table
KIND = 0
IN_C = 1
IN_H = 2
IN_W = 3
OUT_C = 4
OUT_H = 5
OUT_W = 6
KERNEL = 7
STRIDE = 8
PAD = 9
W_OFF = 10        # offset of the layer's crossbar matrix in the flat weight array
B_OFF = 11        # offset of the layer's biases (one per output channel)
N_OFF = 12        # offset of the layer's neurons in the flat state arrays
N_OUT = 13        # number of neurons
FAN_IN = 14       # crossbar rows (im2col rows for conv)
RESET = 15
SPIKING = 16      # 0: non-spiking integrator (potential readout)
MEMORYLESS = 17   # 1: membrane cleared every tick (OR pooling)
ROW_BANDS = 18    # crossbar row tiles: ceil(FAN_IN / tile_rows)
COL_TILES = 19    # crossbar column tiles: ceil(OUT_C / tile_cols)
ADC_RANGE = 20    # column ADCs: full scale of a partial sum in the layer's input units, chip.adc_range x the
                  # input's full-scale value (2^input_bits - 1 for the direct encoder's pixels, 1 for spikes)
N_COLS = 21

# dynamic noise per layer (columns of `noise_rate` / `noise_key`, one 64-bit key each)
NZ_THERMAL = 0        # thermal, scope current: relative std of each neuron's summed input current
NZ_SILENCE = 1        # silence, scope tick: probability that a spike is dropped
NZ_THERMAL_IN = 2     # thermal, scope input: relative std of each input element (pixel or spike)
NZ_THERMAL_ADD = 3    # thermal, scope additive: std in units of the neuron's threshold
NZ_READ = 4           # read noise: std of one active cell's read, in weight LSBs (kernels/analog.py)
N_NOISE = 5
#: fraction bits of a thermally perturbed input element x (1 + s xi) in the multi-bit read
THERMAL_FRAC_BITS = 8

# scalar parameters (array `params`)
P_T = 0
P_DELAY = 1
P_UMIN = 2
P_UMAX = 3
P_CMAX = 4
P_LEAK_BITS = 5
P_DIRECT = 6       # the host's input: IN_SPIKES, IN_HELD or IN_COUNTS (below)
P_N_IN = 7         # number of inputs of the first layer
P_MAX_N = 8        # largest layer (scratch size)
P_RECORD = 9       # bit 0: spikes, bit 1: membrane
P_ACC_LIMIT = 10   # rows an accumulator lane takes before it must be flushed
P_WARMUP = 11      # learning: ticks without updates at the start of each sample
P_TARGET_MAX = 12  # learning: full-scale rate target, 2^target_bits - 1
P_BIAS_MAX = 13    # largest |bias| register value
P_NARROW = 14      # 1: the host proved every neuron-update value fits int32 (32-bit-lane loop)
P_ADC_HALF = 15    # column ADCs: 2^(adc_bits - 1) codes per sign (0: no ADC, the ideal digital sum)
N_PARAMS = 16

# values of params[P_DIRECT]: what the host sends the first layer
IN_SPIKES = 0      # packed spikes, one bit per input and tick (rate, if, events with bin_value spike)
IN_HELD = 1        # one multi-bit value per input, the same every tick (direct encoder)
IN_COUNTS = 2      # one multi-bit value per input and tick (events with bin_value count: counts up to cap)

# learning parameters per chip layer (array `lparams`, float64, one row per layer)
L_ON = 0           # 1.0 if the layer learns
L_MODE = 1         # MODE_SIGN or MODE_EXACT
L_P_Q = 2          # boxcar width p (fraction of theta) in 16-bit fixed point
L_PULSE = 3        # pulse size in LSBs (sign mode; a coarser register fires a level with probability)
L_LR = 4           # learning rate in LSBs (exact mode)
L_DEAD = 5         # dead zone of the rate error (sign gate), as a fraction of full rate
L_T_OFF = 6        # offset of the layer's targets in the per-sample target row
L_BIAS = 7         # 1.0 if biases learn too
L_DEAD_SPIKES = 8  # more dead zone, in spikes of the counter C[t] (the resolution of the rate estimate C/t)
L_X_FULL = 9       # multi-bit input at full scale (2^input_bits - 1) with `multibit_input: scale`, else 1
L_TH_STEP = 10     # threshold trim: LSBs per gated update (0: thresholds do not learn); fractions are stochastic
L_TH_LO = 11       # threshold trim window: lowest and highest threshold register value
L_TH_HI = 12
N_LPARAMS = 13

MODE_SIGN = 0
MODE_EXACT = 1

# counters, per (sample, tick, layer)
C_SPIKES = 0             # spikes emitted by the layer
C_IN_EVENTS = 1          # input events arriving (spikes, or nonzero multi-bit inputs)
C_SYN_AC = 2             # synaptic events with binary input: accumulates (input spike x fan-out)
C_SYN_MAC = 3            # synaptic events with multi-bit input (direct encoder, event counts): multiply-accumulates
C_MEM_UPDATES = 4        # membrane updates
C_MEM_SAT = 5            # membrane saturations
C_CNT_SAT = 6            # spike-counter saturations
C_TILE_ACT = 7           # crossbar tile reads (a tile with >= 1 active row for an output position)
C_UNGATED = 8            # updates an ungated rule would make: neurons x fan-in per tick (N x M)
C_BOXCAR = 9             # of those, the ones whose neuron passes the boxcar gate (Eq. 8)
C_SIGN = 10              # of those, the ones whose neuron also has a nonzero sign(error)
C_PULSES = 11            # programming pulses applied to weight cells (gated pairs with an active input)
C_CELL_WRITES = 12       # distinct weight cells written in the tick
C_W_SAT = 13             # weight, bias or threshold writes clipped at the register range (or trim window)
C_WRITE_NOISE = 14       # write-noise draws
C_SILENCED = 15          # ticks of silenced neurons + spikes dropped by per-tick silencing
C_BIAS_WRITES = 16       # bias register updates
C_THRESHOLD_WRITES = 17  # threshold register updates (threshold trim, `learning.threshold_pulse`)
# crossbar row writes (NeuroSim's row-by-row write): a row is one crossbar row of one group of writes, i.e. one
# (output position, input row) of a conv layer or one input row of an fc layer, with >= 1 cell written
C_WRITE_ROWS = 18        # rows written in the tick
C_ROW_SET = 19           # sum over written rows of the row's largest SET (weight up) pulse count
C_ROW_RESET = 20         # sum over written rows of the row's largest RESET (weight down) pulse count
C_ROW_RMW = 21           # sum over written rows of the row's largest pulse count of either sign
C_DEVICE_FAILURES = 22   # synapse cells failed by endurance in the tick (kernels/device.py)
# analog reads (kernels/analog.py): one conversion per column of each tile read
C_ADC_CONV = 23          # column ADC conversions (tile reads x their columns) with chip.adc_bits
C_ADC_CLIP = 24          # of those, partial sums beyond the ADC's full scale (clipped to its end codes)
C_READ_DRAWS = 25        # read-noise draws: one per column current of each tile read (--noise read)
C_READ_SQ = 26           # sum of the squared read-noise draws, in units of 2^-8 LSB^2 (realised std)
# reads of the layer's busiest row band in the tick: a band (its row tile and every column tile beside it)
# is read once per output position with >= 1 active row in it; a layer's tile_activations are the sum over
# bands of these reads x col_tiles, and the busiest band's count bounds its read time from below (one read
# at a time per tile; chipsim/architect/timing.py). Summed over ticks it is the sum of the per-tick maxima.
C_TILE_BUSIEST = 27
N_COUNTERS = 28

COUNTER_NAMES = (
    "spikes", "input_events", "synaptic_events_ac", "synaptic_events_mac", "membrane_updates",
    "membrane_saturations", "counter_saturations", "tile_activations", "updates_ungated",
    "updates_boxcar_gated", "updates_sign_gated", "pulses", "cell_writes", "weight_saturations",
    "write_noise_draws", "silenced", "bias_writes", "threshold_writes",
    "write_rows", "write_set_slots", "write_reset_slots", "write_rmw_slots", "device_failures",
    "adc_conversions", "adc_clipped", "read_noise_draws", "read_noise_sq",
    "tile_reads_busiest",
)
assert len(COUNTER_NAMES) == N_COUNTERS
