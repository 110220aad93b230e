"""Train the default weights for any framing and camera (resumable; rerun the same command to continue).

    python training/train_generalist.py --out training/generalist.safetensors [--epochs 150]
                                        [--init default] [--lr 1e-3] [--warmup 2] [--threads 2]
                                        [--whole-image-fraction 0.35] [--tight-photo-fraction 0.35]

Fine-tunes (or, with ``--init none``, trains from scratch) on the 45 Drishti-GS1 training
images with the views of :mod:`napari_attunet.augment` (full photos to tight disc crops,
simulated cameras).  The best epoch is chosen on the 5 held-out training images
(drishtiGS_008, 012, 038, 045, 068), each shown in five framings and cameras
(``VALIDATION`` below), so that a network that is good on full photos only is not chosen.
No test image is used.  One JSON line per validation goes to ``<out>.log.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from _study import DRISHTI
from variants import frame, recolour

VALIDATION = [("full photo", "as taken"), ("k=1.3", "colour cast"), ("k=1.6 native", "blur"),
              ("full field", "gamma 1.6"), ("k=2.0", "low resolution /4")]


def validation_views(samples):
    return [recolour(frame(s, framing), camera) for s in samples for framing, camera in VALIDATION]


def main() -> int:
    from napari_attunet.datasets import load_drishti
    from napari_attunet.training import TrainConfig, iter_train, split_samples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DRISHTI)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--init", default="default", help="'default', a weights file, or 'none'")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val-every", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=2, help="warm-up epochs")
    parser.add_argument("--whole-image-fraction", type=float, default=TrainConfig.whole_image_fraction)
    parser.add_argument("--tight-photo-fraction", type=float, default=TrainConfig.tight_photo_fraction)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    samples = load_drishti(args.data, "train")
    config = TrainConfig(epochs=args.epochs, learning_rate=args.lr, val_every=args.val_every, seed=args.seed,
                         warmup_epochs=args.warmup, init_weights=None if args.init == "none" else args.init,
                         whole_image_fraction=args.whole_image_fraction,
                         tight_photo_fraction=args.tight_photo_fraction,
                         threads=args.threads, device="cpu",
                         data_description=f"Drishti-GS1 training split, 45 images; validation: 5 held-out "
                                          f"images x {len(VALIDATION)} framings and cameras",
                         command="python training/train_generalist.py " + " ".join(sys.argv[1:]))
    train, held_out = split_samples(samples, config.val_fraction, config.split_seed)
    log = args.out.with_name(args.out.name.removesuffix(".safetensors") + ".log.jsonl")
    for event in iter_train(train, args.out, config, val_samples=validation_views(held_out), resume=True):
        if event.stage == "validate":
            line = json.dumps(event.metrics)
            print(line, flush=True)
            with open(log, "a") as handle:
                handle.write(line + "\n")
        elif event.stage == "done":
            print(event.message, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
