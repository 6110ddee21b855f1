"""Sensitivity tests run single-threaded: the machines they run on are shared."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
