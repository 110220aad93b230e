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
import itertools
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from . import __version__
from .image_files import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, mask_to_uint8, read_image, rows_to_csv, write_image
from .inference import DEFAULT_SHAPE
from .job_spool import JobSpool
from .key_table import KeyTable, path_key
from .run_lock import LockHeld, RunLock
from .run_records import (
    ERROR_PREFIX,
    OUTPUT_NAME,
    OutputFolder,
    display_name,
    is_error,
    settings_changes,
)

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


def _walk_images(folder: Path, recursive: bool, skip: Path | None) -> Iterator[Path]:
    """Image files of ``folder`` (and, recursive, of its subfolders), skipping hidden names and our outputs.

    Each folder's image names are sorted, then its subfolders are searched in name order;
    only one folder's names are held at a time.  Links to folders are not followed.
    """
    ours = skip is not None and folder.resolve() == skip  # --out is the input folder itself
    names, subfolders = [], []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                if _is_folder(entry):
                    if recursive and not entry.is_symlink():
                        subfolders.append(name)
                elif Path(name).suffix.lower() in IMAGE_SUFFIXES and not (ours and OUTPUT_NAME.match(name)):
                    names.append(name)
    except OSError:  # an unreadable folder is skipped, as a listing by os.walk skips it
        return
    for name in sorted(names):
        yield folder / name
    del names
    for name in sorted(subfolders):
        if skip is None or (folder / name).resolve() != skip:
            yield from _walk_images(folder / name, recursive, skip)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def iter_inputs(inputs: list[str], recursive: bool = False, skip: Path | None = None,
                problems: list[str] | None = None) -> Iterator[ImageJob]:
    """Image files from files and folders, each with its relative path, as they are found.

    One folder: paths are relative to it.  Several inputs: relative to their common parent,
    so ``a/img.png`` and ``b/img.png`` stay apart (the parent comes from the inputs named,
    so it is known before any folder is listed).  ``skip`` (the output folder) is never
    searched.  A file found twice (named twice, or through a link) is taken once.  Folders
    are listed lazily: besides the inputs named and the names of the folder being listed,
    memory holds 8 to 32 bytes per file found (a set of path hashes,
    :class:`~napari_attunet.key_table.KeyTable`).  Problems found are appended to ``problems``.
    """
    problems = [] if problems is None else problems
    items = [Path(os.path.abspath(item)) for item in inputs]
    problems.extend(f"{item}: no such file or folder" for item in items if not item.exists())
    items = [item for item in items if item.exists()]
    if not items:
        return
    folders = [item if item.is_dir() else item.parent for item in items]
    base = folders[0] if len(items) == 1 else Path(os.path.commonpath(folders))
    del folders
    items.sort(key=lambda item: os.fsencode(os.path.relpath(item, base)))
    skip = skip.resolve() if skip is not None else None
    seen = KeyTable(values=False)
    for item in items:
        found = False
        for path in _walk_images(item, recursive, skip) if item.is_dir() else [item]:
            found = True
            if seen.add(path_key(os.path.realpath(path))):
                yield ImageJob(path, os.path.relpath(path, base))
        if item.is_dir() and not found:
            problems.append(f"{item}: no images in this folder" + ("" if recursive else " (--recursive searches "
                                                                                        "its subfolders)"))


def collect_inputs(inputs: list[str], recursive: bool = False, skip: Path | None = None
                   ) -> tuple[list[ImageJob], list[str]]:
    """:func:`iter_inputs` as a list sorted by relative path, and the problems found (for few inputs)."""
    problems: list[str] = []
    jobs = sorted(iter_inputs(inputs, recursive, skip, problems), key=lambda job: os.fsencode(job.relative))
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
    todo: JobSpool
    """To segment: new, unfinished, failed, or changed since their record."""
    done: int
    """Inputs whose outputs and record are complete."""
    collisions: list[tuple[ImageJob, str]]
    """Inputs whose outputs would replace those of the image named (same name, other extension)."""
    refused: list[tuple[ImageJob, str]]
    """Inputs whose record in the folder belongs to another file; reported, not recorded."""
    inputs: int = 0


def plan_jobs(jobs: Iterable[ImageJob], folder: OutputFolder, gates: int, options: BatchOptions,
              digest: str) -> Plan:
    """Split the inputs into finished ones, ones to segment, and ones that cannot be done here.

    The inputs stream through: the ones to segment go to a list on disk, and memory holds
    16 to 64 bytes per output name (which image owns it, as hashes), nothing else per input.
    """
    plan = Plan(JobSpool(), 0, [], [])
    owners = KeyTable()  # output base -> relative path of the image whose results it holds (as keys)
    for record in folder.iter_records():
        if not is_error(record):
            owners.setdefault(path_key(ImageJob(Path(), record["relative"]).output_base()),
                              path_key(record["relative"]))
    for job in jobs:
        plan.inputs += 1
        record = folder.read_record(job.relative)
        if record is not None and record.get("source") != str(job.source) \
                and record.get("source_size") != _size(job.source):
            reason = (f"{folder.root} holds the results of another {job.image} "
                      f"({display_name(record['source'])}); use another --out")
            plan.refused.append((job, reason))
            continue
        key = path_key(job.relative)
        owner = owners.setdefault(path_key(job.output_base()), key)
        if owner != key:
            plan.collisions.append((job, _owner_name(job, owner, folder)))
        elif record is not None and record.get("settings") == digest and not is_error(record) \
                and record.get("source_size") == _size(job.source) \
                and folder.outputs_complete(record, job_paths(job, folder.root, gates, options)):
            plan.done += 1
        else:
            plan.todo.append(job.source, job.relative)
    return plan


def _owner_name(job: ImageJob, owner: int, folder: OutputFolder) -> str:
    """The relative path whose key is ``owner``: an image beside ``job`` with the same name and another
    extension, or one the folder has a record of (looked up only for a collision, which is rare)."""
    parent = PurePath(job.relative).parent
    stem = PurePath(job.relative).stem
    try:
        siblings = [entry.name for entry in os.scandir(job.source.parent) if Path(entry.name).stem == stem]
    except OSError:
        siblings = []
    candidates = (str(parent / name) if str(parent) != "." else name for name in siblings)
    recorded = (record["relative"] for record in folder.iter_records())
    return next((name for name in itertools.chain(candidates, recorded) if path_key(name) == owner), "another image")


def planned_jobs(spool: JobSpool) -> Iterator[ImageJob]:
    return (ImageJob(source, relative) for source, relative, _ in spool)


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
    problems: list[str] = []
    with JobSpool() as jobs:  # listed once, on disk: the client's memory does not grow with the inputs
        for job in iter_inputs(args.inputs, recursive=args.recursive, skip=out, problems=problems):
            jobs.append(job.source, job.relative)
        for problem in problems:
            _print(problem)
        if not jobs.count:
            _print("error: nothing to segment")
            return EXIT_STOPPED
        return _run_with_lock(args, options, jobs, len(problems), OutputFolder(out))


def _run_with_lock(args, options: BatchOptions, jobs: JobSpool, problems: int, folder: OutputFolder) -> int:
    lock = RunLock(folder.lock_path)
    try:
        lock.acquire()
    except LockHeld as error:
        _print(f"error: {folder.root}: {error}")
        return EXIT_STOPPED
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        return _run_locked(args, options, jobs, problems, folder, lock)
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


def _run_locked(args, options: BatchOptions, jobs: JobSpool, problems: int, folder: OutputFolder,
                lock: RunLock) -> int:
    from tqdm import tqdm

    segmenter = load_segmenter(options)
    try:
        digest = _start(args, options, folder, segmenter)
    except ValueError as error:
        _print(f"error: {error}")
        return EXIT_STOPPED
    folder.remove_temporaries()
    plan = plan_jobs(planned_jobs(jobs), folder, segmenter.model.num_gates, options, digest)
    with plan.todo:
        return _segment_planned(args, options, plan, problems, folder, lock, segmenter, digest, tqdm)


def _segment_planned(args, options: BatchOptions, plan: Plan, problems: int, folder: OutputFolder, lock: RunLock,
                     segmenter, digest: str, tqdm) -> int:
    run = f"{lock.info.host}:{lock.info.pid}:{lock.info.started:.3f}"
    for job, reason in plan.refused:
        _print(f"{job.source}: skipped: {reason}")
    for job, owner in plan.collisions:
        record = error_record(job, f"its outputs would replace those of {display_name(owner)} "
                                   "(same name, other extension); rename one", digest, run)
        folder.write_record(record)
        _print(f"{job.source}: skipped: {record['row']['status'][len(ERROR_PREFIX):]}")
    if plan.done:
        _print(f"{plan.done} of {plan.inputs} images already done in {folder.root}; {plan.todo.count} to segment")
    stopped, status = None, EXIT_DONE
    if getattr(args, "dask", None):
        from .dask_batch import segment_on_dask

        finished_jobs = segment_on_dask(planned_jobs(plan.todo), plan.todo.count, options, folder, digest, run,
                                        args.dask)
    else:
        finished_jobs = ((job, segment_one(job, segmenter, options, folder, digest, run))
                         for job in planned_jobs(plan.todo))
    bar = tqdm(total=plan.todo.count, desc="segment", unit="image", file=sys.stderr, dynamic_ncols=True)
    try:
        for job, record in finished_jobs:
            bar.update()
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
    table_written = write_table(folder, getattr(args, "table", None))
    # Images segmented now, or not reached, count as their record says (read back: nothing kept in memory)
    outcomes = [is_error(record) for job in planned_jobs(plan.todo)
                if (record := folder.read_record(job.relative)) is not None]
    failed = problems + len(plan.refused) + len(plan.collisions) + sum(outcomes)
    finished = plan.done + len(outcomes) - sum(outcomes)
    summary = f"{finished} of {plan.inputs} images done" + (f", {failed} failed" if failed else "")
    if stopped is not None:
        _print(f"{'error: ' if status != EXIT_INTERRUPTED else ''}{stopped}; {summary}"
               f"{'; results in ' + str(folder.table_path) if table_written else ''}. "
               "Re-run the same command to resume.")
        return status if status != EXIT_DONE else EXIT_STOPPED
    print(f"{summary}; results in {folder.table_path}")
    if not table_written:
        return EXIT_STOPPED
    return EXIT_SOME_FAILED if failed else EXIT_DONE


def write_table(folder: OutputFolder, parquet: str | None = None) -> bool:
    """Write ``results.csv`` (and the Parquet table ``parquet``, a name inside the folder) from the folder's
    records, sorted by path; False if it failed."""
    from .tables import TableWriteError, write_tables

    try:
        write_tables(folder.iter_records(), CSV_COLUMNS, folder.table_path, folder.root / parquet if parquet else None)
    except TableWriteError as error:
        _print(f"error: cannot write {error.path}: {error} (the per-image records are kept; the next "
               "run writes the table)")
        return False
    return True
