"""Data: the shipped corpora (``corpora``); pretraining and task datasets come in later lessons."""
