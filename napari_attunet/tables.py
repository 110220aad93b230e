"""The batch table: ``results.csv`` and, with ``segment --table NAME.parquet``, the same rows as Parquet.

The rows come from the per-image records, sorted by the image's path.  They are sorted
in chunks on disk and merged (:func:`sorted_rows`), and written as they come, so a
table of 100,000 or more rows never sits whole in memory.
"""

from __future__ import annotations

import heapq
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from itertools import islice
from pathlib import Path, PurePath

TEXT_COLUMNS = {"image", "status", "package_version", "weights", "weights_sha256", "device"}
CHUNK_ROWS = 4096
"""Rows sorted in memory at a time (a few MiB)."""


def check_table_name(name: str) -> None:
    """``--table`` is a plain ``.parquet`` file name: the table lives inside ``--out``, beside ``results.csv``."""
    path = PurePath(name)
    if path.suffix.lower() != ".parquet" or path.name != name or name.startswith("."):
        raise ValueError(f"--table {name}: expected a file name ending in .parquet (it is written inside --out)")


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _arrow_table(rows: list[dict], columns: list[str]):
    """Text columns as strings, the others as float64 (missing values null)."""
    import pyarrow as pa

    arrays = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        if column in TEXT_COLUMNS:
            arrays[column] = pa.array([None if v is None else str(v) for v in values], pa.string())
        else:
            arrays[column] = pa.array([_number(v) for v in values], pa.float64())
    return pa.table(arrays)


def parquet_bytes(rows: list[dict], columns: list[str]) -> bytes:
    """The rows as a Parquet file."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(_arrow_table(rows, columns), buffer)
    return buffer.getvalue()


def _path_order(item: tuple[str, dict]) -> bytes:
    return os.fsencode(item[0])


def _read_chunk(file) -> Iterator[tuple[str, dict]]:
    file.seek(0)
    for line in file:
        relative, row = json.loads(line)
        yield relative, row


def sorted_chunks(records: Iterable[dict], stack: ExitStack) -> list:
    """The records' ``(relative path, row)`` in temporary files of :data:`CHUNK_ROWS`, each sorted by path.

    The files stay open until ``stack`` closes.
    """
    records = iter(records)
    chunks = []
    while chunk := [(record["relative"], record["row"]) for record in islice(records, CHUNK_ROWS)]:
        chunk.sort(key=_path_order)
        file = stack.enter_context(tempfile.TemporaryFile())
        for item in chunk:
            # ensure_ascii keeps names that are not UTF-8 (lone surrogates) as \udcNN escapes
            file.write(json.dumps(item, ensure_ascii=True).encode() + b"\n")
        chunks.append(file)
    return chunks


def merged_rows(chunks: list) -> Iterator[dict]:
    """The rows of :func:`sorted_chunks`, sorted by path (the path as bytes, as ``ls`` sorts in C locale)."""
    for _, row in heapq.merge(*map(_read_chunk, chunks), key=_path_order):
        yield row


class TableWriteError(OSError):
    """Writing one of the tables failed; ``path`` says which."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(error.errno, error.strerror or str(error))
        self.path = path


def write_tables(records: Iterable[dict], columns: list[str], csv_path: Path, parquet_path: Path | None = None
                 ) -> None:
    """Write the CSV table (and the Parquet one) of ``records``' rows, sorted by path, each atomically."""
    from .atomic import atomic_writer
    from .image_files import write_csv_rows

    with ExitStack() as stack:
        chunks = sorted_chunks(records, stack)
        try:
            with atomic_writer(csv_path) as file:
                text = io.TextIOWrapper(file, encoding="utf-8", newline="")
                write_csv_rows(text, merged_rows(chunks), columns)
                text.flush()
                text.detach()
        except OSError as error:
            raise TableWriteError(csv_path, error) from error
        if parquet_path is not None:
            try:
                _write_parquet(merged_rows(chunks), columns, parquet_path)
            except OSError as error:
                raise TableWriteError(parquet_path, error) from error


def _write_parquet(rows: Iterator[dict], columns: list[str], path: Path) -> None:
    import pyarrow.parquet as pq

    from .atomic import atomic_writer

    with atomic_writer(path) as file:
        table = _arrow_table(list(islice(rows, CHUNK_ROWS)), columns)
        with pq.ParquetWriter(file, table.schema) as writer:
            while table.num_rows:
                writer.write_table(table)
                table = _arrow_table(list(islice(rows, CHUNK_ROWS)), columns)
