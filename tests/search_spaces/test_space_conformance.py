"""The shipped search-space conformance suite, run on every registered built-in space, and shown to
reject broken spaces."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from codesign.core.plugins import SEARCH_SPACES, plugin_names
from search_spaces.mbconv import MBConvArch, MBConvSpace
from search_spaces.registry import make_space
from search_spaces.testing import SearchSpaceConformance

BUILTIN = ("mbconv_digits", "mbconv_mnist", "resnet_digits", "resnet_mnist", "nb201")


def test_every_builtin_is_registered_through_the_entry_point_group() -> None:
    assert set(BUILTIN) <= set(plugin_names(SEARCH_SPACES))


class TestBuiltinSpaces(SearchSpaceConformance):
    @pytest.fixture(params=BUILTIN)
    def space(self, request: pytest.FixtureRequest) -> Any:
        return make_space(request.param)


@dataclasses.dataclass(frozen=True)
class _CollidingIds(MBConvSpace):
    """Breaks the id contract: every architecture gets the largest one's id, so ids do not round-trip."""

    def arch_id(self, arch: MBConvArch) -> str:
        return super().arch_id(self.largest())


@dataclasses.dataclass(frozen=True)
class _RaggedEncoding(MBConvSpace):
    """Breaks the encoding contract: the vector's length follows the depth."""

    def encode(self, arch: MBConvArch) -> np.ndarray:
        return np.ones(sum(arch.depths))


@dataclasses.dataclass(frozen=True)
class _BitsIgnored(MBConvSpace):
    """Breaks the network contract: the requested bits are dropped."""

    def network(self, arch: MBConvArch, weight_bits: Any = None, act_bits: Any = None) -> Any:
        return super().network(arch)


def _digits_like(cls: type[MBConvSpace]) -> MBConvSpace:
    return cls(**{f.name: getattr(make_space("mbconv_digits"), f.name) for f in dataclasses.fields(MBConvSpace)})


def test_suite_rejects_broken_spaces() -> None:
    suite = SearchSpaceConformance()
    with pytest.raises(AssertionError):
        suite.test_ids_round_trip(_digits_like(_CollidingIds))
    with pytest.raises(AssertionError, match="differ in length"):
        suite.test_encoding_has_fixed_length(_digits_like(_RaggedEncoding))
    with pytest.raises(AssertionError):
        suite.test_network_has_shapes_and_bits(_digits_like(_BitsIgnored))
    with pytest.raises(AssertionError, match="ArchitectureSpace"):
        suite.test_is_a_search_space(object())  # type: ignore[arg-type]
    suite.test_ids_round_trip(make_space("mbconv_digits"))
