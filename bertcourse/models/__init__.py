"""Models built from the layers: the BERT encoder (lesson 04); heads and task models come later.

>>> from bertcourse.models import BertBackbone
"""

from bertcourse.models.backbone import BertBackbone

__all__ = ["BertBackbone"]
