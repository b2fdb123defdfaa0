"""Course plumbing shared by every notebook: the scale switch, seeding, quiet logs.

Each notebook's ``parameters`` cell reads ``BERTCOURSE_SCALE`` (``ci`` | ``course`` | ``full``);
``ci`` is what nbval runs in ``make test``, ``course`` is a learner's CPU default, ``full`` is
for a GPU/TPU.

>>> from bertcourse.course import scale_value
>>> scale_value({"ci": 100, "course": 2_000, "full": 100_000}, scale="ci")
100
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping, TypeVar

SCALES = ("ci", "course", "full")
DEFAULT_SCALE = "course"
T = TypeVar("T")


def get_scale(scale: str | None = None) -> str:
    """The active scale: the argument, else ``$BERTCOURSE_SCALE``, else ``course``."""
    value = (scale or os.environ.get("BERTCOURSE_SCALE") or DEFAULT_SCALE).strip().lower()
    if value not in SCALES:
        raise ValueError(f"BERTCOURSE_SCALE must be one of {', '.join(SCALES)}; got {value!r}.")
    return value


def scale_value(choices: Mapping[str, T], scale: str | None = None) -> T:
    """Pick the value for the active scale from ``{"ci": .., "course": .., "full": ..}``."""
    key = get_scale(scale)
    missing = [s for s in SCALES if s not in choices]
    if missing:
        raise ValueError(f"scale_value needs a value for every scale; missing {missing}.")
    return choices[key]


def runs_dir(name: str | None = None):
    """Where lessons write models and logs: ``$BERTCOURSE_RUNS_DIR`` or ``<repo>/runs`` (git-ignored)."""
    root = Path(os.environ.get("BERTCOURSE_RUNS_DIR") or Path(__file__).resolve().parents[1] / "runs")
    path = root / name if name else root
    path.mkdir(parents=True, exist_ok=True)
    return path


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ and Python logging (call before importing TensorFlow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Keras notices that are expected in the lessons (datasets are shuffled by tf.data, evaluation
    # datasets are finite).
    warnings.filterwarnings("ignore", message=r".*`shuffle=True` was passed.*")
    warnings.filterwarnings("ignore", message=r".*Your input ran out of data.*")
    # tqdm.auto (imported by keras-hub's hub client) asks for ipywidgets, which the course does not need.
    warnings.filterwarnings("ignore", message=r"IProgress not found.*")


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up banner (CUDA probing, oneDNN notice) discarded.

    Those lines are written to file descriptor 2 by absl before any log level applies, so
    the only way to keep them out of a notebook is to point fd 2 at /dev/null meanwhile.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded interpreters)
        import tensorflow  # lazy: this function exists to import TensorFlow after its logs are silenced

        return tensorflow
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # lazy: imported while fd 2 points at /dev/null, to drop its C++ banner
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow


def setup(seed: int = 42, scale: str | None = None, quiet: bool = True) -> dict[str, Any]:
    """One call at the top of each notebook: quiet logs, seed Python/NumPy/backend, report scale.

    Returns ``{"scale": ..., "seed": ..., "backend": ...}``.
    """
    if quiet:
        quiet_tensorflow()
        if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
            import_tensorflow_quietly()
    import keras  # lazy: loads the backend, which must come after quiet_tensorflow() above

    keras.utils.set_random_seed(seed)
    if quiet:
        try:
            import tensorflow as tf  # lazy: only on the TensorFlow backend, after the quiet import above

            tf.get_logger().setLevel("ERROR")
            tf.autograph.set_verbosity(0)
        except ImportError:  # pragma: no cover - other backends
            pass
    return {"scale": get_scale(scale), "seed": seed, "backend": keras.backend.backend()}
