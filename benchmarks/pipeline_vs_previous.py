"""`segment` of two checkouts of the package on the 2048 x 1752 photo, each beside a MONAI forward pass.

    git worktree add ../previous 467c404
    python benchmarks/pipeline_vs_previous.py ../previous     # then:  ... pipeline_vs_previous.py .

Run once per checkout (one process each, so that each imports its own package); each prints the
median seconds of `segment` (its own shipped weights) and of MONAI's `AttentionUnet` forward pass
at 512 x 512, timed interleaved, and their ratio.  Run the two back to back: on a shared machine
only the ratios of the same moment compare.
"""

import statistics
import sys
import time
from pathlib import Path

import torch


def main() -> int:
    checkout = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(checkout))
    sys.path.insert(1, str(Path(__file__).resolve().parent))
    torch.set_num_threads(2)
    from run_benchmarks import DEFAULT_DATA, monai_forward_512, release_size_photo

    import napari_attunet as na

    photo = release_size_photo(DEFAULT_DATA)
    model = na.load_model(device="cpu")
    reference = monai_forward_512()

    ours, ref = [], []
    na.segment(photo, model, device="cpu")
    reference()
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 4):
        start = time.perf_counter()
        na.segment(photo, model, device="cpu")
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference()
        ref.append(time.perf_counter() - start)
    a, b = statistics.median(ours), statistics.median(ref)
    print(f"{na.__file__}: segment {a:.2f} s, MONAI forward {b:.2f} s, ratio {a / b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
