"""Build the bundled digits-dvs weights with `chipsim pretrain`, so that they can be rebuilt with any method:

    python -m chipsim.models.make_digits_dvs_weights                  # --method convert (the shipped file)
    python -m chipsim.models.make_digits_dvs_weights --method offline-ltl
    python -m chipsim.models.make_digits_dvs_weights --method tandem  # once `pretrain --method tandem` exists

It is `chipsim pretrain --net digits-dvs --method METHOD --out models/weights/digits-dvs.h5` with the
settings below. The teacher MLP trains on the events encoder's rate images (each input's spike count over
the T ticks, divided by T: the rate the chip's first layer sees) of the bundled synthetic digits-dvs
recordings; the chip accuracy in the file is measured on the recordings themselves.
"""
from __future__ import annotations

import argparse
import json

from chipsim.models import MODELS_DIR
from chipsim.models.pretrain import METHODS, PretrainOptions, pretrain

SETTINGS = dict(epochs=60, batch_size=64, lr=0.1, weight_decay=5e-4, seed=0, augment=False, dropout=0.3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="convert", help=f"pretraining method ({', '.join(METHODS)})")
    ap.add_argument("--out", default=str(MODELS_DIR / "weights" / "digits-dvs.h5"))
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    if args.method not in METHODS:
        ap.error(f"--method: expected one of {', '.join(METHODS)}, got {args.method!r}")
    result = pretrain(PretrainOptions(net="digits-dvs", method=args.method, out=args.out,
                                      progress=not args.no_progress, **SETTINGS))
    print(json.dumps({k: result[k] for k in result if "accuracy" in k}, default=str))


if __name__ == "__main__":
    main()
