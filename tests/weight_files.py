"""Compare two Keras ``.weights.h5`` files tensor by tensor (the SIGKILL-resume tests' measure)."""

from pathlib import Path

import h5py
import numpy as np


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """Every dataset in an h5 weights file, by its path inside the file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def max_weight_diff(a: Path, b: Path) -> float:
    """Largest absolute difference between two weight files of the same model (0.0: bit-identical)."""
    wa, wb = read_weights(a), read_weights(b)
    assert sorted(wa) == sorted(wb) and wa
    return max(float(np.abs(wa[k].astype("float64") - wb[k].astype("float64")).max()) for k in wa)
