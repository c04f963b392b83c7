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
