"""BERT's optimizer recipe (lesson 08): AdamW without decay on LayerNorm and biases, linear warmup
then linear/polynomial decay to zero, global gradient clipping at 1.0, optional gradient accumulation.

>>> opt = bert_adamw(1e-4, total_steps=1000)
>>> [round(float(opt.learning_rate_schedule(s)), 6) for s in (0, 50, 100, 550, 1000)]
[0.0, 5e-05, 0.0001, 5e-05, 0.0]
"""

from __future__ import annotations

import re
from typing import Iterable

import keras
from keras import ops

__all__ = ["WarmupPolynomialDecay", "BertAdamW", "bert_adamw", "weight_decay_split", "DEFAULT_NO_DECAY"]

# Variable paths that get no weight decay: LayerNorm scale/shift and every bias (as BERT's
# optimization.py: ["LayerNorm", "layer_norm", "bias"]).
DEFAULT_NO_DECAY = (r"layer_?norm", r"LayerNorm", r"(^|/)bias$", r"(^|/)output_bias$", r"(^|/)gamma$",
                    r"(^|/)beta$")


@keras.saving.register_keras_serializable(package="bertcourse")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``peak * step / warmup_steps`` during warmup, then polynomial decay to ``end_learning_rate``
    at ``total_steps`` (``power=1``: linear, as BERT and Hugging Face's default).

    ``steps_per_update`` divides the step count: Keras evaluates a schedule on micro-steps when
    gradients are accumulated, while the recipe is stated in optimizer updates.
    """

    def __init__(self, peak_learning_rate: float, total_steps: int, warmup_steps: int = 0,
                 end_learning_rate: float = 0.0, power: float = 1.0, steps_per_update: int = 1):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}.")
        if peak_learning_rate <= 0:
            raise ValueError(f"learning rate must be > 0, got {peak_learning_rate}.")
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.power = float(power)
        self.steps_per_update = int(steps_per_update)

    def __call__(self, step):
        step = ops.cast(ops.floor_divide(ops.cast(step, "int64"), self.steps_per_update), "float32")
        peak, end = self.peak_learning_rate, self.end_learning_rate
        warm = peak * step / max(self.warmup_steps, 1)
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        decayed = (peak - end) * ops.power(1.0 - progress, self.power) + end
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "steps_per_update": self.steps_per_update}


@keras.saving.register_keras_serializable(package="bertcourse")
class BertAdamW(keras.optimizers.AdamW):
    """Keras AdamW whose weight-decay exclusions match the variable PATH (``encoder_layer_0/.../gamma``)
    against regular expressions, so "no decay on LayerNorm and biases" is stated once, by name."""

    def __init__(self, *args, no_decay: Iterable[str] = DEFAULT_NO_DECAY, **kwargs):
        super().__init__(*args, **kwargs)
        self.no_decay = tuple(no_decay)
        self._no_decay_pattern = re.compile("|".join(self.no_decay)) if self.no_decay else None

    def _use_weight_decay(self, variable):
        # Keras variables have a .path; the TF backend sometimes hands over the tf.Variable itself.
        path = getattr(variable, "path", None) or variable.name.split(":")[0]
        if self._no_decay_pattern is not None and self._no_decay_pattern.search(path):
            return False
        return super()._use_weight_decay(variable)

    def _clip_gradients(self, grads):
        """Global-norm clipping on the GLOBAL gradient under ``tf.distribute``.

        Keras clips inside each replica, before the gradients are summed across replicas, so with 2
        replicas it clips two half-batch gradients by their own norms: training then differs from one
        device (measured in lesson 08). Here the norm is taken of the all-reduced gradient and every
        replica scales its share by the same factor, so the summed update equals one device's.
        """
        if self.global_clipnorm and self.global_clipnorm > 0 and keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # lazy: the tf.distribute path of backend-agnostic code (JAX has no TF)

            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                present = [g for g in grads if g is not None]
                total = context.all_reduce(tf.distribute.ReduceOp.SUM, present)
                norm = tf.linalg.global_norm(total)
                scale = tf.minimum(1.0, self.global_clipnorm / tf.maximum(norm, 1e-12))
                return [None if g is None else g * tf.cast(scale, g.dtype) for g in grads]
        return super()._clip_gradients(grads)

    @property
    def learning_rate_schedule(self):
        """The schedule object (``learning_rate`` is its current value)."""
        return self._learning_rate

    def get_config(self):
        config = super().get_config()
        config["no_decay"] = list(self.no_decay)
        return config


def bert_adamw(learning_rate: float, total_steps: int, warmup_ratio: float = 0.1, weight_decay: float = 0.01,
               beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-6, clipnorm: float | None = 1.0,
               gradient_accumulation_steps: int | None = None, end_learning_rate: float = 0.0, power: float = 1.0,
               no_decay: Iterable[str] = DEFAULT_NO_DECAY) -> BertAdamW:
    """The optimizer of BERT's ``optimization.py`` (and Hugging Face's Trainer defaults) in Keras.

    Args:
        learning_rate: the peak learning rate reached at the end of warmup.
        total_steps: optimizer updates in the whole run (micro-batches / accumulation steps).
        warmup_ratio: fraction of ``total_steps`` spent warming up linearly from 0.
        weight_decay: decoupled decay ``w -= lr * weight_decay * w`` on all but ``no_decay`` paths.
        epsilon: 1e-6 as in BERT (Keras' default is 1e-7).
        clipnorm: global-norm clipping of the (accumulated) gradient; ``None`` to disable.
        gradient_accumulation_steps: average the gradients of this many micro-batches per update.
    """
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}.")
    accumulation = gradient_accumulation_steps if gradient_accumulation_steps and gradient_accumulation_steps > 1 \
        else None
    schedule = WarmupPolynomialDecay(learning_rate, total_steps, int(round(warmup_ratio * total_steps)),
                                     end_learning_rate, power, steps_per_update=accumulation or 1)
    return BertAdamW(learning_rate=schedule, weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2,
                     epsilon=epsilon, global_clipnorm=clipnorm, gradient_accumulation_steps=accumulation,
                     no_decay=no_decay)


def weight_decay_split(optimizer: BertAdamW, variables) -> tuple[list[str], list[str]]:
    """``(decayed paths, excluded paths)`` for a model's trainable variables: what the recipe decays."""
    decayed, excluded = [], []
    for v in variables:
        (decayed if optimizer._use_weight_decay(v) else excluded).append(v.path)
    return decayed, excluded
