"""Regenerate the committed fixture tables in ``tests/data/``.

Run ``python tests/make_fixtures.py``. The output is byte-for-byte the same
on every run (fixed generator seed and creation time), so a diff of the
fixtures means the format or the generator changed.

- ``nb201-synthetic-v1.h5``: a small v1 table (3 seeds, 12 epochs, full NB201
  space) from :func:`nasbench_harness.table.make_synthetic_table`. Its values
  are exact binary fractions (accuracies counted over 800/400/400 examples,
  losses to 1/256 nat, times to 1/64 s) so that it compresses below 3 MB.
- ``nb201-synthetic-v0.h5``: a file in the pre-release layout that declares
  ``encoding-version`` "0"; the reader must refuse it with a clear message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np

DATA = Path(__file__).resolve().parent / "data"
V1 = DATA / "nb201-synthetic-v1.h5"
V0 = DATA / "nb201-synthetic-v0.h5"
CREATED = "2024-01-01T00:00:00Z"
#: Arguments of make_synthetic_table for the v1 fixture.
V1_ARGS = {
    "n_seeds": 3,
    "n_epochs": 12,
    "seed": 0,
    "splits": {"train": 800, "valid": 400, "test": 400},
    "loss_step": 2**-8,
    "time_step": 2**-6,
    "eval_time": True,
    "created": CREATED,
}


def make_v1(path: Path = V1) -> Path:
    """Write the v1 fixture."""
    from nasbench_harness.table import make_synthetic_table

    return make_synthetic_table(path, **V1_ARGS)


def make_v0(path: Path = V0) -> Path:
    """Write a version-0 file: seed-averaged valid accuracy only, no canonical ids."""
    from nasbench_harness.table import synthetic_data

    data = synthetic_data(n_seeds=1, n_epochs=2, seed=0, created=CREATED, eval_time=False)
    space = data["space"]
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "nasbench-table"
        f.attrs["encoding-version"] = "0"
        f.attrs["provenance"] = json.dumps(
            {"space": "nb201", "dataset": "synthetic", "created": CREATED, "synthetic": True}
        )
        strings = [space.to_string(i) for i in range(space.n_archs)]
        width = max(len(s) for s in strings)
        f.create_dataset(
            "archs",
            data=np.array([s.encode() for s in strings], dtype=f"S{width}"),
            compression="gzip",
        )
        f.create_dataset(
            "valid_acc",
            data=data["metrics"]["valid_acc"][:, 0, :],
            compression="gzip",
            shuffle=True,
        )
    return path


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    for make in (make_v1, make_v0):
        path = make()
        print(f"{path.relative_to(DATA.parent.parent)}: {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
