"""On-chip calibration with online LTL: deploy on a noisy chip, measure, learn, measure again.

    accuracy_before  <- test split on the freshly deployed (noisy) chip
    for each epoch: the host streams training samples with teacher targets
                    (a producer thread prepares batch i+1 while the chip learns batch i);
                    the chip learns online, sample by sample, tick by tick
    accuracy per epoch, accuracy_after

Every draw is keyed (seed, ...): the per-epoch sample order by
SeedSequence(seed, 'calibration', epoch), the dynamic noise of training
sample k in epoch e by the id TRAIN_ID_BASE + e * 2^32 + k, so a run killed
at any point and resumed from its last checkpoint ends with weights
bit-identical to an uninterrupted run. Checkpoints are written atomically.

A long run can also stop on purpose: `pause_after_epoch=k` ends it after its
k-th epoch with a checkpoint and returns {'status': 'paused', ...} instead of a
summary; the same call with a larger k (or none) continues it. Results do not
depend on where it paused (nothing in the learning rule looks at the epoch
count), so a sweep can run the first epoch of every cell before the second of
any. After every epoch the folder's progress.json holds the accuracy so far.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numba
import numpy as np

from chipsim import __version__
from chipsim.core.chipstate import save_state, write_state
from chipsim.config import ConfigError, LearningConfig, _parse_learning, _Reader
from chipsim.architect.counters import adc_summary, in_current_columns, layer_totals
from chipsim.core.kernels import layout as K
from chipsim.core.learning import LearningError, setup_learning
from chipsim.core.synapse import resolve_synapse, restore_cells, writes_summary
from chipsim.workflows.runner import RunError, RunOptions, check_out_dir, deploy, encoder_key, load_inputs, prepare_out_dir, \
    resolve_net_option, resolve_weights

TRAIN_ID_BASE = 1 << 48     #: training sample ids never collide with test sample ids (0..N-1)
CHECKPOINT = "checkpoint.h5"
PROGRESS = "progress.json"  #: written after every epoch: epochs done, accuracy before and per epoch so far
LEARN_COUNTERS = ("updates_ungated", "updates_boxcar_gated", "updates_sign_gated", "pulses", "cell_writes",
                  "weight_saturations", "write_noise_draws", "bias_writes", "threshold_writes", "device_failures")


@dataclass
class CalibOptions(RunOptions):
    epochs: int = 1
    calib_samples: int | None = None
    checkpoint_every: int | None = None      #: samples between checkpoints (rounded up to batches)
    resume: Path | None = None
    learn: tuple[str, ...] = ()              #: overrides of the net's learning section, KEY=VALUE
    target_cache: Path | None = None         #: folder keeping teacher targets across runs (TargetStore)
    synapse: str | None = None               #: synapse device preset NAME or FILE (None: the linear register)
    pause_after_epoch: int | None = None     #: stop (resumably) once this many epochs are done; not a result option
    stop_after_batches: int | None = None    #: test hook: simulate a kill after this many training batches
    on_batch: Callable[[int, int], None] | None = field(default=None, repr=False)


class _Killed(RuntimeError):
    pass


def learning_config(net, overrides: tuple[str, ...]) -> LearningConfig:
    """The net's learning section with --learn KEY=VALUE overrides applied (validated like the YAML)."""
    import yaml

    pairs = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise RunError(f"--learn {item!r}: expected KEY=VALUE with a key of the learning section")
        pairs.append((key.strip(), value))
    section = net.learning
    presets = [v.strip() for k, v in pairs if k == "preset"]
    if len(presets) > 1:
        raise RunError(f"--learn preset: given {len(presets)} times ({', '.join(presets)}); expected one")
    if presets:         # the named section first, then the other overrides on top of it
        section = net.learning_preset(presets[0])
        if section is None:
            known = ", ".join(name for name, _ in net.learning_presets) or "none"
            raise RunError(f"--learn preset={presets[0]}: net '{net.name}' ({net.source}) has no such learning "
                           f"preset; expected one of its learning_presets ({known})")
    base = {k: v for k, v in dataclasses.asdict(section).items()}
    base["layers"] = list(base["layers"])
    for key, value in pairs:
        if key != "preset":
            base[key] = yaml.safe_load(value)
    base["enabled"] = True
    weighted = tuple(layer.name for layer in net.weighted_layers)
    try:
        return _parse_learning(_Reader("--learn", base, "learning"), weighted)
    except ConfigError as exc:
        raise RunError(str(exc)) from None


def find_teacher(net, bundle, source: str, max_hops: int = 16) -> tuple[dict, str]:
    """(the float teacher ANN, the file it came from). A saved chip state holds no teacher, but it
    records the weights it was deployed from (its `options.weights`, else the net's own): calibrating
    a calibrated chip again uses that file's teacher, following a chain of states back."""
    from chipsim.core.chipstate import is_chip_state, read_attrs
    from chipsim.core.weights import WeightsError, load_weights

    for _ in range(max_hops):
        if bundle is not None or not is_chip_state(source):
            break
        origin = (read_attrs(source).get("options") or {}).get("weights") or net.weights
        if origin is None or not Path(origin).is_file():
            break
        if is_chip_state(origin):
            source = str(origin)
            continue
        try:
            bundle, source = load_weights(origin), str(origin)
        except WeightsError:
            break
    return (bundle.teacher if bundle is not None else {}), source


def evaluate(chip, encoder, data, batch_size: int, progress=None) -> tuple[float, np.ndarray]:
    """Test accuracy (and predictions) of the chip as it is now; sample ids 0..N-1."""
    from chipsim.hostlink.stream import BatchStream

    n = len(data)
    preds = np.empty(n, np.int64)

    def make(i):
        ids = np.arange(i * batch_size, min(n, (i + 1) * batch_size))
        return ids, encoder.encode(data.images[ids], ids)

    for ids, inputs in BatchStream(make, (n + batch_size - 1) // batch_size):
        preds[ids] = chip.run(inputs, sample_ids=ids).predictions
        if progress:
            progress(len(ids))
    return float((preds == data.labels).mean()), preds


def _options_dict(opts: CalibOptions) -> dict:
    keep = ("net", "weights", "data", "samples", "batch_size", "seed", "noise", "epochs", "calib_samples",
            "checkpoint_every", "learn", "synapse")
    # getattr, not dataclasses.asdict: asdict deep-copies every field, on_batch too (the CLI's progress
    # bar holds an open stream and cannot be copied)
    out = {k: (list(v) if isinstance(v, tuple) else v) for k in keep for v in (getattr(opts, k),)}
    if out["synapse"] is None:      # checkpoints from before --synapse compare equal
        del out["synapse"]
    return out


def _load_checkpoint(run_dir: Path) -> dict:
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise RunError(f"--resume {run_dir}: no {CHECKPOINT}; expected the folder of an interrupted calibration")
    try:
        with h5py.File(path, "r") as f:
            return {"options": json.loads(f.attrs["options"]), "epoch": int(f.attrs["epoch"]),
                    "batch": int(f.attrs["batch"]),
                    "history": json.loads(f.attrs["history"]),
                    # checkpoints of an older chipsim hold fewer counters: map them onto today's by name
                    "counters": in_current_columns(f["learn_counters"][()],
                                                   json.loads(f.attrs["counter_names"])
                                                   if "counter_names" in f.attrs else None),
                    "path": path}
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise RunError(f"{path}: not a readable chipsim checkpoint ({type(exc).__name__}: {exc}); expected the "
                       f"{CHECKPOINT} an interrupted calibration wrote (delete the folder to start over)") from None


def run_calibration(opts: CalibOptions) -> dict:
    """Calibrate as `opts` says (or continue an interrupted run); return the summary.

    A write that fails (disk full, folder read-only) ends the run with a RunError that names the
    file and says which checkpoint is intact: rerunning the same command continues from it."""
    from chipsim.io.atomic import WriteError

    try:
        return _run_calibration(opts)
    except WriteError as exc:
        folder = Path(opts.resume or opts.out)
        try:
            at = _load_checkpoint(folder)
            kept = f"the last checkpoint ({folder / CHECKPOINT}: epoch {at['epoch']}, batch {at['batch']}) is intact"
        except RunError:
            kept = "no checkpoint had been written yet"
        raise RunError(f"{exc}. {kept}; free the space (or fix the folder) and run the same command to "
                       f"continue") from None


def load_training_split(net, data_spec: str, limit: int | None):
    """The calibration (train) split: frames, or recordings for an events net."""
    from chipsim.hostlink.datasets import DatasetError, load_dataset, load_for_net

    try:
        if net.encoder.kind == "events":
            return load_for_net(data_spec, "train", limit, net.input_shape, net.name, net.encoder)
        return load_dataset(data_spec, "train", limit=limit)
    except DatasetError as exc:
        raise RunError(f"--data: calibration needs a training split: {exc}") from None


def _run_calibration(opts: CalibOptions) -> dict:
    from chipsim.core.chipstate import restore_state
    from chipsim.hostlink.encoders import make_encoder
    from chipsim.hostlink.stream import BatchStream
    from chipsim.hostlink.teacher import TargetStore, TeacherTargets
    from chipsim.noise.seeding import generator

    resumed = None
    if opts.resume is None and opts.out is not None:
        check_out_dir(Path(opts.out))             # a finished run, or a path this system refuses (too long)
    if opts.resume is None and opts.out is not None and (Path(opts.out) / CHECKPOINT).is_file() \
            and not (Path(opts.out) / "summary.json").exists():
        # the same command run again after a kill: continue the interrupted run instead of starting over
        saved = _load_checkpoint(Path(opts.out))["options"]
        mine = json.loads(json.dumps(_options_dict(opts), default=str))
        diff = {k: (saved.get(k), mine[k]) for k in mine if saved.get(k) != mine[k]}
        if diff:
            text = "; ".join(f"{k}: checkpoint has {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise RunError(f"--out {opts.out}: holds an interrupted calibration with other options ({text}); "
                           f"expected the same options to continue it (or --resume {opts.out}), or a new --out")
        opts = dataclasses.replace(opts, resume=Path(opts.out))
    if opts.pause_after_epoch is not None and opts.pause_after_epoch < 1:
        raise RunError(f"pause_after_epoch: expected an integer >= 1, got {opts.pause_after_epoch}")
    if opts.resume is not None:
        resumed = _load_checkpoint(Path(opts.resume))
        saved = resumed["options"]
        opts = dataclasses.replace(opts, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()},
                                   out=Path(opts.resume))
        out_dir = Path(opts.resume)
        if _pauses_at(opts, resumed["epoch"]):        # already that far: nothing to build or run
            return _paused(opts, resumed["epoch"], resumed["history"])
        from chipsim.io.atomic import remove_stale_temps

        remove_stale_temps(out_dir)
    else:
        if opts.out is None:
            raise RunError("--out: a calibration needs an output folder (checkpoints and results)")
        out_dir = prepare_out_dir(Path(opts.out))
    if opts.epochs < 1:
        raise RunError(f"--calibrate-epochs: expected an integer >= 1, got {opts.epochs}")
    net = resolve_net_option(opts.net)
    cfg = learning_config(net, opts.learn)
    try:
        synapse = resolve_synapse(opts.synapse)
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    bundle, weights_source = resolve_weights(net, opts.weights, opts.seed)
    chip, noise_report = deploy(net, bundle, weights_source, opts.noise, opts.seed)
    try:
        setup = setup_learning(chip, cfg, opts.seed, synapse)
    except LearningError as exc:
        raise RunError(str(exc)) from None
    data_spec = net.data if opts.data is None else opts.data
    test = load_inputs(net, data_spec, "test", opts.samples)
    train = load_training_split(net, data_spec, opts.calib_samples)
    encoder = make_encoder(net, train.pixel_max, encoder_key(opts.seed))
    # the teacher's input: the frames themselves, or for events the rate images the encoder's bins make
    teacher_images, teacher_max = ((encoder.frames(train.images), encoder.frame_max) if net.encoder.kind == "events"
                                   else (train.images, train.pixel_max))
    teacher_params, teacher_source = find_teacher(net, bundle, weights_source)
    t_norm = time.perf_counter()
    try:
        teacher = TeacherTargets(net, teacher_params, setup, teacher_max, teacher_images)
    except ValueError as exc:
        raise RunError(f"--weights {weights_source}: {exc}") from None
    store = None
    if opts.target_cache is not None:
        try:
            store = TargetStore(opts.target_cache, teacher, teacher_images, train.labels)
        except OSError as exc:
            raise RunError(str(exc)) from None
    bs = opts.batch_size
    n_train = len(train)
    n_batches = (n_train + bs - 1) // bs
    every = max(1, -(-(opts.checkpoint_every or n_train) // bs))      # in batches
    L = len(chip.layers)
    teacher_norm_s = time.perf_counter() - t_norm
    t0 = time.perf_counter()

    if resumed is None:
        acc_before, _ = evaluate(chip, encoder, test, bs)
        history = {"accuracy_before": acc_before, "accuracy_per_epoch": [], "stream": []}
        learn_counters = np.zeros((L, K.N_COUNTERS), np.int64)
        start_epoch, start_batch = 0, 0
    else:
        restore_state(chip, resumed["path"])
        restore_cells(chip, resumed["path"])
        history = resumed["history"]
        learn_counters = resumed["counters"]
        start_epoch, start_batch = resumed["epoch"], resumed["batch"]

    def checkpoint(epoch: int, batch: int) -> None:
        path = out_dir / CHECKPOINT
        from chipsim.io.atomic import atomic_path

        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                write_state(f, chip, {"noise": noise_report})
                chip.synapse_cells.save(f)
                f.attrs["options"] = json.dumps(_options_dict(opts), default=str)
                f.attrs["epoch"], f.attrs["batch"] = epoch, batch
                f.attrs["history"] = json.dumps(history)
                f.create_dataset("learn_counters", data=learn_counters)
                f.attrs["counter_names"] = json.dumps(K.COUNTER_NAMES)

    done_batches = 0
    timing_parts = []            # --timing: the engine's counts of every training sample, in the order run
    for epoch in range(start_epoch, opts.epochs):
        order = generator(opts.seed, "calibration", epoch, "order").permutation(n_train)
        first = start_batch if epoch == start_epoch else 0

        def make_batch(i: int, order=order, epoch=epoch):
            idx = order[i * bs:(i + 1) * bs]
            ids = TRAIN_ID_BASE + (epoch << 32) + idx
            timages, labels = teacher_images[idx], train.labels[idx]
            targets = teacher.targets(timages, labels) if store is None else store.targets(idx, timages, labels)
            return idx, ids, encoder.encode(train.images[idx], ids), targets

        stream = BatchStream(lambda j: make_batch(first + j), n_batches - first)
        t_learn = time.perf_counter()
        for j, (idx, ids, inputs, targets) in enumerate(stream):
            start = cfg.schedule_sample(epoch, (first + j) * bs, n_train)     # the batch's first sample
            for a, b, factor in decay_pieces(cfg, start, len(idx)):
                setup.set_step_factor(factor)
                res = chip.run(inputs[a:b], sample_ids=ids[a:b], learning=setup, targets=targets[a:b])
                learn_counters += res.counters.sum(axis=(0, 1))
                if opts.timing:
                    from chipsim.architect.timing import timing_counts

                    timing_parts.append(timing_counts(res.counters).astype(np.int32))
            batch = first + j + 1
            done_batches += 1
            # learning time (host streaming included, measurements excluded), kept across resumes
            history["learn_s"] = history.get("learn_s", 0.0) + time.perf_counter() - t_learn
            history["learn_samples"] = history.get("learn_samples", 0) + len(idx)
            t_learn = time.perf_counter()
            if opts.on_batch:
                opts.on_batch(len(idx), n_batches * opts.epochs)
            if batch % every == 0 and batch < n_batches:
                checkpoint(epoch, batch)
            if opts.stop_after_batches is not None and done_batches >= opts.stop_after_batches:
                raise _Killed(f"stopped after {done_batches} batches (test hook)")
        acc, _ = evaluate(chip, encoder, test, bs)
        history["accuracy_per_epoch"].append(acc)
        history["stream"].append(stream.stats.to_dict())
        checkpoint(epoch + 1, 0)
        write_progress(out_dir, epoch + 1, opts.epochs, history)
        if _pauses_at(opts, epoch + 1):
            return _paused(opts, epoch + 1, history)

    totals = layer_totals(learn_counters[None], chip.layer_names)
    per_layer = {}
    for name in setup.layers:
        t = totals[name]
        ungated = max(1, t["updates_ungated"])
        per_layer[name] = {**{k: t[k] for k in LEARN_COUNTERS},
                           "boxcar_fraction": t["updates_boxcar_gated"] / ungated,
                           "sign_fraction": t["updates_sign_gated"] / ungated}
    summary = {
        "chipsim_version": __version__, "net": net.name, "net_file": net.source, "time_steps": net.time_steps,
        "weights": weights_source, "teacher": teacher_source, "data": data_spec,
        "data_note": getattr(test, "note", None), "seed": opts.seed, "noise": noise_report,
        "samples": len(test), "calibration_samples": n_train, "epochs": opts.epochs,
        "learning": dataclasses.asdict(cfg),
        # the pulse decay's factor on the last sample
        "step_factor_end": cfg.step_factor(cfg.schedule_sample(opts.epochs - 1, n_train - 1, n_train)),
        "accuracy_before": history["accuracy_before"],
        "accuracy_after": history["accuracy_per_epoch"][-1],
        "accuracy_per_epoch": history["accuracy_per_epoch"],
        "host_stream": history["stream"],
        "learning_layers": per_layer,
        "synapse": synapse.to_dict(),
        "writes_per_cell": writes_summary(chip.synapse_cells.writes, chip, setup.layers),
        "resumed": resumed is not None,
        "wall_s": round(time.perf_counter() - t0, 2),
        "teacher_norm_s": round(teacher_norm_s, 2),
        "learn_s": round(history.get("learn_s", 0.0), 2),
        "learn_samples_per_s": round(history.get("learn_samples", 0) / max(history.get("learn_s", 0.0), 1e-9), 2),
        "threads": numba.get_num_threads(),
        "target_cache": None if store is None else {"folder": str(opts.target_cache), "rows_read": store.hits,
                                                    "rows_computed": store.misses},
        "calibrated_weights": str(out_dir / "calibrated.h5"),
    }
    from chipsim.noise.read import realised as read_noise_realised

    read_noise_realised(noise_report, totals)        # the learning reads' draws (evaluation runs not counted)
    adc = adc_summary(chip, totals)
    if adc is not None:
        summary["adc"] = adc
    timed = _calibration_timing(chip, net, cfg, setup, encoder, summary, timing_parts, bs) if timing_parts else None
    save_state(out_dir / "calibrated.h5", chip, {"noise": noise_report, "options": _options_dict(opts),
                                                 "accuracy_after": summary["accuracy_after"]},
               cells=chip.synapse_cells)
    from chipsim.io.atomic import atomic_path, write_json

    with atomic_path(out_dir / "run.h5") as tmp:
        with h5py.File(tmp, "w") as f:
            write_state(f, chip, {"summary": summary, "net_config": net.to_dict()})
            chip.synapse_cells.save(f)
            f.create_dataset("learn_counters", data=learn_counters)
            f.attrs["counter_names"] = json.dumps(K.COUNTER_NAMES)
            f.attrs["layer_names"] = json.dumps(chip.layer_names)
    if timed is not None:        # before summary.json: a finished folder has all its files
        from chipsim.architect.timed_run import save_counts, write_timeline

        write_timeline(out_dir, timed[0])
        save_counts(out_dir, np.concatenate(timing_parts), timed[1])
    write_json(out_dir / "summary.json", summary)
    return summary


def decay_pieces(cfg: LearningConfig, start: int, n: int) -> list[tuple[int, int, float]]:
    """Split a batch of `n` samples, the first of them calibration sample `start`, into runs
    [a, b) that share one pulse-decay factor: the schedule then changes at the same sample
    whatever the batch size."""
    every = cfg.pulse_decay_every
    pieces, a = [], 0
    while a < n:
        b = n if every == 0 else min(n, a + every - (start + a) % every)
        pieces.append((a, b, cfg.step_factor(start + a)))
        a = b
    return pieces


def write_progress(out_dir: Path, done: int, epochs: int, history: dict) -> None:
    """progress.json: how far a calibration is, readable while it runs (and after it paused)."""
    from chipsim.io.atomic import write_json

    write_json(out_dir / PROGRESS, {"epochs_done": done, "epochs": epochs,
                                    "accuracy_before": history["accuracy_before"],
                                    "accuracy_per_epoch": history["accuracy_per_epoch"],
                                    "learn_samples": history.get("learn_samples", 0),
                                    "learn_s": round(history.get("learn_s", 0.0), 2)})


def _pauses_at(opts: CalibOptions, done: int) -> bool:
    return opts.pause_after_epoch is not None and opts.pause_after_epoch <= done < opts.epochs


def _paused(opts: CalibOptions, done: int, history: dict) -> dict:
    return {"status": "paused", "epochs_done": done, "epochs": opts.epochs,
            "accuracy_before": history["accuracy_before"], "accuracy_per_epoch": history["accuracy_per_epoch"]}


def _calibration_timing(chip, net, cfg, setup, encoder, summary: dict, parts: list, batch_size: int):
    """summary['timing'] and ['area'] of the training samples this process ran (`--timing`): the host link
    carries each sample's input and its rate targets down, the counter registers up; returns the first
    (the first sample's Chrome trace, the meta of timing_counts.npz)."""
    from chipsim.architect.counters import chip_geometry
    from chipsim.architect.timed_run import link_bytes, sections

    counts = np.concatenate(parts)
    down = encoder.host_bytes(chip.n_inputs)
    targets = setup.n_targets * ((cfg.target_bits + 7) // 8)
    weighted = sum(layer.n_out for layer in chip.layers if layer.type in ("conv", "fc"))
    timing, area, trace = sections(net.chip, chip_geometry(chip), chip.layer_names, counts, batch_size,
                                   link_bytes(chip, down, 0, targets), chip.n_neurons, weighted, 0)
    summary["timing"] = timing
    summary["area"] = area
    meta = {"net": net.to_dict(), "batch_size": batch_size, "bytes_in_per_sample": down, "bytes_out_per_sample": 0,
            "target_bytes_per_sample": targets, "timeline_sample": 0, "kind": "calibration"}
    return trace, meta
