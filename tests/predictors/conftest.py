from pathlib import Path

import numpy as np
import pytest

from codesign.predictors.evaluation import LatencySamples, sample_hardware
from codesign.predictors.evaluation import random_pairs as pairs
from search_spaces.registry import make_space
from simulators.overlay import OverlayModel, OverlaySpace

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
NB201_CSV = DATA / "nasbench201" / "nb201_accuracy_latency.csv.gz"
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
def nb201_table():
    pd = pytest.importorskip("pandas")
    if not NB201_CSV.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    return pd.read_csv(NB201_CSV)
