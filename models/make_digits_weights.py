"""Build the bundled digits weights: train the numpy teacher, convert, measure, save.

    python -m chipsim.models.make_digits_weights [--seed 0]

Records teacher and chip SNN accuracy on the digits test split in the file.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from chipsim.core.chip import Chip
from chipsim.config import load_net
from chipsim.hostlink.datasets import load_dataset
from chipsim.hostlink.encoders import Encoder
from chipsim.core.weights import save_weights

from . import MODELS_DIR
from .convert import convert
from .numpy_train import train_fc
from .teacher import predict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--percentile", type=float, default=99.9)
    args = ap.parse_args()
    net = load_net(MODELS_DIR / "digits.yaml")
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    t0 = time.time()
    params = train_fc(net, train.images / train.pixel_max, train.labels, epochs=args.epochs, seed=args.seed)
    teacher_acc = float((predict(net, params, test.images / test.pixel_max) == test.labels).mean())
    bundle = convert(net, params, train.images, train.pixel_max, args.percentile,
                     {"teacher": "numpy MLP, Adam", "seed": args.seed, "epochs": args.epochs,
                      "data": "digits train split (1437)"})
    bundle.teacher = params
    chip = Chip(net, bundle)
    enc = Encoder(net.encoder.kind, net.time_steps, test.pixel_max, net.encoder.input_bits)
    pred = chip.run(enc.encode(test.images, np.arange(len(test)))).predictions
    snn_acc = float((pred == test.labels).mean())
    bundle.attrs.update({"teacher_accuracy": teacher_acc, "snn_accuracy": snn_acc,
                         "accuracy_split": "digits test (360)"})
    save_weights(MODELS_DIR / "weights" / "digits.h5", bundle, net)
    print(json.dumps({"teacher_accuracy": teacher_acc, "snn_accuracy": snn_acc,
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
