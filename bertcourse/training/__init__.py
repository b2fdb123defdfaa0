"""Training: ONE engine for pretraining and fine-tuning (lessons 07-08): BERT's optimizer recipe, ``train()``
with exact resume at any step, callbacks, step-indexed data streams and the run directory format.

>>> from bertcourse.training import TrainConfig, RunDirectory, bert_adamw
>>> TrainConfig(max_steps=100, save_steps=10).save_total_limit
3
>>> RunDirectory("runs/x").path_of("history").name
'history.json'
"""

from bertcourse.training.callbacks import BestWeights, FillMaskProbe, ResumableCheckpoint
from bertcourse.training.loop import TrainConfig, enable_determinism, get_strategy, set_precision, train
from bertcourse.training.optim import BertAdamW, WarmupPolynomialDecay, bert_adamw, weight_decay_split
from bertcourse.training.run import RunDirectory
from bertcourse.training.streams import shuffled_batches

__all__ = ["bert_adamw", "BertAdamW", "WarmupPolynomialDecay", "weight_decay_split", "FillMaskProbe", "BestWeights",
           "ResumableCheckpoint", "TrainConfig", "train", "get_strategy", "set_precision", "enable_determinism",
           "RunDirectory", "shuffled_batches"]
