"""The training engine around ``model.fit`` (lesson 08): precision, distribution, and a
``TrainConfig`` whose fields are the Hugging Face ``TrainingArguments`` people already know.

>>> from bertcourse.training.loop import TrainConfig
>>> TrainConfig(learning_rate=2e-5, bf16=True).precision_policy
'mixed_bfloat16'
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

import keras
import tensorflow as tf

from bertcourse.training.callbacks import BestWeights, ResumableCheckpoint
from bertcourse.training.custom_loop import fit_custom_loop, is_multi_worker
from bertcourse.training.optim import bert_adamw
from bertcourse.training.streams import StepStream, stream_from

__all__ = ["set_precision", "get_strategy", "enable_determinism", "TrainConfig", "HF_TO_KERAS", "train"]

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def set_precision(policy: str = "float32") -> str:
    """Set Keras' global dtype policy. ``mixed_bfloat16``: CPUs with AVX512-BF16 and TPUs;
    ``mixed_float16``: GPUs (``compile`` then wraps the optimizer in a ``LossScaleOptimizer``).
    Variables stay float32; the heads of this package compute their logits in float32."""
    if policy not in POLICIES:
        raise ValueError(f"precision must be one of {POLICIES}, got {policy!r}.")
    keras.mixed_precision.set_global_policy(policy)
    return policy


def enable_determinism(seed: int = 42) -> None:
    """Seed Python, NumPy and the backend, and make TensorFlow's ops deterministic (slower, exact)."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        tf.config.experimental.enable_op_determinism()


def get_strategy(tpu: str | None = None, verbose: bool = True):
    """The right ``tf.distribute`` strategy for the hardware that is here.

    * a TPU is found (``tpu`` address or Colab/Cloud env) -> ``TPUStrategy``
    * ``TF_CONFIG`` names a cluster with workers -> ``MultiWorkerMirroredStrategy``
    * several GPUs (or several logical CPU devices configured for tests) -> ``MirroredStrategy``
    * otherwise the default strategy (one device)
    """
    strategy = None
    if tpu is not None or os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
        except (ValueError, tf.errors.NotFoundError, RuntimeError) as err:
            if tpu is not None:
                raise RuntimeError(f"No TPU at {tpu!r}: {err}") from None
    if strategy is None and os.environ.get("TF_CONFIG"):
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if strategy is None:
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        if len(gpus) > 1:
            strategy = tf.distribute.MirroredStrategy()
        elif not gpus and len(cpus) > 1:
            strategy = tf.distribute.MirroredStrategy([d.name for d in cpus])
        else:
            strategy = tf.distribute.get_strategy()
    if verbose:
        print(f"strategy: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)")
    return strategy


# Hugging Face TrainingArguments field -> what it becomes in Keras (shown in lesson 08).
HF_TO_KERAS = {
    "learning_rate": "peak LR of bert_adamw's WarmupPolynomialDecay",
    "per_device_train_batch_size": "tf.data batch size x strategy.num_replicas_in_sync",
    "num_train_epochs": "model.fit(epochs=...)",
    "max_steps": "model.fit(steps_per_epoch=..., epochs=...)",
    "warmup_ratio": "bert_adamw(warmup_ratio=...)",
    "weight_decay": "bert_adamw(weight_decay=...), LayerNorm/bias excluded by path",
    "max_grad_norm": "keras.optimizers.AdamW(global_clipnorm=...)",
    "adam_beta1 / adam_beta2 / adam_epsilon": "AdamW(beta_1, beta_2, epsilon)",
    "gradient_accumulation_steps": "AdamW(gradient_accumulation_steps=...)",
    "fp16 / bf16": "keras.mixed_precision.set_global_policy('mixed_float16' / 'mixed_bfloat16')",
    "seed": "keras.utils.set_random_seed + tf.config.experimental.enable_op_determinism",
    "eval_strategy='epoch'": "model.fit(validation_data=...) (evaluated every epoch)",
    "load_best_model_at_end + metric_for_best_model": "BestWeights(monitor=...) callback",
    "save_steps / resume_from_checkpoint": "ResumableCheckpoint(every_steps=...) + train(resume=True)",
    "save_total_limit": "ResumableCheckpoint(keep=...)",
    "logging_dir (TensorBoard)": "keras.callbacks.TensorBoard(log_dir=...)",
    "torch_compile": "model.compile(jit_compile=True) (XLA)",
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training arguments with Hugging Face ``TrainingArguments`` names, mapped onto Keras.

    ``total_steps`` is derived from ``max_steps`` or epochs x steps per epoch by :func:`train`;
    ``steps_per_epoch`` (batches per epoch: how often Keras logs, evaluates and calls epoch callbacks)
    may also be given to :func:`train`. ``max_steps`` counts optimizer updates.
    """

    output_dir: str = "runs/train"
    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 32
    num_train_epochs: int = 3
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    gradient_accumulation_steps: int = 1
    fp16: bool = False
    bf16: bool = False
    seed: int = 42
    eval_strategy: str = "epoch"  # "epoch" or "no"
    load_best_model_at_end: bool = False
    metric_for_best_model: str = "val_loss"
    greater_is_better: bool = False
    save_steps: int | None = None
    save_total_limit: int = 3
    steps_per_epoch: int | None = None
    jit_compile: bool = False
    logging_dir: str | None = None

    def __post_init__(self) -> None:
        if self.fp16 and self.bf16:
            raise ValueError("Choose one of fp16 and bf16, not both.")
        if self.eval_strategy not in ("epoch", "no"):
            raise ValueError(f"eval_strategy must be 'epoch' or 'no', got {self.eval_strategy!r}.")
        if self.gradient_accumulation_steps < 1 or self.per_device_train_batch_size < 1:
            raise ValueError("gradient_accumulation_steps and per_device_train_batch_size must be >= 1.")
        if self.load_best_model_at_end and self.eval_strategy == "no":
            raise ValueError("load_best_model_at_end needs evaluation: set eval_strategy='epoch'.")
        for name in ("max_steps", "save_steps", "steps_per_epoch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {value}.")
        if self.num_train_epochs < 1 or self.save_total_limit < 1:
            raise ValueError("num_train_epochs and save_total_limit must be >= 1.")

    @property
    def precision_policy(self) -> str:
        return "mixed_float16" if self.fp16 else "mixed_bfloat16" if self.bf16 else "float32"

    def optimizer(self, total_steps: int):
        return bert_adamw(self.learning_rate, total_steps, warmup_ratio=self.warmup_ratio,
                          weight_decay=self.weight_decay, beta_1=self.adam_beta1, beta_2=self.adam_beta2,
                          epsilon=self.adam_epsilon, clipnorm=self.max_grad_norm,
                          gradient_accumulation_steps=self.gradient_accumulation_steps)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


def build_optimizer_eagerly(model: keras.Model) -> bool:
    """Create the optimizer's slot variables (AdamW's moments) now, in eager mode, when the model is fully built.

    Keras otherwise creates them inside the first traced train step, and a ``tf.function`` that creates
    variables is traced twice: the second trace of a BERT train step costs seconds on a CPU (about 15 s
    for MiniLM), in every fine-tuning run. Under a distribution strategy Keras builds them itself, in
    the strategy's scope, and nothing is done here. Returns True if it built them.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or optimizer.built or tf.distribute.has_strategy() \
            or getattr(model, "_distribute_strategy", None) is not None:
        return False
    if not all(layer.built for layer in model._flatten_layers()):  # Keras builds it at the first step
        return False
    optimizer.build(model.trainable_variables)
    return True


def train(build_model, train_data: tf.data.Dataset | StepStream, config: TrainConfig,
          steps_per_epoch: int | None = None, validation_data=None, compile_kwargs: dict[str, Any] | None = None,
          callbacks: Sequence = (), resume: bool = False, verbose: int | str = "auto", loop: str = "auto",
          history_file: str | os.PathLike | None = None):
    """Build, compile and train a model the ``TrainConfig`` way; returns ``(model, history_dict)``.

    The one engine of the package: pretraining (:func:`~bertcourse.training.pretrain.pretrain`) and
    fine-tuning (:func:`~bertcourse.training.finetune.finetune_classifier`) both run through it.

    * ``build_model()`` is called after the precision policy is set and the seeds are fixed.
    * ``train_data``: a step-indexed stream, ``start_step -> tf.data.Dataset`` whose first batch is the
      run's batch number ``start_step`` (:func:`~bertcourse.training.streams.shuffled_batches` makes one
      from in-memory examples), or a repeating ``tf.data.Dataset`` (resumed with ``skip``: exact only
      without a ``reshuffle_each_iteration`` shuffle in it).
    * With ``save_steps``: a checkpoint every ``save_steps`` batches and at the last step (see
      :class:`~bertcourse.training.callbacks.ResumableCheckpoint`); ``resume=True`` continues from the newest
      good one in ``output_dir/checkpoints``, at ANY step: mid-epoch, shuffled data, best weights, epoch
      history and dropout RNG included, so the result equals the uninterrupted run's bit for bit.
    * ``history_file``: ``history.json`` (+ ``log.csv``), rewritten after every epoch, resumed epochs included.

    ``loop``: ``"fit"`` (Keras ``model.fit``), ``"custom"`` (:func:`~bertcourse.training.custom_loop.fit_custom_loop`,
    which also runs under ``MultiWorkerMirroredStrategy``, where ``fit`` fails), or ``"auto"``: custom
    under a multi-worker strategy, ``fit`` otherwise.
    """
    if loop not in ("auto", "fit", "custom"):
        raise ValueError(f"loop must be 'auto', 'fit' or 'custom', got {loop!r}.")
    custom = loop == "custom" or (loop == "auto" and is_multi_worker())
    if custom and validation_data is not None and config.eval_strategy == "epoch":
        raise ValueError("The custom loop trains only; evaluate after training, or use loop='fit' "
                         "(set eval_strategy='no' to train with validation_data ignored).")
    steps_per_epoch = steps_per_epoch or config.steps_per_epoch
    if not steps_per_epoch or steps_per_epoch < 1:
        raise ValueError("train() needs steps_per_epoch >= 1 (argument or TrainConfig.steps_per_epoch).")
    if resume and not config.save_steps:
        raise ValueError("resume=True needs save_steps (the checkpoints of the run to continue).")
    stream = stream_from(train_data)

    set_precision(config.precision_policy)
    enable_determinism(config.seed)
    model = build_model()
    total_micro_steps = config.max_steps * config.gradient_accumulation_steps if config.max_steps \
        else config.num_train_epochs * steps_per_epoch
    if total_micro_steps % steps_per_epoch:
        raise ValueError(f"The run's {total_micro_steps} batches must be a whole number of epochs of "
                         f"steps_per_epoch={steps_per_epoch}.")
    epochs = total_micro_steps // steps_per_epoch
    updates = max(1, total_micro_steps // config.gradient_accumulation_steps)
    model.compile(optimizer=config.optimizer(updates), jit_compile=config.jit_compile, **(compile_kwargs or {}))
    build_optimizer_eagerly(model)
    best = BestWeights(config.metric_for_best_model, greater_is_better=config.greater_is_better,
                       restore_at_end=False) if config.load_best_model_at_end else None
    state = ResumableCheckpoint(os.path.join(config.output_dir, "checkpoints"), every_steps=config.save_steps,
                                keep=config.save_total_limit, verbose=True, best=best,
                                final_step=total_micro_steps, history_file=history_file)
    initial_step = state.restore(model) if resume else 0
    # the engine's own state first: later callbacks see the epoch logs of a resumed epoch already completed
    engine_callbacks: list = [state] + ([best] if best is not None else [])
    if config.logging_dir:
        engine_callbacks.append(keras.callbacks.TensorBoard(config.logging_dir))
    all_callbacks = engine_callbacks + list(callbacks)
    validation = validation_data if config.eval_strategy == "epoch" else None

    def run(epoch_from: int, epoch_to: int, steps: int, start_step: int) -> None:
        dataset = stream(start_step)  # a new dataset per call: its first batch is batch number start_step
        if custom:
            fit_custom_loop(model, dataset, epochs=epoch_to, steps_per_epoch=steps, callbacks=all_callbacks,
                            initial_epoch=epoch_from, verbose=verbose)
        else:
            model.fit(dataset, epochs=epoch_to, initial_epoch=epoch_from, steps_per_epoch=steps, shuffle=False,
                      validation_data=validation, callbacks=all_callbacks, verbose=verbose)

    epoch, done_in_epoch = divmod(initial_step, steps_per_epoch)
    if done_in_epoch:  # a resumed run first finishes the interrupted epoch
        run(epoch, epoch + 1, steps_per_epoch - done_in_epoch, initial_step)
        epoch += 1
    if epoch < epochs:
        run(epoch, epochs, steps_per_epoch, epoch * steps_per_epoch)
    if best is not None:
        best.set_model(model)
        best.restore_best()
    if history_file and not state.history:
        state.write_history(history_file)
    return model, {k: list(v) for k, v in state.history.items()}
