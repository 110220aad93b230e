"""``napari-attunet`` command line: segment, train, evaluate, calibrate, blend."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from . import __version__


def _add_thresholds(p) -> None:
    for name in ("disc", "cup"):
        p.add_argument(f"--{name}-threshold", type=float, default=None,
                       help=f"{name} probability threshold (default: the one stored in the weights "
                            "file, 0.5 if it has none; docs/model-card.md gives the shipped weights' values)")


def _add_segment(subparsers) -> None:
    from .image_files import DEFAULT_MAX_PIXELS
    from .segment_command import EXIT_CODES_HELP

    p = subparsers.add_parser(
        "segment", help="segment optic disc and cup in image files or folders",
        description="Writes masks (and optionally attention maps and overlays) mirroring each input's path "
                    "relative to its folder (several inputs: their common parent) under --out, and "
                    "results.csv. Each image is recorded as it finishes; re-running the same command "
                    "resumes (finished images are skipped, failed and new ones are done). One run at a time "
                    "may use an output folder.",
        epilog=EXIT_CODES_HELP)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--recursive", action="store_true", help="also search the input folders' subfolders")
    p.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped weights)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--attention", action="store_true", help="also write one attention map PNG per gate")
    p.add_argument("--overlay", action="store_true", help="also write an overlay PNG (disc red, cup yellow)")
    _add_thresholds(p)
    p.add_argument("--tta", action="store_true", help="average with the mirrored image (slower)")
    p.add_argument("--min-confidence", type=float, default=None, metavar="C",
                   help="discard outlines below this confidence as 'no optic disc found' (default: the "
                        "threshold chosen for the shipped weights, docs/model-card.md; 0 keeps every outline)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="refuse photos of more than N pixels (their row says so; 0: no limit; default "
                        "%(default)s: a 100-megapixel photo needs about 1.3 GB, docs/reliability.md)")
    p.add_argument("--overwrite", action="store_true",
                   help="redo every image, also when --out holds a run with other settings")
    p.add_argument("--table", default=None, metavar="NAME.parquet",
                   help="also write the table as Parquet (needs pyarrow) under this name inside --out")
    p.add_argument("--dask", default=None, metavar="CLUSTER",
                   help="segment on a Dask cluster (needs the [distributed] extra): local or local:N starts N "
                        "worker processes here; tcp://HOST:PORT or a scheduler file (.json) joins a running "
                        "cluster, whose workers must see the inputs, the weights and --out at the same paths "
                        "(docs/large-cohorts.md)")


def _add_train(subparsers) -> None:
    from .training import FINE_TUNE_STEPS, MIN_VALIDATION_IMAGES, TrainConfig

    defaults = TrainConfig()
    p = subparsers.add_parser(
        "train", help="train or fine-tune the network on annotated images",
        description="On several processes: torchrun --nproc_per_node=N -m napari_attunet train ... "
                    "(DistributedDataParallel; NCCL on GPUs, Gloo on the CPU). --batch-size is the global "
                    "batch, split across the processes; rank 0 logs, validates and writes the files.")
    p.add_argument("--data", required=True, type=Path,
                   help="Drishti-GS1 folder (its training split is used) or a folder of images and masks")
    p.add_argument("--out", required=True, type=Path, help="weights file to write (.safetensors)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"default: {defaults.epochs} from scratch; with --init, enough epochs for "
                        f"{FINE_TUNE_STEPS} steps (the fine-tuning recipe, docs/adapting.md)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=None,
                   help=f"default: {defaults.learning_rate} from scratch, "
                        f"{TrainConfig.fine_tuning(1).learning_rate} with --init")
    p.add_argument("--val-fraction", type=float, default=None,
                   help=f"default: {defaults.val_fraction}; with --init, 0 (keep the last network) below "
                        f"{MIN_VALIDATION_IMAGES} images")
    p.add_argument("--val-every", type=int, default=defaults.val_every)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--split-seed", type=int, default=defaults.split_seed,
                   help="chooses the validation images, independently of --seed (default: %(default)s)")
    p.add_argument("--input-size", type=int, default=defaults.input_size)
    p.add_argument("--base-channels", type=int, default=defaults.base_channels)
    p.add_argument("--depth", type=int, default=defaults.depth)
    p.add_argument("--norm", default=defaults.norm, choices=["batch", "instance", "group"])
    p.add_argument("--no-attention", action="store_true", help="plain U-Net (same network without gates)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--init", default=None,
                   help="start from weights: 'default' (the shipped ones) or a file; omitted: random")
    p.add_argument("--freeze-encoder", action="store_true")
    p.add_argument("--keep-start", type=float, default=None,
                   help="with --init: share of the starting network kept in the saved one, 0 to <1 (blending "
                        f"its weights with the tuned ones; default {TrainConfig.fine_tuning(1).keep_start})")
    p.add_argument("--cup-distillation", type=float, default=None,
                   help="with --init: weight of a loss that keeps the cup output close to the starting "
                        f"network's (default {TrainConfig.fine_tuning(1).cup_distillation})")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run into --out from <out>.resume.safetensors (same settings)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (and its resume state) with a new run")
    p.add_argument("--log", type=Path, default=None, help="append one JSON line per epoch here")
    p.add_argument("--step-log", type=Path, default=None, help="append one JSON line per training step here")


def _add_evaluate(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="Dice, IoU and vCDR error against annotations")
    p.add_argument("--data", required=True, type=Path, help="Drishti-GS1 folder or a folder of images and masks")
    p.add_argument("--split", default="test", help="Drishti-GS1 split: train, test or all (default: test)")
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--device", default="auto")
    _add_thresholds(p)
    p.add_argument("--tta", action="store_true")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--threads", type=int, default=None)


def _add_calibrate(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="choose the cup threshold of a weights file on annotated images (and store it)",
        description="Scores cup thresholds 0.25-0.5 on annotated images and picks the one with the lowest "
                    "vCDR error that costs at most 0.005 OC Dice (docs/model-card.md). Choose on images you "
                    "will not judge the result on.")
    p.add_argument("--data", required=True, type=Path, help="Drishti-GS1 folder or a folder of images and masks")
    p.add_argument("--split", default="train", help="Drishti-GS1 split: train, test or all (default: train)")
    p.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped weights)")
    p.add_argument("--apply", action="store_true",
                   help="store the chosen thresholds in --weights (the file is rewritten atomically)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--threads", type=int, default=None)


def _add_blend(subparsers) -> None:
    p = subparsers.add_parser(
        "blend", help="blend fine-tuned weights with the weights they started from",
        description="Writes keep_start * start + (1 - keep_start) * tuned (docs/adapting.md): part of what the "
                    "starting network learnt from many photos, part of your camera. Takes seconds; compare "
                    "the candidates with evaluate on held-out photos.")
    p.add_argument("tuned", type=Path, help="fine-tuned weights file (.safetensors)")
    p.add_argument("--keep-start", type=float, required=True, help="share of the starting network, 0 to <1")
    p.add_argument("--out", required=True, type=Path, help="weights file to write (.safetensors)")
    p.add_argument("--start", default="default",
                   help="the weights the tuned file started from: 'default' (the shipped ones) or a file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-attunet",
        description="Optic disc and cup segmentation of fundus photographs with an Attention U-Net.",
    )
    parser.add_argument("--version", action="version", version=f"napari-attunet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_segment(subparsers)
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_calibrate(subparsers)
    _add_blend(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        if args.command == "segment":
            from .segment_command import run_segment

            return run_segment(args)
        if args.command == "train":
            return _train(args, argv)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "calibrate":
            return _calibrate(args)
        if args.command == "blend":
            return _blend(args)
    except (ValueError, OSError) as error:
        print(f"napari-attunet: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-attunet: interrupted", file=sys.stderr)
        return 130
    return 2


def _blend(args) -> int:
    from .blending import blend_files

    start = None if args.start == "default" else Path(args.start)
    out = blend_files(args.tuned, args.keep_start, args.out, start=start, overwrite=args.overwrite)
    print(f"wrote {out} (keep_start {args.keep_start} of {args.start}; thresholds 0.5, not calibrated)")
    return 0


def _train(args, argv) -> int:
    import torch

    from .datasets import is_drishti, load_dataset
    from .training import TrainConfig, check_outputs, iter_train

    check_outputs(args.out, args.resume, args.overwrite)  # before the minutes of loading the data
    if args.threads:
        torch.set_num_threads(args.threads)
    samples = load_dataset(args.data, "train")
    _report_cup_sizes(samples)
    description = f"{args.data.name}: {len(samples)} images" + (" (Drishti-GS1 training split, soft maps >= 128)"
                                                               if is_drishti(args.data) else "")
    chosen = {name: value for name, value in (("epochs", args.epochs), ("learning_rate", args.lr),
                                               ("val_fraction", args.val_fraction), ("keep_start", args.keep_start),
                                               ("cup_distillation", args.cup_distillation)) if value is not None}
    recipe = TrainConfig.fine_tuning(len(samples), batch_size=args.batch_size) if args.init else TrainConfig()
    config = TrainConfig(
        epochs=chosen.get("epochs", recipe.epochs), batch_size=args.batch_size,
        learning_rate=chosen.get("learning_rate", recipe.learning_rate),
        val_fraction=chosen.get("val_fraction", recipe.val_fraction), warmup_epochs=recipe.warmup_epochs,
        val_every=args.val_every, seed=args.seed, split_seed=args.split_seed, input_size=args.input_size,
        base_channels=args.base_channels,
        depth=args.depth, norm=args.norm, attention=not args.no_attention, augment=not args.no_augment,
        init_weights=args.init, freeze_encoder=args.freeze_encoder, device=args.device, threads=args.threads,
        keep_start=chosen.get("keep_start", recipe.keep_start),
        cup_distillation=chosen.get("cup_distillation", recipe.cup_distillation),
        data_description=description, command="napari-attunet train " + shlex.join(argv[1:]),
    )
    from .distributed import environment_group, stop

    processes = environment_group()  # under torchrun, rank 0 reports; the others only train
    try:
        if processes is not None and not processes.is_main:
            for _ in iter_train(samples, args.out, config, resume=args.resume, overwrite=args.overwrite):
                pass
            return 0
        return _report_training(iter_train(samples, args.out, config, resume=args.resume,
                                           overwrite=args.overwrite), args)
    finally:
        stop()


def _report_cup_sizes(samples) -> None:
    """The annotated cups' sizes, and a warning when they are alike (the tuned network learns them)."""
    from .cup_sizes import cup_sizes

    sizes = cup_sizes(samples)
    print(sizes.summary(), file=sys.stderr)
    advice = sizes.advice()
    if advice:
        print(f"napari-attunet: warning: {advice}", file=sys.stderr)


def _report_training(events, args) -> int:
    from tqdm import tqdm

    bar = None
    for event in events:
        if bar is None:
            bar = tqdm(total=event.total, initial=event.step - (1 if event.stage == "train" else 0),
                       unit="step", dynamic_ncols=True, file=sys.stderr)
        if event.stage == "train":
            bar.update(event.step - bar.n)
            bar.set_postfix(epoch=event.metrics["epoch"], loss=f"{event.metrics['loss']:.3f}")
            if args.step_log:
                with open(args.step_log, "a") as log:
                    log.write(json.dumps({"step": event.step, **event.metrics}) + "\n")
        elif event.stage == "validate":
            line = json.dumps(event.metrics)
            bar.write(line)
            if args.log:
                with open(args.log, "a") as log:
                    log.write(line + "\n")
        elif event.stage == "done":
            bar.close()
            print(f"{event.message}; weights: {event.result}")
    return 0


def _evaluate(args) -> int:
    import torch

    from .evaluation import evaluate, format_table

    if args.threads:
        torch.set_num_threads(args.threads)
    report = evaluate(args.data, split=args.split, weights=args.weights, device=args.device, tta=args.tta,
                      disc_threshold=args.disc_threshold, cup_threshold=args.cup_threshold)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _calibrate(args) -> int:
    import torch
    from tqdm import tqdm

    from .calibration import calibrate, store_thresholds
    from .datasets import load_dataset
    from .devices import resolve_device
    from .weights import load_model

    if args.apply and args.weights is None:
        raise ValueError("--apply needs --weights FILE: the shipped weights are not rewritten in place")
    if args.threads:
        torch.set_num_threads(args.threads)
    samples = load_dataset(args.data, args.split)
    device = resolve_device(args.device)
    model = load_model(args.weights, device=device)
    with tqdm(total=len(samples), desc="calibrate", unit="image", file=sys.stderr, dynamic_ncols=True) as bar:
        report = calibrate(samples, model, device, progress=lambda event: bar.update(event.step - bar.n))
    chosen = report["cup_threshold"]
    if args.json:
        print(json.dumps(report, indent=2))  # float keys become "0.25" etc.
    else:
        print(f"{'cup threshold':>13}  {'OC Dice':>7}  {'vCDR MAE':>8}  {'mean error':>10}  below masks")
        for threshold, s in report["summary"].items():
            mark = "  <- chosen" if threshold == chosen else ""
            print(f"{threshold:>13.2f}  {s['oc']:7.4f}  {s['vcdr_mae']:8.4f}  {s['vcdr_bias']:+10.4f}  "
                  f"{s['below_masks']}/{s['images']}{mark}")
        missed = report["discs_not_found"]
        listed = f": {', '.join(missed)}" if missed else ""
        print(f"{len(samples)} images ({len(missed)} without a disc found{listed}); "
              f"weights {model.weights_info.name} ({model.weights_info.sha256[:12]}); "
              f"chosen cup threshold {chosen:.2f}")
    if args.apply:
        source = (f"napari-attunet calibrate on {len(samples)} images of {args.data.name} ({args.split}) "
                  f"(weights SHA-256 {model.weights_info.sha256[:12]}…)")
        digest = store_thresholds(model, args.weights, report["disc_threshold"], chosen, source)
        print(f"{args.weights}: thresholds disc {report['disc_threshold']:.2f}, cup {chosen:.2f}; sha256 {digest}",
              file=sys.stderr)
    return 0
