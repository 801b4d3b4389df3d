"""Command line of the model zoo: `chipsim pretrain`, `chipsim import-torch` (need the torch extra).

Parse, call, print; the work is in chipsim.models.pretrain and chipsim.models.import_torch,
which import PyTorch only when a command runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from chipsim.cli.errors import NONEMPTY, SEED, FiniteFloat, user_facing


@click.command()
@click.option("--net", required=True, help="Bundled net name (see `chipsim nets`) or YAML path.")
@click.option("--data", type=NONEMPTY, default=None,
              help="Training data (its train split trains, its test split measures): a CIFAR folder or archive, "
                   "'fashion-mnist', an IDX folder, a Tiny ImageNet folder, 'digits'. Default: the net's.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Teacher epochs.")
@click.option("--method", type=click.Choice(["convert", "offline-ltl", "tandem"]), default="convert",
              show_default=True,
              help="Teacher -> SNN: threshold balancing, offline LTL (paper Eq. 4-8), or tandem learning "
                   "(Wu et al. 2021; the --ltl-* options set its epochs, samples, start, rate and batch).")
@click.option("--teacher-only", is_flag=True, help="Train only the teacher (state dict in OUT.pretrain/teacher.pt).")
@click.option("--teacher", "teacher_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Skip teacher training: start from this PyTorch state dict (see import-torch).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Weights file to write (default ./NET.h5); checkpoints go to OUT.pretrain/.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run of this --out from its checkpoint.")
@click.option("--ltl-epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--ltl-samples", type=click.IntRange(min=1), default=None,
              help="Training samples per offline-LTL / tandem epoch (default: all).")
@click.option("--ltl-init", default="convert", show_default=True,
              help="SNN start: 'convert' (the threshold-balanced teacher), 'random' (the paper), or a chipsim "
                   "weights file to fine-tune.")
@click.option("--ltl-lr", type=FiniteFloat(min=0, min_open=True), default=2e-4, show_default=True, help="Adam learning rate of offline LTL / tandem.")
@click.option("--ltl-batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--train-mismatch", type=FiniteFloat(0, 1), default=0.0, show_default=True,
              help="Noise-aware offline LTL: each batch runs through weights and biases x (1 + S xi), "
                   "as on a chip with device mismatch S.")
@click.option("--tandem-progressive", is_flag=True,
              help="With --method tandem: progressive tandem learning, the layers switch from ANN to SNN one at a "
                   "time (L + 1 equal phases of the training steps).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Teacher batch size.")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=0.05, show_default=True, help="Teacher peak learning rate (SGD, cosine).")
@click.option("--weight-decay", type=FiniteFloat(min=0), default=5e-4, show_default=True)
@click.option("--train-samples", type=click.IntRange(min=1), default=None,
              help="Use only the first N training samples (class-balanced).")
@click.option("--eval-samples", type=click.IntRange(min=1), default=None,
              help="Measure accuracies on the first N test samples (class-balanced; default all).")
@click.option("--percentile", type=FiniteFloat(0, 100, min_open=True), default=None,
              help="Activation percentile for y_norm / threshold balancing (default: learning.target_percentile).")
@click.option("--augment/--no-augment", default=None, help="Random crop + flip (default: on for >= 16 px images).")
@click.option("--batchnorm/--no-batchnorm", default=None, help="Teacher BatchNorm (default: on for conv nets).")
@click.option("--dropout", type=FiniteFloat(0, 1, max_open=True), default=None,
              help="Teacher dropout before fc layers (default 0.2 for conv nets, 0 for MLPs).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads for torch and the chip (1 leaves the other cores to others).")
@click.option("--max-minutes", type=FiniteFloat(min=0), default=None,
              help="Stop at the first checkpoint past this many minutes (then --resume).")
@click.option("--checkpoint-minutes", type=FiniteFloat(min=0), default=10.0, show_default=True,
              help="Also checkpoint within an epoch this often (long epochs: a kill loses at most this).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def pretrain(net, data, epochs, method, teacher_only, teacher_file, out, resume, ltl_epochs, ltl_samples, ltl_init,
             ltl_lr, ltl_batch_size, train_mismatch, tandem_progressive, batch_size, lr, weight_decay, train_samples, eval_samples,
             percentile, augment, batchnorm, dropout, seed, threads, max_minutes, checkpoint_minutes, no_progress):
    """Train a teacher ANN from the net YAML, turn it into an SNN, export integer chip weights."""
    from chipsim.models.pretrain import PretrainError, PretrainOptions, Stopped, pretrain as run

    opts = PretrainOptions(net=net, data=data, out=out, epochs=epochs, method=method, teacher_only=teacher_only,
                           teacher=teacher_file, ltl_epochs=ltl_epochs, ltl_samples=ltl_samples, ltl_init=ltl_init,
                           ltl_lr=ltl_lr, ltl_batch_size=ltl_batch_size, train_mismatch=train_mismatch,
                           tandem_progressive=tandem_progressive,
                           batch_size=batch_size, lr=lr,
                           weight_decay=weight_decay, train_samples=train_samples, eval_samples=eval_samples,
                           percentile=percentile, augment=augment, batchnorm=batchnorm, dropout=dropout, seed=seed,
                           threads=threads, resume=resume, max_minutes=max_minutes,
                           checkpoint_minutes=checkpoint_minutes, progress=not no_progress,
                           log=lambda msg: click.echo(msg))
    try:
        with user_facing((PretrainError, ValueError, FileNotFoundError),
                         "interrupted: continue from the last checkpoint with --resume"):
            summary = run(opts)
    except Stopped as exc:
        click.echo(str(exc), err=True)
        sys.exit(3)
    if summary.get("out"):
        t, s = summary["teacher_accuracy"], summary["snn_accuracy"]
        click.echo(f"teacher {t * 100:.2f}%  chip SNN {s * 100:.2f}%  ({summary['out']})")


@click.command("import-torch")
@click.argument("state_dict", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--net", required=True, help="Bundled net name or YAML path the state dict was trained for.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Weights file to write.")
@click.option("--data", type=NONEMPTY, default=None, help="Calibration (train split) and test data. Default: the net's.")
@click.option("--calib-samples", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Training images for threshold balancing.")
@click.option("--eval-samples", type=click.IntRange(min=1), default=None, help="Test samples measured (default all).")
@click.option("--percentile", type=FiniteFloat(0, 100, min_open=True), default=None, help="Threshold-balancing percentile (default: the net's).")
@click.option("--bn-eps", type=FiniteFloat(min=0, min_open=True), default=None, help="BatchNorm eps of the checkpoint (default 1e-5).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def import_torch(state_dict, net, out, data, calib_samples, eval_samples, percentile, bn_eps, threads, no_progress):
    """Turn a compatible PyTorch teacher state dict into integer chip weights (threshold balancing)."""
    from chipsim.models.pretrain import PretrainError

    try:
        from chipsim.models.import_torch import import_torch as run

        summary = run(state_dict, net, out, data=data, calib_samples=calib_samples, eval_samples=eval_samples,
                      percentile=percentile, bn_eps=bn_eps, threads=threads, progress=not no_progress,
                      log=lambda msg: click.echo(msg))
    except (PretrainError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"teacher {summary['teacher_accuracy'] * 100:.2f}%  chip SNN {summary['snn_accuracy'] * 100:.2f}%  "
               f"({summary['out']})")
