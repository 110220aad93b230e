"""``napari-attunet segment``: masks, attention maps and a CSV of measurements for many files."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from .imageio import IMAGE_SUFFIXES, mask_to_uint8, read_image, rows_to_csv, write_image
from .files import atomic_write_bytes

CSV_COLUMNS = [
    "image", "status", "confidence", "vcdr", "area_cdr", "disc_area", "cup_area", "disc_centre_y", "disc_centre_x",
    "disc_vertical_diameter", "disc_horizontal_diameter", "cup_vertical_diameter", "cup_horizontal_diameter",
    "seconds", "package_version", "weights", "weights_sha256", "disc_threshold", "cup_threshold", "device",
]


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Image files from files and folders (a folder's images, not recursive) and the problems found."""
    files, problems = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{item}: no images in this folder")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            problems.append(f"{item}: no such file or folder")
    return files, problems


def output_paths(out: Path, stem: str, gates: int, attention: bool, overlay: bool) -> dict[str, Path]:
    paths = {"disc": out / f"{stem}_disc.png", "cup": out / f"{stem}_cup.png"}
    if attention:
        paths.update({f"attention_{k}": out / f"{stem}_attention_{k}.png" for k in range(1, gates + 1)})
    if overlay:
        paths["overlay"] = out / f"{stem}_overlay.png"
    return paths


def csv_row(name: str, result, error: str | None = None) -> dict:
    """One CSV row: the result's measurements and provenance, or the error that stopped it."""
    status = f"error: {error}" if error is not None else ("; ".join(result.messages) or "ok")
    row = {"image": name, "status": status}
    if result is not None:
        row.update(result.measurements.as_dict())
        row["seconds"] = round(result.seconds, 3)
        row["confidence"] = round(result.confidence, 3)
        row.update(result.provenance)
    return row


def csv_bytes(rows: list[dict]) -> bytes:
    return rows_to_csv(rows, CSV_COLUMNS).encode()


def write_result(result, image, paths: dict[str, Path]) -> None:
    from .render import attention_to_uint8, overlay

    write_image(paths["disc"], mask_to_uint8(result.disc))
    write_image(paths["cup"], mask_to_uint8(result.cup))
    for k, attention in enumerate(result.attention, start=1):
        if f"attention_{k}" in paths:
            write_image(paths[f"attention_{k}"], attention_to_uint8(attention))
    if "overlay" in paths:
        write_image(paths["overlay"], overlay(image, result.disc, result.cup))


def run_segment(args) -> int:
    """Segment every input; unreadable or failing files are reported and skipped (exit code 1)."""
    from tqdm import tqdm

    from .devices import resolve_device
    from .inference import Segmenter
    from .inference import image_tensor
    from .weights import load_model

    files, problems = collect_inputs(args.inputs)
    for problem in problems:
        print(f"napari-attunet: {problem}", file=sys.stderr)
    if not files:
        print("napari-attunet: error: nothing to segment", file=sys.stderr)
        return 2
    out: Path = args.out
    csv_path = out / "results.csv"
    if csv_path.exists() and not args.overwrite:
        print(f"napari-attunet: error: {csv_path} exists; use --overwrite or another --out", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    model = load_model(args.weights, device=device)
    segmenter = Segmenter(model, device, args.disc_threshold, args.cup_threshold, tta=args.tta)
    out.mkdir(parents=True, exist_ok=True)
    rows, failures, seen = [], len(problems), set()
    for path in tqdm(files, desc="segment", unit="image", file=sys.stderr, dynamic_ncols=True):
        paths = output_paths(out, path.stem, model.num_gates, args.attention, args.overlay)
        try:
            if path.stem in seen:
                raise ValueError(f"another input has the same name {path.stem!r}; outputs would collide")
            seen.add(path.stem)
            existing = [str(p) for p in paths.values() if p.exists()]
            if existing and not args.overwrite:
                raise ValueError(f"outputs exist ({existing[0]}{' ...' if len(existing) > 1 else ''}); "
                                 "use --overwrite")
            image = read_image(path)
            result = segmenter.segment_tensor(image_tensor(image, device), attention=args.attention)
        except ValueError as error:
            tqdm.write(f"napari-attunet: {path}: skipped: {error}", file=sys.stderr)
            rows.append(csv_row(path.name, None, error=str(error)))
            failures += 1
            continue
        write_result(result, image, paths)
        rows.append(csv_row(path.name, result))
        status = rows[-1]["status"]
        vcdr = "undefined" if math.isnan(result.vcdr) else f"{result.vcdr:.3f}"
        tqdm.write(f"{path.name}: vCDR {vcdr}" + ("" if status == "ok" else f" ({status})"), file=sys.stderr)
    atomic_write_bytes(csv_path, csv_bytes(rows))
    print(f"{len(files) - (failures - len(problems))} of {len(files)} images segmented; results in {csv_path}")
    return 1 if failures else 0
