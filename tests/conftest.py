"""Shared fixtures: tests make their own small data and never touch the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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


def nan_loss_from(monkeypatch: pytest.MonkeyPatch, step: int, micro_batches: int = 2) -> None:
    """Make training diverge at step `step` (1-based) by construction: from that step on,
    every training forward pass returns a NaN loss (so its gradients, and the weights after
    it, are NaN too). A high learning rate also diverges, but at a step that depends on the
    machine's floating point; this happens at the same step everywhere. `micro_batches`:
    forward passes per step (tiny_rung's 128-token batch in 4-sequence micro-batches: 2)."""
    from ladder.loss import LossModel

    forward, calls = LossModel.forward, []

    def poisoned(self, *args, **kwargs):
        loss = forward(self, *args, **kwargs)
        if torch.is_grad_enabled():  # a training step, not a validation pass
            calls.append(1)
            if len(calls) > (step - 1) * micro_batches:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(LossModel, "forward", poisoned)
