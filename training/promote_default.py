"""Make a trained weights file the shipped default, keeping its whole training lineage.

    python training/promote_default.py training/attention_from_default.safetensors

The tensors are copied unchanged.  When the candidate was fine-tuned from the current
default, the default's own training record (command, epochs, time, data) is written into
the candidate's ``fine_tuned_from`` metadata, so the shipped file tells how it was made
even though the file it started from is replaced.  Prints the new file's SHA-256.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_attunet.weights import default_weights_path, load_model, save_weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", type=Path)
    args = parser.parse_args()
    candidate = load_model(args.candidate, device="cpu")
    current = load_model(None, device="cpu")
    metadata = dict(candidate.weights_info.metadata)
    parent = metadata.get("fine_tuned_from")
    if parent and parent.get("sha256") == current.weights_info.sha256 and not parent.get("training"):
        metadata["fine_tuned_from"] = {**parent, "training": current.weights_info.metadata.get("training", {}),
                                       "metrics": current.weights_info.metadata.get("metrics", {})}
    candidate.weights_info.metadata = metadata
    digest = save_weights(candidate, default_weights_path())
    print(f"{default_weights_path()}: sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
