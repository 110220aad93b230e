"""The batch table as Parquet (``segment --table NAME.parquet``), for analysis tools that read it directly."""

from __future__ import annotations

import io
import math
from pathlib import PurePath

TEXT_COLUMNS = {"image", "status", "package_version", "weights", "weights_sha256", "device"}


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


def parquet_bytes(rows: list[dict], columns: list[str]) -> bytes:
    """The rows as a Parquet file: text columns as strings, the others as float64 (missing values null)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        if column in TEXT_COLUMNS:
            arrays[column] = pa.array([None if v is None else str(v) for v in values], pa.string())
        else:
            arrays[column] = pa.array([_number(v) for v in values], pa.float64())
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays), buffer)
    return buffer.getvalue()
