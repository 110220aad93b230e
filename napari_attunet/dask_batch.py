"""``napari-attunet segment --dask``: the batch's images segmented by the workers of a Dask cluster.

The client (the ``segment`` command) plans the run exactly as in-process (settings,
lock, records, resume) and hands the images to segment to the workers in small
tasks of :data:`TASK_IMAGES` files.  Each worker runs :func:`segment_task`: it loads
the network once (:func:`worker_segmenter` keeps it for later tasks), segments the
files with the same :func:`~napari_attunet.segment_command.segment_one` as the in-process
engine, writes their outputs and records into ``--out`` itself, and returns only
the records (a few hundred bytes per image).  The client never receives a mask.

At most a few tasks per worker thread are submitted at any time, so the scheduler
holds a bounded number of tasks however many inputs the run has.

Threads: each worker process sets torch to ``OMP_NUM_THREADS`` threads when that is
set in its environment, otherwise to its host's cores divided by the Dask worker
threads on that host, so workers x torch threads never exceed the cores.  Dask's
workers get ``OMP_NUM_THREADS=1`` unless it is set where they start, so a cluster
started here (``--dask local:N``) passes cores / N to its workers
(:func:`local_worker_environment`), and one started by the user needs it in its job
script.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from .run_records import OutputFolder
from .segment_command import BatchOptions, ImageJob, error_record, load_segmenter, segment_one

TASK_IMAGES = 8
FAST_MALLOC = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
"""Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off glibc's adaptive
threshold for allocating large blocks: every image-sized array is then mapped and unmapped afresh,
and segmenting an image takes about twice as long.  Workers started here go without it."""
TASKS_PER_THREAD = 2
_segmenters: dict[BatchOptions, object] = {}
loads = 0
"""How many times this process loaded a network (one per settings, tests check it)."""


def available_cores() -> int:
    """The cores this process may use (a SLURM or container allocation, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def torch_threads(threads_on_host: int) -> int:
    """Torch threads for one Dask worker thread when ``threads_on_host`` of them share this host's cores."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, available_cores() // max(1, threads_on_host))


def local_worker_environment(workers: int) -> dict[str, str]:
    """The environment of the ``workers`` processes of a cluster started here: Dask sets ``OMP_NUM_THREADS=1``
    in its workers unless told otherwise, which would leave one worker on one core of many."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # the user's choice, which Dask passes on
        return {}
    return {"OMP_NUM_THREADS": str(max(1, available_cores() // workers))}


def worker_segmenter(options: BatchOptions, threads: int):
    """The worker's network for ``options``, loaded at its first task and kept."""
    global loads
    if options not in _segmenters:
        import torch

        torch.set_num_threads(threads)
        _segmenters[options] = load_segmenter(options)
        loads += 1
    return _segmenters[options]


def segment_task(jobs: list[ImageJob], options: BatchOptions, out: str, digest: str, run: str,
                 threads_by_host: dict[str, int]) -> list[dict]:
    """On a worker: segment ``jobs`` and write their outputs and records; return the records."""
    from distributed import get_worker

    host = get_worker().address.rsplit(":", 1)[0]
    segmenter = worker_segmenter(options, torch_threads(threads_by_host.get(host, 1)))
    folder = OutputFolder(out)
    return [segment_one(job, segmenter, options, folder, digest, run) for job in jobs]


def _worker_loads() -> int:
    return loads


def check_spec(spec: str) -> None:
    """Refuse a ``--dask`` value that names no cluster (before the run takes the output folder)."""
    if spec == "local" or spec.startswith("local:"):
        count = spec.partition(":")[2]
        if spec.startswith("local:") and not (count.isdigit() and int(count) > 0):
            raise ValueError(f"--dask {spec}: expected local or local:N with N a number of worker processes")
    elif spec.endswith(".json"):
        if not Path(spec).is_file():
            raise ValueError(f"--dask {spec}: no such scheduler file")
    elif "://" not in spec:
        raise ValueError(f"--dask {spec}: expected local, local:N, a scheduler address (tcp://HOST:PORT) or a "
                         "scheduler file (.json)")


def connect(spec: str):
    """A Dask client for ``--dask``: ``local`` / ``local:N`` (a new cluster here), an address, or a scheduler file."""
    import dask
    from distributed import Client, LocalCluster

    check_spec(spec)
    if spec == "local" or spec.startswith("local:"):
        count = spec.partition(":")[2]
        workers = int(count) if count else available_cores()
        with dask.config.set(FAST_MALLOC):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR, env=local_worker_environment(workers))
        return Client(cluster, set_as_default=False)
    if spec.endswith(".json"):
        return Client(scheduler_file=spec, set_as_default=False, timeout="60s")
    return Client(spec, set_as_default=False, timeout="60s")


def close(client) -> None:
    cluster = client.cluster if hasattr(client, "cluster") else None
    client.close()
    if cluster is not None:  # a cluster this command started
        cluster.close()


def threads_by_host(client) -> dict[str, int]:
    """Dask worker threads per host address (the workers' torch threads share its cores)."""
    counts: dict[str, int] = {}
    for address, worker in client.scheduler_info(n_workers=-1)["workers"].items():
        host = address.rsplit(":", 1)[0]
        counts[host] = counts.get(host, 0) + int(worker.get("nthreads", 1))
    return counts


def segment_on_dask(jobs: Iterable[ImageJob], count: int, options: BatchOptions, folder: OutputFolder, digest: str,
                    run: str, spec: str, task_images: int = TASK_IMAGES) -> Iterator[tuple[ImageJob, dict]]:
    """Segment the ``count`` ``jobs`` on the cluster ``spec``; yields ``(job, record)`` as workers finish them.

    ``jobs`` is read as tasks are submitted, so only the tasks in flight are held.

    A task whose worker died more often than Dask allows (``KilledWorker``) gives its images
    error records, which a re-run retries.  Closing the generator cancels what is left.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    client = connect(spec)
    try:
        client.wait_for_workers(1, timeout=600)
        threads = threads_by_host(client)
        window = max(2, TASKS_PER_THREAD * sum(threads.values()))
        # Few images: smaller tasks, so that every worker gets some
        size = max(1, min(task_images, count // window))
        jobs = iter(jobs)
        batches = {}
        running = as_completed(loop=client.loop)

        def submit() -> bool:
            batch = list(islice(jobs, size))
            if not batch:
                return False
            future = client.submit(segment_task, batch, options, str(folder.root), digest, run, threads,
                                   pure=False, key=f"segment-{batch[0].image[:60]}-{len(batches)}")
            batches[future.key] = batch
            running.add(future)
            return True

        for _ in range(window):
            if not submit():
                break
        for future in running:
            batch = batches.pop(future.key)
            try:
                records = future.result()
            except KilledWorker as error:
                records = [error_record(job, f"the Dask worker died while segmenting it ({error}); re-run to "
                                             "retry", digest, run) for job in batch]
                for record in records:
                    folder.write_record(record)
            submit()
            yield from zip(batch, records)
    finally:
        close(client)
