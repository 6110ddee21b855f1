from pathlib import Path

import numpy as np
import pytest

from codesign.predictors.evaluation import LatencySamples, sample_hardware
from search_spaces.accelerator import OverlaySpace
from search_spaces.registry import make_space
from simulators.overlay import OverlayModel

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
NB201_CSV = DATA / "nasbench201" / "nb201_accuracy_latency.csv.gz"
FAMILIES = ("mbconv_digits", "resnet_digits", "mbconv_mnist", "resnet_mnist")


def random_pairs(n_per_family: int, seed: int) -> tuple[list, list, list]:
    """Random architectures of each family with random 4/8-bit layers on random overlay configurations."""
    rng = np.random.default_rng(seed)
    accel_space = OverlaySpace(device="xczu3eg", clocks_mhz=(150.0, 250.0))
    networks, accels, families = [], [], []
    for family in FAMILIES:
        space = make_space(family)
        for _ in range(n_per_family):
            arch = space.sample(rng)
            k = len(space.network(arch).weighted_layers)
            net = space.network(arch, rng.choice([4, 8], k).tolist(), rng.choice([4, 8], k).tolist())
            networks.append(net)
            accels.append(accel_space.sample(net, rng))
            families.append(family)
    return networks, accels, families


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
