"""The conformance suite every search space runs.

A new space gets the whole suite by subclassing one class in a test module and overriding the ``space``
fixture::

    from search_spaces.testing import SearchSpaceConformance

    class TestMySpace(SearchSpaceConformance):
        @pytest.fixture
        def space(self):
            return make_my_space()

Checks what the search uses: the :class:`~search_spaces.base.ArchitectureSpace` methods, seeded sampling,
stable ids that round-trip, a bad id raising :class:`CodesignError`, fixed-length finite encodings,
decisions that every architecture can be made from (through a real Optuna trial), neighbours that are
valid architectures, and networks with shapes and the requested bits, made of layer kinds the hardware
models cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest

from codesign.core.errors import CodesignError
from codesign.core.values import LAYER_KINDS, Network
from search_spaces.base import ArchitectureSpace

SAMPLES = 12


class SearchSpaceConformance:
    """Subclass in a test module; override the ``space`` fixture."""

    @pytest.fixture
    def space(self) -> ArchitectureSpace:
        raise NotImplementedError("override the space fixture")

    def _samples(self, space: ArchitectureSpace, seed: int = 0) -> list[Any]:
        rng = np.random.default_rng(seed)
        return [space.sample(rng) for _ in range(SAMPLES)]

    def test_is_a_search_space(self, space: ArchitectureSpace) -> None:
        assert isinstance(space, ArchitectureSpace), "implement every method of search_spaces.base.ArchitectureSpace"
        assert isinstance(space.name, str) and space.name

    def test_same_seed_same_architectures(self, space: ArchitectureSpace) -> None:
        first = [space.arch_id(a) for a in self._samples(space, 0)]
        assert [space.arch_id(a) for a in self._samples(space, 0)] == first
        assert len(set(first)) > 1, "twelve samples were all the same architecture"

    def test_ids_round_trip(self, space: ArchitectureSpace) -> None:
        for arch in self._samples(space):
            arch_id = space.arch_id(arch)
            assert isinstance(arch_id, str) and arch_id
            again = space.from_id(arch_id)
            assert again == arch
            assert space.arch_id(again) == arch_id

    def test_bad_id_raises(self, space: ArchitectureSpace) -> None:
        with pytest.raises(CodesignError):
            space.from_id("\x00 not an architecture id \x00")

    def test_encoding_has_fixed_length(self, space: ArchitectureSpace) -> None:
        codes = [np.asarray(space.encode(a)) for a in self._samples(space)]
        assert all(c.ndim == 1 for c in codes)
        assert len({c.shape for c in codes}) == 1, "encodings differ in length"
        assert all(np.issubdtype(c.dtype, np.number) and np.isfinite(c).all() for c in codes)
        assert len({c.tobytes() for c in codes}) > 1, "every architecture has the same encoding"

    def test_decisions_make_architectures(self, space: ArchitectureSpace) -> None:
        choices = space.choices()
        assert choices and all(len(values) >= 1 for values in choices.values())
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(SAMPLES):
            trial = study.ask()
            values = {k: trial.suggest_categorical(k, list(v)) for k, v in choices.items()}
            arch = space.from_choices(values)
            assert space.from_id(space.arch_id(arch)) == arch

    def test_mutate_gives_a_valid_neighbour(self, space: ArchitectureSpace) -> None:
        rng = np.random.default_rng(1)
        for arch in self._samples(space):
            other = space.mutate(arch, rng)
            assert space.from_id(space.arch_id(other)) == other
            assert space.arch_id(other) != space.arch_id(arch), "mutate returned the same architecture"

    def test_network_has_shapes_and_bits(self, space: ArchitectureSpace) -> None:
        for arch in self._samples(space)[:4]:
            plain = space.network(arch)
            assert isinstance(plain, Network) and plain.layers
            assert space.network(arch) == plain, "network() is not deterministic"
            n = len(plain.weighted_layers)
            assert n > 0
            low = space.network(arch, (4,) * n, (4,) * n)
            assert [layer.weight_bits for layer in low.weighted_layers] == [4] * n
            assert [layer.act_bits for layer in low.weighted_layers] == [4] * n
            assert [layer.name for layer in low.layers] == [layer.name for layer in plain.layers]
            assert low.bit_ops < plain.bit_ops

    def test_layers_are_costable(self, space: ArchitectureSpace) -> None:
        """Every layer is a kind the hardware models cost, with positive shapes, chained in order."""
        for arch in self._samples(space)[:4]:
            network = space.network(arch)
            for layer in network.layers:
                assert layer.kind in LAYER_KINDS, f"layer {layer.name!r}: kind {layer.kind!r}"
                assert min(layer.in_channels, layer.out_channels, layer.in_h, layer.in_w) > 0
                assert min(layer.out_h, layer.out_w) > 0
            assert network.macs > 0 and network.params > 0
