"""Command line for the architect's tools: `chipsim report`, `chipsim sweep`, and `run --chip`.

Parse, call, print; the work is in chipsim/architect/report.py and chipsim/workflows/sweep.py.
Heavy imports (matplotlib, dask) happen inside the commands.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from chipsim.cli.errors import SEED, user_facing
from chipsim.cli.first_run import announce_compile
from chipsim.cli.progress import LazyProgressBar


def apply_chip_option(net: str, chip: str, out: Path, resume) -> tuple[str, Path]:
    """`chipsim run --chip NAME|FILE`: write OUT/net.yaml (the net on that chip), return (its path, out).

    The preset's tile geometry, clock and costs replace the net's chip section;
    register widths and `delay` stay the net's, so results are unchanged and
    only counts of tiles and the prices differ."""
    import yaml

    from chipsim.config import ConfigError, net_mapping_with_chip
    from chipsim.models import resolve_net

    if resume is not None:
        raise click.UsageError("--chip cannot be combined with --resume (the run keeps the chip it started on)")
    try:
        mapping = net_mapping_with_chip(resolve_net(net), chip)
    except (ConfigError, FileNotFoundError) as exc:
        raise click.ClickException(f"--chip {chip}: {exc}") from None
    out = Path(out)
    try:
        finished = (out / "summary.json").exists()
    except (OSError, ValueError):                 # a path this system refuses (too long): named by the runner
        from chipsim.workflows.runner import RunError, check_out_dir

        try:
            check_out_dir(out)
        except RunError as exc:
            raise click.ClickException(str(exc)) from None
        raise
    if not finished:      # a finished run is refused later, untouched
        from chipsim.io.atomic import WriteError, atomic_path

        try:
            with atomic_path(out / "net.yaml") as tmp:
                tmp.write_text(f"# {net} on chip preset {chip} (written by chipsim run --chip)\n"
                               + yaml.safe_dump(mapping, sort_keys=False))
        except WriteError as exc:
            raise click.ClickException(f"--out {out}: {exc}") from None
    return str(out / "net.yaml"), out


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of the table.")
@click.option("--no-plots", is_flag=True, help="Do not write the PNG plots.")
@click.option("--chip", default=None,
              help="Re-price the run on another chip preset (NAME or FILE) with the same tile geometry.")
def report(run_dir, as_json, no_plots, chip):
    """Per-layer counts, gated updates, cycles and energy of a finished run; PNG plots into RUN_DIR."""
    from chipsim.config import ConfigError
    from chipsim.architect.report import ReportError, build_report, format_table, load_run, write_plots

    try:
        rep = build_report(load_run(run_dir, chip))
        table = format_table(rep)
    except (ReportError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        # a damaged summary.json or run.h5 (truncated, not JSON / HDF5, keys missing or of another type)
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise click.ClickException(f"{run_dir}: summary.json or run.h5 is damaged ({type(exc).__name__}: {text}); "
                                   f"expected the files of a finished chipsim run") from None
    rep["plots"] = [] if no_plots else [str(p) for p in write_plots(rep, run_dir)]
    if as_json:
        click.echo(json.dumps(rep, indent=2, default=float))
        return
    click.echo(table)
    if rep["plots"]:
        click.echo(f"wrote {', '.join(rep['plots'])}")


@click.command()
@click.option("--net", "nets", multiple=True, default=("digits",), show_default=True,
              help="Bundled net name or YAML path; repeatable.")
@click.option("--noise", "axes", multiple=True,
              help="One sweep axis: KIND=L1,L2,... (e.g. mismatch=0,0.1,0.2 or bits=8,6,4,3); repeatable. "
                   "KIND.scope=S1,S2 (thermal.scope=current,input, silence.scope=chip,tick) crosses every "
                   "level of KIND with each scope.")
@click.option("--base-noise", multiple=True,
              help="A --noise item every cell gets before its axis item (e.g. mismatch=0.2, bits.quantizer=minmax); "
                   "repeatable.")
@click.option("--seeds", type=click.IntRange(min=1, max=10_000), default=3, show_default=True,
              help="Seeds per level: F..F+N-1 (F is --first-seed).")
@click.option("--first-seed", type=SEED, default=0, show_default=True,
              help="First seed (add seeds to a finished sweep: --first-seed 3 --seeds 2 runs seeds 3 and 4).")
@click.option("--calibrate-epochs", type=click.IntRange(min=1, max=10_000), default=None,  # the paper: 50
              help="Calibrate every cell on chip for this many epochs (default: inference only).")
@click.option("--calib-samples", type=click.IntRange(min=1), default=None, help="Training samples per calibration.")
@click.option("--samples", type=click.IntRange(min=1), default=None, help="Test samples per cell.")
@click.option("--learn", multiple=True, help="Override the net's learning section: KEY=VALUE; repeatable.")
@click.option("--synapse", default=None, help="Synapse device of every calibration cell: a preset NAME in "
                                              "models/synapses or a YAML FILE (default: linear).")
@click.option("--weights", default=None, help="Weights for every cell (default: the net's bundled weights).")
@click.option("--data", default=None, help="Dataset for every cell (default: the net's).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--chip", default=None, help="Chip preset (NAME or FILE) for every cell.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Sweep folder (created; an existing sweep in it is resumed).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local Dask worker processes (default: one per core).")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (instead of --workers).")
@click.option("--threads-per-cell", type=click.IntRange(min=1), default=1, show_default=True,
              help="Numba threads inside one cell.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None,
              help="Calibration samples between checkpoints of a cell (default: once per epoch).")
@click.option("--pause-after-epoch", type=click.IntRange(min=1), default=None,
              help="Stop every calibration cell (resumably) once it has this many epochs done: run the first "
                   "epoch of all cells before the second of any; the same command with a larger N continues.")
@click.option("--target-cache", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder the calibration cells share the teacher's targets in (computed once per image; "
                   "results unchanged). Workers need it on a shared file system.")
@click.option("--chip-param", "chip_params", multiple=True,
              help="A design-space axis KEY=V1,V2,... over a chip parameter (tile_rows, parallel_tiles, "
                   "parallel_write_arrays, weight_bits, clock_mhz, link_gbit_s, spike_queue_depth, ...); repeatable. "
                   "Parameters that do not change results are re-priced from recorded counts, not re-run.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def sweep(nets, axes, base_noise, seeds, first_seed, checkpoint_every, target_cache, calibrate_epochs, calib_samples,
          samples, learn, weights, data, batch_size, chip, out, workers, scheduler, threads_per_cell, no_progress,
          chip_params, synapse, pause_after_epoch):
    """Run a noise grid (net x noise level x seed) on Dask; write sweep.csv and a Figure-4 plot into OUT.
    With --chip-param: a design-space grid over chip parameters (and the --noise levels), sweep.csv and a
    Pareto plot of latency, energy and area (chipsim/workflows/chip_sweep.py)."""
    from chipsim.config import ConfigError
    from chipsim.workflows.sweep import SweepError, SweepOptions, expand, parse_axis, run_sweep

    if chip_params:
        _chip_sweep(nets, axes, base_noise, seeds, first_seed, calibrate_epochs, samples, weights, data, batch_size,
                    chip, out, workers, scheduler, no_progress, chip_params)
        return
    if not axes:
        raise click.UsageError("expected at least one sweep axis: --noise KIND=L1,L2,... or --chip-param KEY=V1,V2,...")

    if workers is not None and scheduler is not None:
        raise click.UsageError("--workers and --scheduler exclude each other (the scheduler's cluster has its own)")
    if scheduler is None:       # local workers: a cell cannot have more threads than this machine has cores
        import numba

        if threads_per_cell > numba.config.NUMBA_NUM_THREADS:
            raise click.BadParameter(f"expected at most {numba.config.NUMBA_NUM_THREADS} (cores available), got "
                                     f"{threads_per_cell}", param_hint="--threads-per-cell")
    for flag, value in (("--learn", learn or None), ("--calib-samples", calib_samples),
                        ("--checkpoint-every", checkpoint_every), ("--target-cache", target_cache),
                        ("--synapse", synapse), ("--pause-after-epoch", pause_after_epoch)):
        if value is not None and calibrate_epochs is None:      # refused, not silently ignored
            raise click.UsageError(f"{flag} applies to calibration: expected --calibrate-epochs N with it")
    if first_seed + seeds - 1 > SEED.max:
        raise click.BadParameter(f"{first_seed} + {seeds} seeds passes {SEED.max}; expected seeds within 64 bits",
                                 param_hint="--first-seed")
    announce_compile()
    try:
        opts = SweepOptions(nets=tuple(nets), axes=tuple(parse_axis(a) for a in axes), out=out, seeds=seeds,
                            first_seed=first_seed, checkpoint_every=checkpoint_every,
                            target_cache=str(target_cache) if target_cache else None, base_noise=tuple(base_noise),
                            calibrate_epochs=calibrate_epochs, samples=samples, calib_samples=calib_samples,
                            learn=tuple(learn), weights=weights, data=data, batch_size=batch_size, chip=chip,
                            synapse=synapse, pause_after_epoch=pause_after_epoch,
                            workers=workers, scheduler=scheduler, threads_per_cell=threads_per_cell)
        total = len(expand(opts))
    except SweepError as exc:
        raise click.ClickException(str(exc)) from None
    bar = LazyProgressBar("sweep")

    def progress(done: int, todo: int, cell_id: str) -> None:
        bar(1, todo)

    def echo(line: str) -> None:
        click.echo(("\n" if bar.bar is not None else "") + line, err=True)

    with user_facing((SweepError, ConfigError, FileNotFoundError),
                     f"\ninterrupted: finished cells are kept; run the same command to resume into {out}", bar):
        result = run_sweep(opts, None if no_progress else progress, echo)
    ok = sum(1 for r in result.rows if r["status"] == "ok")
    if result.failures and not ok and not result.ran:     # nothing could start: one error, as for any command
        first = result.failures[0]["error"]
        raise click.ClickException(f"every cell ({len(result.failures)}) failed before it ran: {first} "
                                   f"(all in {out / 'failures.json'})")
    click.echo(f"{total} cells: {ok} ok ({result.skipped} already finished, {result.ran} run), "
               + (f"{result.paused} paused after epoch {pause_after_epoch}, " if result.paused else "")
               + f"{len(result.failures)} failed; {result.wall_s:.1f} s")
    for f in result.failures:
        click.echo(f"  failed {f['cell']}: {f['error']}")
    click.echo(f"wrote {result.csv}" + (f", {result.plot}" if result.plot else "")
               + (f", {out / 'failures.json'}" if result.failures else ""))
    if result.failures:
        sys.exit(1)


def _chip_sweep(nets, axes, base_noise, seeds, first_seed, calibrate_epochs, samples, weights, data, batch_size, chip,
                out, workers, scheduler, no_progress, chip_params):
    from chipsim.config import ConfigError
    from chipsim.workflows.chip_sweep import ChipSweepError, ChipSweepOptions, parse_chip_param, run_chip_sweep
    from chipsim.workflows.runner import RunError
    from chipsim.workflows.sweep import SweepError, parse_axis

    for flag, value in (("--calibrate-epochs", calibrate_epochs), ("--workers", workers), ("--scheduler", scheduler)):
        if value is not None:      # refused, not silently ignored
            raise click.UsageError(f"{flag} does not apply to --chip-param sweeps (inference runs in this process, "
                                   f"timed by the timing engine); expected it without --chip-param")
    try:
        opts = ChipSweepOptions(nets=tuple(nets), params=tuple(parse_chip_param(p) for p in chip_params), out=out,
                                noise_axes=tuple(parse_axis(a) for a in axes), base_noise=tuple(base_noise),
                                seeds=seeds if axes else 1, first_seed=first_seed, samples=samples, weights=weights,
                                data=data, batch_size=batch_size, chip=chip)
    except (ChipSweepError, SweepError) as exc:
        raise click.ClickException(str(exc)) from None
    announce_compile()
    bar = LazyProgressBar("chip runs")
    with user_facing((ChipSweepError, ConfigError, RunError, FileNotFoundError),
                     f"\ninterrupted: finished runs are kept; run the same command to resume into {out}", bar):
        csv_path, plot, rows = run_chip_sweep(opts, None if no_progress else (lambda done, todo: bar(1, todo)))
    ran = sum(1 for r in rows if r["rerun"])
    click.echo(f"{len(rows)} chip configurations ({ran} chip runs, the rest re-priced from recorded counts)")
    click.echo(f"wrote {csv_path}" + (f", {plot}" if plot else ""))
