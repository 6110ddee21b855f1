from pathlib import Path

import numpy as np
import pytest

from codesign.predictors.evaluation import LatencySamples, sample_hardware
from codesign.predictors.evaluation import random_pairs as pairs
from search_spaces.nb201 import read_table
from search_spaces.registry import make_space
from simulators.overlay import OverlayModel, OverlaySpace

FAMILIES = ("mbconv_digits", "resnet_digits", "mbconv_mnist", "resnet_mnist")


def random_pairs(n_per_family: int, seed: int) -> tuple[list, list, list]:
    """Random architectures of each family with random 4/8-bit layers on random overlay configurations."""
    spaces = [make_space(name) for name in FAMILIES]
    return pairs(spaces, [OverlaySpace(device="xczu3eg", clocks_mhz=(150.0, 250.0))], n_per_family, np.random.default_rng(seed))


@pytest.fixture(scope="session")
def make_pairs():
    return random_pairs


@pytest.fixture(scope="session")
def overlay_samples() -> LatencySamples:
    networks, accels, families = random_pairs(40, seed=0)
    return sample_hardware(OverlayModel(), networks, accels, families)


@pytest.fixture(scope="session")
def nb201_table(nb201_table: Path):
    """The table as a frame, accuracies as fractions; overrides the path fixture of tests/conftest.py,
    which fails under CI when the file is missing and skips otherwise."""
    return read_table(nb201_table)
