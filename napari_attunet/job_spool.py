"""A list of a batch's images kept on disk, not in memory, so the client stays small for any cohort size.

The list lives in an anonymous temporary file (deleted by the system when the process
ends, even after ``kill -9``), one JSON line per image: a few hundred bytes of disk each.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path


class JobSpool:
    """Images appended once, then read back in the same order as often as needed."""

    def __init__(self):
        self._file = tempfile.TemporaryFile()
        self.count = 0

    def append(self, source: Path, relative: str, note: str = "") -> None:
        self._file.seek(0, 2)
        # ensure_ascii keeps names that are not UTF-8 (lone surrogates) as \udcNN escapes
        self._file.write(json.dumps([str(source), relative, note], ensure_ascii=True).encode() + b"\n")
        self.count += 1

    def __iter__(self) -> Iterator[tuple[Path, str, str]]:
        """``(source, relative, note)`` in the order appended."""
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            source, relative, note = json.loads(line)
            yield Path(source), relative, note

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JobSpool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
