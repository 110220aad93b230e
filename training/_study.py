"""What the study scripts in training/ share: where the repository and the dataset are, and the
options every study takes.  (The scripts run as ``python training/NAME.py``, so this folder is on
``sys.path``.)"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DRISHTI = REPO.parent / "shared" / "data" / "drishti-gs1"


def study_parser(doc: str, split: str = "train", **split_options) -> argparse.ArgumentParser:
    """A parser with ``--split``, ``--weights``, ``--data`` and ``--out`` (None: the script's own default)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--split", default=split, **split_options)
    parser.add_argument("--weights", type=Path, default=None, help="default: the shipped weights")
    parser.add_argument("--data", type=Path, default=DRISHTI)
    parser.add_argument("--out", type=Path, default=None)
    return parser
