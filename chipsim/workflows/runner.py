"""One inference run: resolve net, weights and data, stream batches through the chip, collect results.

Kept apart from the CLI so scripts, tests and sweeps call the same code.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from chipsim import __version__
from chipsim.core.chip import Chip
from chipsim.core.chipstate import blank_bundle, is_chip_state, restore_state
from chipsim.core.synapse import restore_cells
from chipsim.config import NetConfig, load_net
from chipsim.architect.counters import adc_summary, cost_estimate, layer_totals, synops_vs_mac
from chipsim.core.kernels.layout import N_COUNTERS
from chipsim.models import bundled_nets
from chipsim.io.results import RunFileWriter, write_summary
from chipsim.core.weights import WeightBundle, WeightsError, load_weights, random_weights


class RunError(ValueError):
    """Bad run input (net, weights, data, options); the message names the flag and what was expected."""


@dataclass
class RunOptions:
    net: str = "digits"
    weights: str | None = None          #: path, "random", or None for the net's bundled weights
    data: str | None = None             #: dataset spec; None = the net's default
    split: str = "test"
    samples: int | None = None
    batch_size: int = 64
    seed: int = 0
    record: tuple[str, ...] = ()
    out: Path | None = None
    progress: Callable[[int, int], None] | None = None   #: called with (samples just done, total)
    noise: tuple[str, ...] = ()
    timing: bool = False                #: schedule every tick on the chip's resources (architect/timing.py)
    timeline_sample: int = 0            #: with `timing`: the sample whose schedule goes to timeline.json


@dataclass
class RunOutcome:
    summary: dict
    predictions: np.ndarray
    labels: np.ndarray
    counters: np.ndarray                #: (T, L, C) summed over samples
    counters_per_sample: np.ndarray     #: (N, L, C) summed over ticks
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)


def resolve_net_option(spec: str) -> NetConfig:
    from chipsim.models import resolve_net

    try:
        return load_net(resolve_net(spec))
    except FileNotFoundError as exc:
        raise RunError(str(exc)) from None


def resolve_weights(net: NetConfig, spec: str | None, seed: int) -> tuple[WeightBundle | None, str]:
    """The nominal weights, or None for a saved chip state (restored by `deploy`)."""
    if spec == "random":
        return random_weights(net, seed), "random"
    if spec is not None and not str(spec).strip():
        raise RunError(f"--weights {spec!r}: empty; expected an HDF5 weights file, a saved chip state or 'random' "
                       f"(leave the flag out for the net's own weights)")
    path = spec or net.weights
    if path is None:
        trained = sorted(n for n in bundled_nets() if n.startswith(net.name) and n != net.name)
        hint = f" (trained and bundled: --net {trained[0]})" if trained else ""
        raise RunError(f"--weights: net '{net.name}' ({net.source}) ships no trained weights yet{hint}; "
                       f"expected --weights PATH (an HDF5 file from chipsim, e.g. from "
                       f"`chipsim pretrain --net {net.name}`) or --weights random")
    # name where the path came from: the --weights flag, or the net YAML's `weights` key
    origin = "--weights" if spec else f"{net.source}: weights"
    if not Path(path).is_file():
        raise RunError(f"{origin}: {path}: no such file; expected an HDF5 weights file or a saved chip state "
                       f"written by chipsim")
    if is_chip_state(path):
        return None, str(path)
    try:
        return load_weights(path), str(path)
    except WeightsError as exc:
        raise RunError(f"{origin}: {exc}") from None


def deploy(net: NetConfig, bundle: WeightBundle | None, weights_source: str, noise: tuple[str, ...],
           seed: int) -> tuple[Chip, dict]:
    """Map the weights onto a chip (or restore a saved chip state) and apply the requested noise."""
    from chipsim.noise import NoiseSpecError, apply_noise

    if bundle is None:
        chip = Chip(net, blank_bundle(net), weights_source)
        try:
            restore_state(chip, weights_source)
            restore_cells(chip, weights_source)
        except ValueError as exc:
            raise RunError(f"--weights: {exc}") from None
    else:
        chip = Chip(net, bundle, weights_source)
    try:
        report = apply_noise(chip, noise, seed, frozen=bundle is not None) if noise else {}
    except NoiseSpecError as exc:
        raise RunError(str(exc)) from None
    return chip, report


def load_inputs(net: NetConfig, spec: str, split: str, samples: int | None):
    from chipsim.hostlink.datasets import DatasetError, load_for_net

    if spec is None or not str(spec).strip():
        raise RunError(f"--data {spec!r}: empty; expected a dataset (see --help), or leave the flag out for the "
                       f"net's own ({net.data})")

    try:
        data = load_for_net(spec, split, samples, net.input_shape, net.name, net.encoder)
    except DatasetError as exc:
        raise RunError(f"--data: {exc}") from None
    if samples is not None and len(data) < samples:
        raise RunError(f"--samples {samples}: the {split} split of {spec} has only {len(data)} samples")
    if net.encoder.kind == "direct" and data.pixel_max > (1 << net.encoder.input_bits) - 1:
        raise RunError(f"--data {spec}: pixel values up to {data.pixel_max}, but {net.source}: encoder.input_bits "
                       f"is {net.encoder.input_bits}; expected data with pixels up to "
                       f"{(1 << net.encoder.input_bits) - 1} or input_bits >= {int(data.pixel_max).bit_length()}")
    return data


def _host_link(link_in: dict, bytes_out_per_sample: int, stream: dict) -> dict:
    """summary.json's host_link: bytes in (per sample, total; AER word counts for events), out, stream."""
    out = {"bytes_in_per_sample": link_in["bytes_in_per_sample"], "bytes_out_per_sample": bytes_out_per_sample,
           "bytes_in_total": link_in["bytes_in_total"]}
    out.update({k: v for k, v in link_in.items() if k not in out})
    out["stream"] = stream
    return out


def encoder_key(seed: int) -> int:
    """64-bit key of the rate encoder's stream: SeedSequence(seed, 'encoder')."""
    return int(np.random.SeedSequence([seed, 0x656E63]).generate_state(1, np.uint64)[0])


def check_out_dir(out: Path) -> None:
    try:
        finished = (out / "summary.json").exists()
    except (OSError, ValueError) as exc:          # a name too long, a NUL byte, a loop of links
        raise RunError(f"--out {str(out)[:200]}{'...' if len(str(out)) > 200 else ''}: cannot be used "
                       f"({getattr(exc, 'strerror', None) or exc}); expected a folder path this system accepts") from None
    if finished:
        raise RunError(f"--out {out}: already holds a finished run (summary.json); "
                       f"expected a new or empty folder, nothing is overwritten")


def prepare_out_dir(out: Path) -> Path:
    from chipsim.io.atomic import remove_stale_temps

    check_out_dir(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: is a file; expected a folder (new, or one chipsim wrote)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--out {out}: cannot create the folder ({exc.strerror or exc}); "
                       f"expected a writable location") from None
    remove_stale_temps(out)
    return out


def run_inference(opts: RunOptions, deployed: tuple[Chip, dict] | None = None) -> RunOutcome:
    """Resolve, deploy and run `opts`; with `deployed` (a chip and its noise report, e.g. from the Python
    API, calibrated or not) run that chip as it is instead (opts.net, weights and noise are then ignored)."""
    from chipsim.hostlink.encoders import make_encoder
    from chipsim.hostlink.stream import BatchStream

    if opts.batch_size < 1:
        raise RunError(f"--batch-size: expected an integer >= 1, got {opts.batch_size}")
    if deployed is None:
        net = resolve_net_option(opts.net)
        bundle, weights_source = resolve_weights(net, opts.weights, opts.seed)
    else:
        net, bundle, weights_source = deployed[0].net, None, deployed[0].source
    data_spec = net.data if opts.data is None else opts.data
    data = load_inputs(net, data_spec, opts.split, opts.samples)
    if deployed is None:
        chip, noise_report = deploy(net, bundle, weights_source, opts.noise, opts.seed)
    else:
        chip, noise_report = deployed
    encoder = make_encoder(net, data.pixel_max, encoder_key(opts.seed))
    n = len(data)
    bs = opts.batch_size
    n_batches = (n + bs - 1) // bs

    def make_batch(i: int):
        ids = np.arange(i * bs, min(n, (i + 1) * bs))
        return ids, encoder.encode(data.images[ids], ids), data.labels[ids]

    if opts.timing and not 0 <= opts.timeline_sample < n:
        raise RunError(f"--timeline-sample {opts.timeline_sample}: expected a sample index in [0, {n - 1}]")
    if opts.out:
        check_out_dir(Path(opts.out))        # before the compile: a refused --out should not wait for it
    # compile (or load) the kernel apart from the timed run, before any output exists: an interrupted
    # first compile leaves nothing behind
    kernel_s = chip.warm_up(opts.record)
    out_dir = prepare_out_dir(Path(opts.out)) if opts.out else None
    writer = None
    if out_dir is not None:
        attrs = {"net": net.to_dict(), "seed": opts.seed, "weights": weights_source, "data": data_spec,
                 "noise": noise_report}
        slices = {name: chip.layer_slice(name) for name in chip.layer_names}
        writer = RunFileWriter(out_dir, attrs, slices, opts.record, net.time_steps)
    L = len(chip.layers)
    preds = np.empty(n, np.int64)
    per_tick = np.zeros((net.time_steps, L, N_COUNTERS), np.int64)
    per_sample = np.zeros((n, L, N_COUNTERS), np.int64)
    stream = BatchStream(make_batch, n_batches)
    recorder = None
    if opts.timing:
        from chipsim.architect.timed_run import TimingRecorder

        recorder = TimingRecorder(n, net.time_steps, L)
    t0 = time.perf_counter()
    chip_s = 0.0
    from chipsim.architect.neurobench import input_activity, neurobench_metrics

    activity = np.zeros(chip.n_inputs, np.int64)          # NeuroBench effective ops need per-input activity
    neuron_counts = np.zeros(chip.n_neurons, np.int64)
    try:
        for ids, inputs, _labels in stream:
            c0 = time.perf_counter()
            res = chip.run(inputs, opts.record, ids)
            chip_s += time.perf_counter() - c0
            activity += input_activity(chip, inputs)
            neuron_counts += res.neuron_counts.sum(axis=0)
            preds[ids] = res.predictions
            per_tick += res.counters.sum(axis=0)
            per_sample[ids] = res.counters.sum(axis=1)
            if recorder is not None:
                recorder.add(ids, res.counters)
            if writer is not None and opts.record:
                writer.append_traces(res.spikes, res.membrane)
            if opts.progress:
                opts.progress(len(ids), n)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    wall = time.perf_counter() - t0
    labels = np.asarray(data.labels, np.int64)
    accuracy = float((preds == labels).mean()) if n else float("nan")
    totals = layer_totals(per_tick, chip.layer_names)
    from chipsim.noise.read import realised as read_noise_realised

    read_noise_realised(noise_report, totals)
    summary = {
        "chipsim_version": __version__,
        "net": net.name,
        "net_file": net.source,
        "weights": weights_source,
        "weights_accuracy": {k: bundle.attrs[k] for k in ("teacher_accuracy", "snn_accuracy")
                             if bundle is not None and k in bundle.attrs},
        "data": data_spec,
        "split": opts.split,
        "data_note": getattr(data, "note", None),
        "samples": n,
        "seed": opts.seed,
        "batch_size": bs,
        "accuracy": accuracy,
        "time_steps": net.time_steps,
        "encoder": net.encoder.kind,
        "delay": net.chip.delay,
        "pipeline_fill_ticks": chip.pipeline_fill,
        "noise": noise_report,
        "wall_s": round(wall, 3),
        "chip_s": round(chip_s, 3),
        "samples_per_s": n / chip_s if chip_s > 0 else None,
        "kernel_load_s": round(kernel_s, 3),
        "host_link": _host_link(encoder.host_link(chip.n_inputs, n),
                                net.classes * ((net.chip.counter_bits + 7) // 8), stream.stats.to_dict()),
        "layers": {name: {**totals[name], "neurons": chip.layers[li].n_out,
                          "spike_rate": totals[name]["spikes"] / max(1, n * net.time_steps * chip.layers[li].n_out),
                          "tiles": chip.tiles.get(name, 0),
                          "tile_utilisation": chip.tile_utilisation.get(name, 0.0)}
                   for li, name in enumerate(chip.layer_names)},
        "cost": cost_estimate(chip, per_tick, n),
        "synops": synops_vs_mac(chip, totals, n),
        "neurobench": neurobench_metrics(chip, totals, activity, neuron_counts, n),
    }
    adc = adc_summary(chip, totals)
    if adc is not None:
        summary["adc"] = adc
    if net.encoder.kind == "events":
        summary["input_events"] = encoder.input_events()
        summary["input_warnings"] = dict(getattr(data, "warnings", {}))
    trace = None
    if recorder is not None:
        trace = _timing_sections(chip, net, summary, recorder.counts, bs, opts.timeline_sample)
    outcome = RunOutcome(summary, preds, labels, per_tick, per_sample, out_dir)
    if out_dir is not None:
        outcome.files.append(writer.close({"predictions": preds, "labels": labels, "sample_ids": np.arange(n),
                                           "counters": per_tick, "counters_per_sample": per_sample}))
        outcome.files.append(write_summary(out_dir, summary))
        if recorder is not None:
            from chipsim.architect.timed_run import save_counts, write_timeline

            outcome.files.append(write_timeline(out_dir, trace))
            meta = {**timing_meta(net, summary, bs), "timeline_sample": opts.timeline_sample}
            outcome.files.append(save_counts(out_dir, recorder.counts, meta))
    return outcome


def timing_meta(net: NetConfig, summary: dict, batch_size: int) -> dict:
    """What re-pricing a run's timing counts needs besides the chip config."""
    link = summary["host_link"]
    return {"net": net.to_dict(), "batch_size": batch_size, "bytes_in_per_sample": link["bytes_in_per_sample"],
            "bytes_out_per_sample": link["bytes_out_per_sample"], "target_bytes_per_sample": 0,
            "accuracy": summary["accuracy"], "energy_uj_per_sample": summary["cost"]["energy_uj_per_sample_total"]}


def _timing_sections(chip: Chip, net: NetConfig, summary: dict, counts: np.ndarray, batch_size: int,
                     trace_sample: int) -> dict:
    """Add summary['timing'] and summary['area']; return the traced sample's Chrome trace."""
    from chipsim.architect.counters import chip_geometry
    from chipsim.architect.timed_run import link_bytes, sections

    link = summary["host_link"]
    traffic = link_bytes(chip, link["bytes_in_per_sample"], link["bytes_out_per_sample"])
    weighted = sum(layer.n_out for layer in chip.layers if layer.type in ("conv", "fc"))
    timing, area, trace = sections(net.chip, chip_geometry(chip), chip.layer_names, counts, batch_size, traffic,
                                   chip.n_neurons, weighted, trace_sample)
    summary["timing"] = timing
    summary["area"] = area
    return trace

