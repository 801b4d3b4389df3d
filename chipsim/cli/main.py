"""Command line: `chipsim run`, `chipsim nets` (and the commands of cli_analysis, cli_zoo, cli_interchange).

Parse, call, print; no simulation logic here."""
from __future__ import annotations

import time
from pathlib import Path

import click

from chipsim import __version__
from chipsim.cli.errors import SEED, CheckedGroup, user_facing
from chipsim.cli.first_run import announce_compile
from chipsim.cli.progress import LazyProgressBar

RECORDABLE = ("spikes", "membrane")


def _parse_record(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    kinds = tuple(v.strip() for v in value.split(",") if v.strip())
    for kind in kinds:
        if kind not in RECORDABLE:
            raise click.BadParameter(f"expected a comma-separated list of {', '.join(RECORDABLE)}, got {kind!r}",
                                     param_hint="--record")
    return kinds


def _default_out(net: str) -> Path:
    stem = Path(net).name.removesuffix(".yaml")
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _print_summary(summary: dict) -> None:
    click.echo(f"net {summary['net']}  samples {summary['samples']}  seed {summary['seed']}  "
               f"T {summary['time_steps']}  encoder {summary['encoder']}")
    if summary.get("data_note"):
        click.echo(f"data: {summary['data_note']}")
    compiled = summary.get("kernel_load_s", 0.0)
    click.echo(f"accuracy {summary['accuracy'] * 100:.2f}%   chip {summary['samples_per_s']:.1f} samples/s "
               f"({summary['chip_s']:.2f} s chip, {summary['wall_s']:.2f} s wall"
               f"{f', after {compiled:.0f} s compiling the kernels' if compiled >= 2 else ''})")
    header = f"{'layer':<10}{'neurons':>9}{'rate':>8}{'spk/smp':>11}{'syn/smp':>12}{'tiles':>7}{'util':>7}{'sat':>6}"
    click.echo(header)
    n = max(1, summary["samples"])
    for name, c in summary["layers"].items():
        syn = (c["synaptic_events_ac"] + c["synaptic_events_mac"]) / n
        sat = c["membrane_saturations"] + c["counter_saturations"]
        click.echo(f"{name:<10}{c['neurons']:>9}{c['spike_rate']:>8.3f}{c['spikes'] / n:>11.1f}{syn:>12.3g}"
                   f"{c['tiles']:>7}{c['tile_utilisation']:>7.2f}{sat:>6}")
    cost = summary["cost"]
    click.echo(f"per sample: {cost['cycles_per_sample']:.3g} cycles, {cost['latency_us_per_sample']:.1f} us, "
               f"{cost['energy_uj_per_sample_total']:.3g} uJ; synops/MAC {summary['synops']['synops_per_mac']:.3f}; "
               f"host link {round(summary['host_link']['bytes_in_per_sample'], 1)} B in per sample"
               + (" (AER)" if "aer" in summary["host_link"] else ""))
    if "input_events" in summary:
        ev = summary["input_events"]
        warned = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in (summary.get("input_warnings") or {}).items())
        click.echo(f"input events: {ev['in_files']} in files, {ev['in_window']} in the window, {ev['delivered']} "
                   f"delivered, {ev['merged']} merged by binning/downsampling" + (f"; warnings: {warned}" if warned else ""))
    timing = summary.get("timing")
    if timing:
        cps = timing["cycles_per_sample"]
        click.echo(f"timing: {cps['mean']:.4g} cycles per sample (p99 {cps['p99']:.4g}), "
                   f"{timing['latency_us_per_sample']:.1f} us, bound by {timing['bound']}; analytic "
                   f"{timing['analytic']['cycles_per_sample']:.4g} cycles; area {summary['area']['total_mm2']:.3g} mm^2")
    noise = summary.get("noise") or {}
    if noise:
        click.echo(f"noise: {noise.get('requested')}")


@click.group(cls=CheckedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chipsim")
def main() -> None:
    """chipsim: a neuromorphic chip that learns on chip (online Local Tandem Learning)."""


@main.command()
@click.option("--net", default="digits", show_default=True, help="Bundled net name (see `chipsim nets`) or YAML path.")
@click.option("--weights", default=None, help="HDF5 weights file, or 'random'. Default: the net's bundled weights.")
@click.option("--data", default=None, help="Dataset: 'digits', a CIFAR folder, an image folder or archive. Default: the net's.")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--samples", type=click.IntRange(min=1), default=None, help="Use only the first N samples (class-balanced).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of every random draw of the run.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Numba threads (default: all cores).")
@click.option("--noise", multiple=True, help="Non-ideality, repeatable: mismatch=0.2, bits=4, thermal=0.05, thermal.scope=current|input|additive, silence=0.1, silence.scope=chip|tick, stuck=0.01, stuck.value=trained|low|high|zero, drift=SECONDS, preset=NAME.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder (default runs/NET-TIME).")
@click.option("--record", default=None, help="Record traces: spikes, membrane (comma-separated).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout instead of the table.")
@click.option("--calibrate-epochs", type=click.IntRange(min=1, max=10_000), default=None,  # the paper: 50
              help="Calibrate on chip with online LTL for this many epochs of the training split.")
@click.option("--calib-samples", type=click.IntRange(min=1), default=None, help="Training samples used for calibration.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Samples between calibration checkpoints.")
@click.option("--resume", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Resume the interrupted calibration in this folder.")
@click.option("--learn", multiple=True, help="Override the net's learning section: KEY=VALUE (e.g. mode=exact, pulse=2).")
@click.option("--target-cache", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Keep the teacher's targets in this folder: later calibrations on the same data skip the teacher "
                   "(results unchanged; VGG-11 needs about 0.23 MB per training image).")
@click.option("--chip", default=None, help="Chip preset (NAME in models/chips or FILE): its geometry and costs replace the net's.")
@click.option("--timing", is_flag=True,
              help="Schedule every tick on the chip's resources in whole cycles (summary.json `timing` and `area`, "
                   "OUT/timeline.json, OUT/timing_counts.npz for re-pricing).")
@click.option("--timeline-sample", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --timing: the sample whose schedule goes to timeline.json (Chrome trace).")
@click.option("--synapse", default=None,
              help="Synapse device of the learning circuit: a preset NAME in models/synapses (linear, rram-es, rram-sb, "
                   "ecram, capacitor, pcm, ...) or a YAML FILE. Default: linear (the plain register write).")
def run(net, weights, data, split, samples, batch_size, seed, threads, noise, out, record, no_progress, as_json,
        calibrate_epochs, calib_samples, checkpoint_every, resume, learn, target_cache, chip, timing, timeline_sample,
        synapse):
    """Deploy a net on the simulated chip and run inference on a dataset split (or calibrate it)."""
    from chipsim.workflows.runner import RunError, RunOptions, run_inference

    announce_compile()

    record_kinds = _parse_record(record)
    if not timing and timeline_sample:
        raise click.UsageError("--timeline-sample applies to the timing engine: expected --timing with it")
    if timing and resume is not None:
        raise click.UsageError("--timing cannot be combined with --resume (the interrupted part's counts were not "
                               "kept); expected a new calibration with --timing")
    if timeline_sample and calibrate_epochs is not None:
        raise click.UsageError("--timeline-sample applies to inference runs (a calibration traces its first "
                               "training sample); expected it without --calibrate-epochs")
    if chip is not None:   # writes OUT/net.yaml: the net on that chip (chipsim/cli/analysis.py)
        from chipsim.cli.analysis import apply_chip_option

        net, out = apply_chip_option(net, chip, out or _default_out(net), resume)
    if threads is not None:
        import numba

        if threads > numba.config.NUMBA_NUM_THREADS:
            raise click.BadParameter(f"expected at most {numba.config.NUMBA_NUM_THREADS} (cores available), got {threads}",
                                     param_hint="--threads")
        numba.set_num_threads(threads)
    if calibrate_epochs is not None or resume is not None:
        _calibrate(net, weights, data, samples, batch_size, seed, noise, out, calibrate_epochs or 1, calib_samples,
                   checkpoint_every, resume, learn, no_progress, as_json, target_cache, timing, synapse)
        return
    for flag, value in (("--target-cache", target_cache), ("--calib-samples", calib_samples),
                        ("--checkpoint-every", checkpoint_every), ("--learn", learn or None),
                        ("--synapse", synapse)):
        if value is not None:       # refused, not silently ignored
            raise click.UsageError(f"{flag} applies to calibration: expected --calibrate-epochs N (or --resume DIR) "
                                   f"with it")
    opts = RunOptions(net=net, weights=weights, data=data, split=split, samples=samples, batch_size=batch_size,
                      seed=seed, record=record_kinds, out=out or _default_out(net), noise=tuple(noise),
                      timing=timing, timeline_sample=timeline_sample)
    bar = LazyProgressBar("chip")
    if not no_progress and not as_json:
        opts.progress = bar
    with user_facing((RunError, ValueError, FileNotFoundError), "interrupted: no results written", bar):
        outcome = run_inference(opts)
    if as_json:
        import json

        click.echo(json.dumps(outcome.summary, indent=2, default=str))
    else:
        _print_summary(outcome.summary)
        click.echo(f"wrote {', '.join(str(p) for p in outcome.files)}")


def _calibrate(net, weights, data, samples, batch_size, seed, noise, out, epochs, calib_samples, checkpoint_every,
               resume, learn, no_progress, as_json, target_cache=None, timing=False, synapse=None):
    import json

    from chipsim.workflows.calibrate import CalibOptions, run_calibration
    from chipsim.workflows.runner import RunError

    opts = CalibOptions(net=net, weights=weights, data=data, samples=samples, batch_size=batch_size, seed=seed,
                        noise=tuple(noise), out=out or (None if resume else _default_out(net)), epochs=epochs,
                        calib_samples=calib_samples, checkpoint_every=checkpoint_every, resume=resume,
                        learn=tuple(learn), target_cache=target_cache, timing=timing, synapse=synapse)
    bar = LazyProgressBar("calibrating")
    if not no_progress and not as_json:
        opts.on_batch = bar
    with user_facing((RunError, ValueError, FileNotFoundError), f"interrupted: resume with --resume {opts.out or resume}",
                     bar):
        summary = run_calibration(opts)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.echo(f"net {summary['net']}  noise {summary['noise'].get('requested') if summary['noise'] else 'none'}")
    per_epoch = ", ".join(f"{a * 100:.2f}%" for a in summary["accuracy_per_epoch"])
    click.echo(f"accuracy before {summary['accuracy_before'] * 100:.2f}%  after {summary['accuracy_after'] * 100:.2f}%"
               f"  (per epoch: {per_epoch})")
    click.echo(f"{'layer':<10}{'boxcar':>9}{'sign':>9}{'pulses':>12}{'cells':>10}{'sat':>8}")
    for name, c in summary["learning_layers"].items():
        click.echo(f"{name:<10}{c['boxcar_fraction']:>9.3f}{c['sign_fraction']:>9.3f}{c['pulses']:>12}"
                   f"{c['cell_writes']:>10}{c['weight_saturations']:>8}")
    timing_info = summary.get("timing")
    if timing_info:
        click.echo(f"timing: {timing_info['cycles_per_sample']['mean']:.4g} cycles per calibration sample, "
                   f"{timing_info['latency_us_per_sample']:.1f} us, bound by {timing_info['bound']}")
    wpc = summary.get("writes_per_cell", {}).get("all", {})
    if wpc.get("cells"):
        click.echo(f"synapse {summary['synapse']['name']}: writes per cell mean {wpc['mean']:.2f}, p99 {wpc['p99']:.0f}, "
                   f"max {wpc['max']}")
    click.echo(f"calibrated weights: {summary['calibrated_weights']} (use with --weights)")


@main.command()
def nets() -> None:
    """List the bundled networks."""
    from chipsim.config import ConfigError, load_net
    from chipsim.models import MODELS_DIR, bundled_nets

    for name in bundled_nets():
        try:
            net = load_net(MODELS_DIR / f"{name}.yaml")
        except ConfigError as exc:
            click.echo(f"{name:<12} INVALID: {exc}")
            continue
        weights = "trained weights" if net.weights else "no bundled weights (--weights PATH|random)"
        n_w = sum(layer.fan_in * layer.out_shape[0] for layer in net.weighted_layers)
        click.echo(f"{name:<12} {len(net.weighted_layers)} weighted layers, {n_w / 1e6:.2f} M weights, "
                   f"T={net.time_steps}, {net.encoder.kind} encoder, data {net.data}; {weights}")


from chipsim.cli.analysis import report, sweep  # noqa: E402  (architect's report and noise sweeps)

main.add_command(report)
main.add_command(sweep)

from chipsim.cli.zoo import import_torch, pretrain  # noqa: E402  (model zoo: needs the torch extra when run)

main.add_command(pretrain)
main.add_command(import_torch)

from chipsim.cli.interchange import export_nir, import_nir  # noqa: E402  (NIR in and out)

main.add_command(import_nir)
main.add_command(export_nir)

if __name__ == "__main__":
    main()
