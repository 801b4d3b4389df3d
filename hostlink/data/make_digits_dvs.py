"""Make the bundled `digits-dvs` events: the 1,797 embedded 8x8 digits seen by a synthetic event camera
(chipsim/hostlink/events/synth.py) along N-MNIST's three saccades, written in the N-MNIST .bin format.

    python hostlink/data/make_digits_dvs.py          # about 3 minutes on one core

Writes digits-dvs.tar.xz (digits-dvs/Train|Test/<digit>/<index>.bin plus digits-dvs/params.json; the
split is the embedded digits' own, 1,437 train / 360 test) and digits-dvs.json beside it (the generator
parameters, event counts and the archive's sha256). Deterministic: the same files byte for byte on any
machine with the same numpy.
These events are synthetic, not a sensor recording: they imitate N-MNIST's layout and statistics only.
"""
from __future__ import annotations

import hashlib
import io
import json
import lzma
import sys
import tarfile
from pathlib import Path

import numpy as np

from chipsim.hostlink.datasets import load_dataset
from chipsim.hostlink.events.formats import write_nmnist
from chipsim.hostlink.events.synth import DVSParams, recording, sensor_thresholds

PARAMS = DVSParams(threshold=0.8, black=0.2, dt_us=1000, threshold_sigma=0.0, noise_hz=0.0)
HERE = Path(__file__).resolve().parent


def main() -> None:
    thresholds = sensor_thresholds(PARAMS)
    files: list[tuple[str, bytes]] = []
    counts = {}
    index = 0
    for split, folder in (("train", "Train"), ("test", "Test")):
        data = load_dataset("digits", split)
        n_events = []
        for i in range(len(data)):
            x, y, t, p = recording(data.images[i, 0], data.pixel_max, index, PARAMS, thresholds)
            files.append((f"digits-dvs/{folder}/{int(data.labels[i])}/{index:04d}.bin", write_nmnist(x, y, t, p)))
            n_events.append(len(t))
            index += 1
            if index % 200 == 0:
                print(f"{index} recordings", file=sys.stderr)
        counts[split] = {"recordings": len(data), "events_mean": float(np.mean(n_events)),
                         "events_min": int(np.min(n_events)), "events_max": int(np.max(n_events))}
    meta = {"about": "synthetic N-MNIST-like events of the embedded 8x8 digits; not a sensor recording",
            "generator": "chipsim/hostlink/events/synth.py via hostlink/data/make_digits_dvs.py",
            "source": "the embedded digits (hostlink/data/digits.npz), their train/test split; recording i is "
                      "the i-th digit of train then test, drawn from np.random.default_rng([seed, i])",
            "format": "N-MNIST .bin (40-bit records), 34 x 34 sensor", "params": PARAMS.to_dict(),
            "counts": counts}
    files.append(("digits-dvs/params.json", json.dumps(meta, indent=1).encode()))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    packed = lzma.compress(raw.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    out = HERE / "digits-dvs.tar.xz"
    out.write_bytes(packed)
    meta["archive"] = {"file": out.name, "bytes": len(packed), "sha256": hashlib.sha256(packed).hexdigest()}
    (HERE / "digits-dvs.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(out, len(packed), counts)


if __name__ == "__main__":
    main()
