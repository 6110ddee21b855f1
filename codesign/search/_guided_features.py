"""Feature rows of the guided sampler: the types of its pool and featurizer and the default featurizer,
the one-hot of every categorical parameter.

Private: import these names from :mod:`codesign.search.guided`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution

Params = Mapping[str, Any]
Featurize = Callable[[Params], np.ndarray]
Pool = Callable[[np.random.Generator], Sequence[Params]]


def one_hot_featurize(search_space: Mapping[str, CategoricalDistribution]) -> Featurize:
    """Trial params -> one-hot of every categorical parameter of ``search_space`` (missing values: zeros)."""
    names = sorted(search_space)
    offsets = np.cumsum([0] + [len(search_space[n].choices) for n in names])
    index = {n: {c: i for i, c in enumerate(search_space[n].choices)} for n in names}

    def featurize(params: Params) -> np.ndarray:
        row = np.zeros(int(offsets[-1]))
        for k, name in enumerate(names):
            position = index[name].get(params.get(name))
            if position is not None:
                row[offsets[k] + position] = 1.0
        return row

    return featurize
