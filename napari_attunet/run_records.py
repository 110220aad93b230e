"""What a batch run keeps in its output folder: its settings, one record per image, the table.

Layout under ``--out``::

    .napari-attunet/run.json          the settings that change results (compared on resume)
    .napari-attunet/lock.json         the run's lock (:mod:`napari_attunet.run_lock`)
    .napari-attunet/records/ab/<sha256 of the image's relative path>.json
    results.csv                       the table, rebuilt from the records

An image's record is written (atomically) after its output files, so a record
always describes files that are complete.  Records are small independent files
keyed by the image's relative path: many processes, on many hosts sharing the
folder, can write them without coordinating, and a killed process loses at most
the images it had in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from .weights import atomic_write_bytes

STATE_DIR = ".napari-attunet"
TABLE_NAME = "results.csv"
FORMAT_VERSION = 1
ERROR_PREFIX = "error: "
# Temporary files of weights.atomic_write_bytes: ".<name>.<8 random characters>.tmp"
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
OUTPUT_NAME = re.compile(r".+_(disc|cup|overlay|attention_\d+)\.png$")


def display_name(relative: str) -> str:
    """A path as text for tables and messages: bytes that are not UTF-8 are shown as ``\\xNN``."""
    return os.fsencode(relative).decode("utf-8", "backslashreplace")


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def settings_changes(recorded: dict, current: dict) -> list[str]:
    """``"name: old -> new"`` for every setting that differs."""
    return [f"{key}: {recorded.get(key)!r} -> {current.get(key)!r}"
            for key in sorted(set(recorded) | set(current)) if recorded.get(key) != current.get(key)]


def is_error(record: dict) -> bool:
    return str(record["row"].get("status", "")).startswith(ERROR_PREFIX)


class OutputFolder:
    """The run state inside one ``--out`` folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.state = self.root / STATE_DIR
        self.records_dir = self.state / "records"
        self.settings_path = self.state / "run.json"
        self.lock_path = self.state / "lock.json"
        self.table_path = self.root / TABLE_NAME

    # -- settings -------------------------------------------------------------------------------
    def read_settings(self) -> dict | None:
        """The recorded run document (``{"settings": ..., "digest": ...}``), None for a new folder."""
        try:
            document = json.loads(self.settings_path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as error:
            raise ValueError(f"{self.settings_path}: damaged ({error}); use --overwrite to start again") from None
        if document.get("format", 0) > FORMAT_VERSION:
            raise ValueError(f"{self.settings_path}: written by a newer napari-attunet; upgrade")
        return document

    def write_settings(self, settings: dict, about: dict) -> str:
        """Record the run's settings (and, for people reading the file, ``about``); returns their digest."""
        digest = settings_digest(settings)
        document = {"format": FORMAT_VERSION, "settings": settings, "digest": digest, **about}
        atomic_write_bytes(self.settings_path, json.dumps(document, indent=1).encode())
        return digest

    # -- records --------------------------------------------------------------------------------
    def record_path(self, relative: str) -> Path:
        key = hashlib.sha256(os.fsencode(relative)).hexdigest()
        return self.records_dir / key[:2] / f"{key}.json"

    def write_record(self, record: dict) -> None:
        # ensure_ascii keeps names that are not UTF-8 (lone surrogates) as \udcNN escapes
        atomic_write_bytes(self.record_path(record["relative"]), json.dumps(record, ensure_ascii=True).encode())

    def read_record(self, relative: str) -> dict | None:
        return _load(self.record_path(relative))

    def iter_records(self) -> Iterator[dict]:
        """Every readable record (a record is written atomically, so a damaged one was edited by hand)."""
        if not self.records_dir.is_dir():
            return
        for shard in sorted(self.records_dir.iterdir()):
            if shard.is_dir():
                for path in sorted(shard.glob("*.json")):
                    if (record := _load(path)) is not None:
                        yield record

    def reset(self) -> None:
        """Forget every record (``--overwrite``): the folder is moved aside first, so this is all or nothing."""
        if self.records_dir.exists():
            aside = self.state / f"records.discarded.{os.getpid()}.{time.time_ns()}"
            os.replace(self.records_dir, aside)
            shutil.rmtree(aside, ignore_errors=True)

    def outputs_complete(self, record: dict, paths: dict[str, Path]) -> bool:
        """Whether the files ``record`` lists are the ones asked for and all exist with their recorded size."""
        sizes = record.get("outputs") or {}
        if set(sizes) != set(paths):
            return False
        try:
            return all(paths[kind].stat().st_size == size for kind, size in sizes.items())
        except OSError:
            return False

    # -- table and leftovers --------------------------------------------------------------------
    def write_table(self, data: bytes) -> None:
        atomic_write_bytes(self.table_path, data)

    def remove_temporaries(self) -> int:
        """Delete temporary files a killed run left behind (only names this program writes)."""
        removed = 0
        for folder, subfolders, names in os.walk(self.root):
            inside_state = Path(folder).is_relative_to(self.state)
            for name in names:
                match = _TEMPORARY.match(name)
                if name.endswith(".stale") and inside_state:
                    match = True
                elif match is None or name.startswith(f".{self.lock_path.name}."):
                    continue
                elif not inside_state and not (match["name"] == TABLE_NAME or OUTPUT_NAME.match(match["name"])):
                    continue
                (Path(folder) / name).unlink(missing_ok=True)
                removed += 1
            for leftover in [s for s in subfolders if inside_state and s.startswith("records.discarded.")]:
                shutil.rmtree(Path(folder) / leftover, ignore_errors=True)  # an --overwrite run killed mid-way
                subfolders.remove(leftover)
        return removed


def _load(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return record if isinstance(record, dict) and "relative" in record and "row" in record else None
