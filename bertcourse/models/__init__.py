"""Models built from the layers: the BERT encoder (lesson 04), the pretrainer (lesson 07), the
classifier (lessons 08-09) and the sentence encoder (lessons 05 and 12).

>>> from bertcourse.models import BertBackbone, BertPretrainer, SentenceEncoder
"""

from bertcourse.models.backbone import BertBackbone
from bertcourse.models.classifier import BertClassifier
from bertcourse.models.pretraining import BertPretrainer
from bertcourse.models.tasks import SentenceEncoder

__all__ = ["BertBackbone", "BertClassifier", "BertPretrainer", "SentenceEncoder"]
