"""``napari-attunet segment``: masks, attention maps and a table of measurements for many files.

The run never loses finished work.  Every image's outputs are written atomically,
then its record (:mod:`napari_attunet.run_records`); the table ``results.csv`` is
rebuilt from the records when the run starts, ends or stops cleanly.  Re-running
the same command resumes: images with complete outputs and record are skipped,
the rest (unfinished, failed, new) are segmented.  One run at a time holds the
output folder (:mod:`napari_attunet.run_lock`).

The pieces a worker process needs (:class:`BatchOptions`, :func:`load_segmenter`,
:func:`segment_one`) take only picklable arguments and write their own files.
"""

from __future__ import annotations

import errno
import math
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePath

from . import __version__
from .image_files import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, mask_to_uint8, read_image, rows_to_csv, write_image
from .inference import DEFAULT_SHAPE
from .run_lock import LockHeld, RunLock
from .run_records import (
    ERROR_PREFIX,
    OUTPUT_NAME,
    OutputFolder,
    display_name,
    is_error,
    settings_changes,
)
from .weights import atomic_write_bytes

CSV_COLUMNS = [
    "image", "status", "confidence", "vcdr", "area_cdr", "disc_area", "cup_area", "disc_centre_y", "disc_centre_x",
    "disc_vertical_diameter", "disc_horizontal_diameter", "cup_vertical_diameter", "cup_horizontal_diameter",
    "seconds", "package_version", "weights", "weights_sha256", "disc_threshold", "cup_threshold", "device",
]
EXIT_DONE, EXIT_SOME_FAILED, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES_HELP = ("exit status: 0 every image done; 1 some images failed (their rows in results.csv say why); "
                   "2 the run could not start or had to stop (nothing to segment, output folder in use, "
                   "changed settings, full disk); 130 interrupted (Ctrl-C or SIGTERM). Re-run the same "
                   "command to resume: finished images are skipped.")
# Errors writing into --out that concern one image's name rather than the folder
_PER_IMAGE_WRITE_ERRORS = (errno.ENAMETOOLONG, errno.EILSEQ)


class OutputError(RuntimeError):
    """Writing into the output folder failed (full disk, quota, read-only): the run must stop."""


@dataclass(frozen=True)
class ImageJob:
    """One input file and its path relative to the folder it was found in (outputs mirror it)."""

    source: Path
    relative: str

    @property
    def image(self) -> str:
        return display_name(self.relative)

    def output_base(self) -> str:
        """Where the outputs go, relative to ``--out``, without their ``_disc.png``-like ending."""
        relative = PurePath(self.relative)
        return str(relative.parent / relative.stem)


@dataclass(frozen=True)
class BatchOptions:
    """Everything that decides an image's outputs."""

    weights: Path | None = None
    device: str = "auto"
    disc_threshold: float | None = None
    cup_threshold: float | None = None
    tta: bool = False
    attention: bool = False
    overlay: bool = False
    shape: str = DEFAULT_SHAPE
    min_confidence: float | None = None
    """Outlines below this confidence are discarded as "no optic disc found" (None: the package's)."""
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    """Photos larger than this are refused (their row says so); None: no limit."""


def _walk_images(folder: Path, recursive: bool, skip: Path | None):
    """Image files of ``folder`` (and, recursive, of its subfolders), skipping hidden names and our outputs."""
    for current, subfolders, names in os.walk(folder):
        here = Path(current)
        subfolders[:] = sorted(s for s in subfolders if recursive and not s.startswith(".")
                               and (skip is None or (here / s).resolve() != skip))
        ours = skip is not None and here.resolve() == skip  # --out is the input folder itself
        for name in sorted(names):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES \
                    and not (ours and OUTPUT_NAME.match(name)):
                yield here / name


def collect_inputs(inputs: list[str], recursive: bool = False, skip: Path | None = None
                   ) -> tuple[list[ImageJob], list[str]]:
    """Image files from files and folders, each with its relative path, and the problems found.

    One folder: paths are relative to it.  Several inputs: relative to their common parent,
    so ``a/img.png`` and ``b/img.png`` stay apart.  ``skip`` (the output folder) is never searched.
    """
    items = [Path(os.path.abspath(item)) for item in inputs]
    problems = [f"{item}: no such file or folder" for item in items if not item.exists()]
    items = [item for item in items if item.exists()]
    if not items:
        return [], problems
    folders = [item if item.is_dir() else item.parent for item in items]
    base = folders[0] if len(items) == 1 else Path(os.path.commonpath(folders))
    skip = skip.resolve() if skip is not None else None
    jobs, seen = [], set()
    for item in items:
        found = list(_walk_images(item, recursive, skip)) if item.is_dir() else [item]
        if item.is_dir() and not found:
            problems.append(f"{item}: no images in this folder" + ("" if recursive else " (--recursive searches "
                                                                                       "its subfolders)"))
        for path in found:
            identity = os.path.realpath(path)
            if identity not in seen:
                seen.add(identity)
                jobs.append(ImageJob(path, os.path.relpath(path, base)))
    jobs.sort(key=lambda job: os.fsencode(job.relative))
    return jobs, problems


def output_paths(out: Path, stem: str, gates: int, attention: bool, overlay: bool) -> dict[str, Path]:
    paths = {"disc": out / f"{stem}_disc.png", "cup": out / f"{stem}_cup.png"}
    if attention:
        paths.update({f"attention_{k}": out / f"{stem}_attention_{k}.png" for k in range(1, gates + 1)})
    if overlay:
        paths["overlay"] = out / f"{stem}_overlay.png"
    return paths


def job_paths(job: ImageJob, out: Path, gates: int, options: BatchOptions) -> dict[str, Path]:
    base = PurePath(job.output_base())
    return output_paths(out / base.parent, base.name, gates, options.attention, options.overlay)


def csv_row(name: str, result, error: str | None = None) -> dict:
    """One CSV row: the result's measurements and provenance, or the error that stopped it."""
    status = f"{ERROR_PREFIX}{error}" if error is not None else ("; ".join(result.messages) or "ok")
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


def load_segmenter(options: BatchOptions):
    """The network and settings of a run, loaded once per process."""
    from .devices import resolve_device
    from .inference import Segmenter
    from .weights import load_model

    device = resolve_device(options.device)
    model = load_model(options.weights, device=device)
    return Segmenter(model, device, options.disc_threshold, options.cup_threshold, tta=options.tta,
                     shape=options.shape, min_confidence=options.min_confidence)


def result_settings(segmenter, options: BatchOptions) -> dict:
    """The settings that change results; a resumed run must match them."""
    return {
        "weights_sha256": segmenter.provenance["weights_sha256"],
        "disc_threshold": segmenter.disc_threshold,
        "cup_threshold": segmenter.cup_threshold,
        "tta": options.tta,
        "post_processing": options.shape,
        "min_confidence": options.min_confidence,
        "preprocessing": segmenter.settings,
        "outputs": sorted(output_paths(Path(), "x", segmenter.model.num_gates, options.attention, options.overlay)),
    }


def _message(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, ValueError) else f"{type(error).__name__}: {text}"


def _json_safe(value):
    """NaN as null (records are standard JSON); text that is not UTF-8 with ``\\xNN`` escapes."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return display_name(value) if isinstance(value, str) else value


def _record(job: ImageJob, row: dict, digest: str, run: str, outputs: dict[str, int]) -> dict:
    row = {key: _json_safe(value) for key, value in row.items()}
    return {"format": 1, "relative": job.relative, "source": str(job.source), "source_size": _size(job.source),
            "settings": digest, "run": run, "host": socket.gethostname(), "pid": os.getpid(),
            "finished": time.time(), "outputs": outputs, "row": row}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def error_record(job: ImageJob, error: str, digest: str, run: str) -> dict:
    return _record(job, csv_row(job.image, None, error=error), digest, run, {})


def segment_one(job: ImageJob, segmenter, options: BatchOptions, folder: OutputFolder, digest: str,
                run: str) -> dict:
    """Segment one file, write its outputs and then its record; return the record.

    Any failure of this image becomes its record's ``error: ...`` status.  Raises
    :class:`OutputError` when the output folder cannot be written (the run must stop).
    """
    from .inference import image_tensor

    paths = job_paths(job, folder.root, segmenter.model.num_gates, options)
    try:
        image = read_image(job.source, max_pixels=options.max_pixels)
        result = segmenter.segment_tensor(image_tensor(image, segmenter.device), attention=options.attention)
        row = csv_row(job.image, result)
    except Exception as error:  # an image's failure, whatever raised it, is its row; the run goes on
        record = error_record(job, _message(error), digest, run)
    else:
        try:
            write_result(result, image, paths)
            record = _record(job, row, digest, run, {kind: path.stat().st_size for kind, path in paths.items()})
        except OSError as error:
            if error.errno not in _PER_IMAGE_WRITE_ERRORS:
                raise OutputError(f"cannot write into {folder.root}: {error}") from error
            record = error_record(job, _message(error), digest, run)
        except Exception as error:
            record = error_record(job, _message(error), digest, run)
    try:
        folder.write_record(record)
    except OSError as error:
        raise OutputError(f"cannot write the record of {job.image}: {error}") from error
    return record


@dataclass
class Plan:
    todo: list[ImageJob]
    """To segment: new, unfinished, failed, or changed since their record."""
    done: list[ImageJob]
    collisions: list[tuple[ImageJob, str]]
    """Inputs whose outputs would replace those of the image named (same name, other extension)."""
    refused: list[tuple[ImageJob, str]]
    """Inputs whose record in the folder belongs to another file; reported, not recorded."""


def plan_jobs(jobs: list[ImageJob], records: dict[str, dict], folder: OutputFolder, gates: int,
              options: BatchOptions, digest: str) -> Plan:
    """Split the inputs into finished ones, ones to segment, and ones that cannot be done here."""
    plan = Plan([], [], [], [])
    owners: dict[str, str] = {}  # output base -> relative path of the image whose results it holds
    for record in records.values():
        if not is_error(record):
            owners.setdefault(ImageJob(Path(), record["relative"]).output_base(), record["relative"])
    for job in jobs:
        record = records.get(job.relative)
        if record is not None and record.get("source") != str(job.source) \
                and record.get("source_size") != _size(job.source):
            reason = (f"{folder.root} holds the results of another {job.image} "
                      f"({display_name(record['source'])}); use another --out")
            plan.refused.append((job, reason))
            continue
        owner = owners.setdefault(job.output_base(), job.relative)
        if owner != job.relative:
            plan.collisions.append((job, owner))
        elif record is not None and record.get("settings") == digest and not is_error(record) \
                and record.get("source_size") == _size(job.source) \
                and folder.outputs_complete(record, job_paths(job, folder.root, gates, options)):
            plan.done.append(job)
        else:
            plan.todo.append(job)
    return plan


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster's time limit, ``kill``): stop as cleanly as after Ctrl-C."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def _print(text: str) -> None:
    print(f"napari-attunet: {text}", file=sys.stderr)


def run_segment(args) -> int:
    """The ``segment`` command; returns its exit status (see :data:`EXIT_CODES_HELP`)."""
    options = BatchOptions(weights=args.weights, device=args.device, disc_threshold=args.disc_threshold,
                           cup_threshold=args.cup_threshold, tta=args.tta, attention=args.attention,
                           overlay=args.overlay, min_confidence=args.min_confidence,
                           max_pixels=args.max_pixels or None)
    out: Path = args.out
    if getattr(args, "table", None):
        from .tables import check_table_name

        check_table_name(args.table)
    if getattr(args, "dask", None):
        from .dask_batch import check_spec

        check_spec(args.dask)
    jobs, problems = collect_inputs(args.inputs, recursive=args.recursive, skip=out)
    for problem in problems:
        _print(problem)
    if not jobs:
        _print("error: nothing to segment")
        return EXIT_STOPPED
    folder = OutputFolder(out)
    lock = RunLock(folder.lock_path)
    try:
        lock.acquire()
    except LockHeld as error:
        _print(f"error: {out}: {error}")
        return EXIT_STOPPED
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        return _run_locked(args, options, jobs, len(problems), folder, lock)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        lock.release()


def _start(args, options: BatchOptions, folder: OutputFolder, segmenter) -> str:
    """Check (or record) the run's settings; returns their digest.  Raises ValueError to refuse."""
    settings = result_settings(segmenter, options)
    recorded = folder.read_settings()
    if recorded is None and folder.table_path.exists() and not args.overwrite:
        raise ValueError(f"{folder.table_path} exists but {folder.root} has no run records (an earlier "
                         "version wrote it); use --overwrite to redo it, or another --out")
    if recorded is not None and not args.overwrite:
        if changes := settings_changes(recorded["settings"], settings):
            raise ValueError(f"{folder.root} holds a run with other settings ({'; '.join(changes)}); use "
                             "--overwrite to redo every image with the new settings, or another --out")
        return recorded["digest"]
    if args.overwrite:
        folder.reset()
        folder.write_table(csv_bytes([]))  # no row may outlive the records it came from
    about = {"weights": segmenter.provenance["weights"], "package_version": __version__, "created": time.time(),
             "inputs": [os.path.abspath(item) for item in args.inputs]}
    return folder.write_settings(settings, about)


def _run_locked(args, options: BatchOptions, jobs: list[ImageJob], problems: int, folder: OutputFolder,
                lock: RunLock) -> int:
    from tqdm import tqdm

    segmenter = load_segmenter(options)
    try:
        digest = _start(args, options, folder, segmenter)
    except ValueError as error:
        _print(f"error: {error}")
        return EXIT_STOPPED
    folder.remove_temporaries()
    records = {record["relative"]: record for record in folder.iter_records()}
    gates = segmenter.model.num_gates
    plan = plan_jobs(jobs, records, folder, gates, options, digest)
    run = f"{lock.info.host}:{lock.info.pid}:{lock.info.started:.3f}"
    for job, reason in plan.refused:
        _print(f"{job.source}: skipped: {reason}")
    for job, owner in plan.collisions:
        records[job.relative] = error_record(job, f"its outputs would replace those of {display_name(owner)} "
                                                  "(same name, other extension); rename one", digest, run)
        folder.write_record(records[job.relative])
        _print(f"{job.source}: skipped: {records[job.relative]['row']['status'][len(ERROR_PREFIX):]}")
    if plan.done:
        _print(f"{len(plan.done)} of {len(jobs)} images already done in {folder.root}; {len(plan.todo)} to segment")
    stopped, status = None, EXIT_DONE
    if getattr(args, "dask", None):
        from .dask_batch import segment_on_dask

        finished_jobs = segment_on_dask(plan.todo, options, folder, digest, run, args.dask)
    else:
        finished_jobs = ((job, segment_one(job, segmenter, options, folder, digest, run)) for job in plan.todo)
    bar = tqdm(total=len(plan.todo), desc="segment", unit="image", file=sys.stderr, dynamic_ncols=True)
    try:
        for job, record in finished_jobs:
            bar.update()
            records[job.relative] = record
            if lock.lost:
                stopped = f"another run took over {folder.root} (this one was judged stale)"
                break
            row = record["row"]
            if is_error(record):
                tqdm.write(f"napari-attunet: {job.source}: skipped: {row['status'][len(ERROR_PREFIX):]}",
                           file=sys.stderr)
            else:
                vcdr = "undefined" if row["vcdr"] is None else f"{row['vcdr']:.3f}"
                status_text = "" if row["status"] == "ok" else f" ({row['status']})"
                tqdm.write(f"{display_name(job.relative)}: vCDR {vcdr}{status_text}", file=sys.stderr)
    except (OutputError, OSError) as error:
        stopped = str(error)
    except KeyboardInterrupt as error:
        stopped, status = ("terminated" if isinstance(error, _Terminated) else "interrupted"), EXIT_INTERRUPTED
    finally:
        bar.close()
        finished_jobs.close()  # a cluster's remaining tasks are cancelled
    table_written = write_table(folder, records, getattr(args, "table", None))
    failed = problems + len(plan.refused) + sum(is_error(records[job.relative]) for job in jobs
                                                if job.relative in records)
    finished = sum(job.relative in records and not is_error(records[job.relative]) for job in jobs)
    summary = f"{finished} of {len(jobs)} images done" + (f", {failed} failed" if failed else "")
    if stopped is not None:
        _print(f"{'error: ' if status != EXIT_INTERRUPTED else ''}{stopped}; {summary}"
               f"{'; results in ' + str(folder.table_path) if table_written else ''}. "
               "Re-run the same command to resume.")
        return status if status != EXIT_DONE else EXIT_STOPPED
    print(f"{summary}; results in {folder.table_path}")
    if not table_written:
        return EXIT_STOPPED
    return EXIT_SOME_FAILED if failed else EXIT_DONE


def write_table(folder: OutputFolder, records: dict[str, dict], parquet: str | None = None) -> bool:
    """Write ``results.csv`` (and the Parquet table ``parquet``, a name inside the folder) from ``records``
    (relative path -> record), sorted by path; False if it failed."""
    rows = [records[key]["row"] for key in sorted(records, key=os.fsencode)]
    path = folder.table_path
    try:
        folder.write_table(csv_bytes(rows))
        if parquet:
            from .tables import parquet_bytes

            path = folder.root / parquet
            atomic_write_bytes(path, parquet_bytes(rows, CSV_COLUMNS))
    except OSError as error:
        _print(f"error: cannot write {path}: {error} (the per-image records are kept; the next "
               "run writes the table)")
        return False
    return True

