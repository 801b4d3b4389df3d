"""Command line of NIR exchange: `chipsim import-nir`, `chipsim export-nir`. Parse, call, print.

The work is in chipsim/interchange/ (and chipsim/api.py for the deployed chip).
"""
from __future__ import annotations

from pathlib import Path

import click

from chipsim.cli.errors import SEED, FiniteFloat, user_facing


def _known_data(spec: str) -> bool:
    from chipsim.hostlink.datasets import BUNDLED, INSTALLED

    if spec == "digits" or spec in BUNDLED or spec in INSTALLED:
        return True
    try:
        return Path(spec).expanduser().exists()
    except (OSError, ValueError):
        return False


@click.command("import-nir")
@click.argument("graph", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for NAME.yaml and NAME.h5 (created; existing files are never overwritten).")
@click.option("--dt", type=FiniteFloat(min=0, min_open=True), default=1e-4, show_default=True,
              help="Seconds per chip tick: LIF leak 1 - dt / tau (snntorch and nirtorch export for dt = 1e-4).")
@click.option("--time-steps", type=click.IntRange(1, 65535), default=None,
              help="Ticks per sample (default: the graph's chipsim metadata, else 32).")
@click.option("--encoder", type=click.Choice(["direct", "rate", "if"]), default=None,
              help="How the host feeds the input (default: the graph's chipsim metadata, else direct).")
@click.option("--input-bits", type=click.IntRange(1, 16), default=None, help="Direct encoder input width (default 8).")
@click.option("--input-scale", type=FiniteFloat(min=0, min_open=True), default=1.0, show_default=True,
              help="The graph's input value for one chip input level, e.g. 1/16 for a graph trained on pixel / 16.")
@click.option("--weight-bits", type=click.IntRange(2, 16), default=None, help="Weight register width (default 8).")
@click.option("--data", default=None, help="The net's dataset (default: the graph's chipsim metadata, else digits).")
@click.option("--name", default=None, help="Net name (default: the graph's chipsim metadata, else the file's stem).")
def import_nir(graph, out, dt, time_steps, encoder, input_bits, input_scale, weight_bits, data, name):
    """Map a NIR graph onto the chip: write a net YAML and an HDF5 weights file that `chipsim run --net` runs."""
    from chipsim.interchange.nir_chain import NIRImportError
    from chipsim.interchange.nir_import import ImportOptions, import_nir as run

    for flag, value in (("--data", data), ("--name", name)):
        if value is not None and not value.strip():
            raise click.BadParameter("empty; expected a name (or leave the flag out for the graph's own)",
                                     param_hint=flag)
    if data is not None and not _known_data(data):
        raise click.BadParameter(f"{data!r} is neither a dataset chipsim knows nor an existing path; expected e.g. "
                                 f"digits, fashion-mnist or a folder/archive", param_hint="--data")
    opts = ImportOptions(dt=dt, time_steps=time_steps, encoder=encoder, input_bits=input_bits,
                         input_scale=input_scale, weight_bits=weight_bits, data=data, name=name)
    with user_facing((NIRImportError, ValueError, OSError), "interrupted: nothing written"):
        result = run(graph, out, opts)
    for layer, r in result["layers"].items():
        click.echo(f"{layer:<10} <- {' + '.join(r['nir_nodes']):<28} scale {r['scale']:.4g}  threshold "
                   f"{r['threshold']}  {r['quantization']}  max weight error {r['weight_max_rel']:.2g}")
    for note in result["approximations"]:
        click.echo(f"note: {note}")
    click.echo(f"wrote {result['net']}, {result['weights']} (run: chipsim run --net {result['net']})")


@click.command("export-nir")
@click.option("--net", default="digits", show_default=True, help="Bundled net name or YAML path.")
@click.option("--weights", default=None,
              help="Weights file or a saved chip state (e.g. calibrated.h5). Default: the net's bundled weights.")
@click.option("--noise", multiple=True, help="Deploy with this non-ideality first (as `chipsim run --noise`); repeatable.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the frozen noise.")
@click.option("--dt", type=FiniteFloat(min=0, min_open=True), default=1e-4, show_default=True,
              help="Seconds per tick written into LIF time constants (tau = dt / (1 - alpha)).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="NIR file to write.")
def export_nir(net, weights, noise, seed, dt, out):
    """Write the deployed (or calibrated) chip as a NIR graph, in real units (weights x scale)."""
    from chipsim.api import deploy
    from chipsim.workflows.runner import RunError

    try:
        exists = out.exists()
    except OSError as exc:          # a name too long for the file system
        raise click.ClickException(f"--out {str(out)[:200]}: cannot be used ({exc.strerror or exc}); expected a "
                                   f"file path this system accepts") from None
    if exists:
        raise click.ClickException(f"--out {out}: exists; expected a new file (nothing is overwritten)")
    with user_facing((RunError, ValueError, OSError), "interrupted: nothing written"):
        path = deploy(net, weights=weights, noise=tuple(noise), seed=seed).export_nir(out, dt=dt)
    click.echo(f"wrote {path}")
