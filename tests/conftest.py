"""Shared fixtures: tests make their own small data and never touch the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def base_config() -> dict:
    """The smallest valid study, as a dict (defaults fill the rest)."""
    return {
        "study": "unit",
        "tokenizer": {"vocab_size": 300},
        "model": {"seq_len": 32, "head_dim": 8, "aspect_ratio": 16},
        "ladder": {"widths": [16, 32], "tokens": 10000},
        "train": {"batch_tokens": 1024},
    }


def wsd_study(**ladder) -> dict:
    """A tiny WSD study (one 16-wide size, branches at 1024 and 2048 tokens; 8 and 16 steps,
    the last quarter cooling down), as a dict; `ladder` keys replace the ladder's."""
    return {
        "study": "w",
        "tokenizer": {"vocab_size": 300},
        "model": {"seq_len": 16, "head_dim": 8},
        "ladder": {"design": "wsd", "widths": [16], "tokens": [1024, 2048], **ladder},
        "train": {"batch_tokens": 128, "micro_batch": 4, "decay_frac": 0.25},
    }
