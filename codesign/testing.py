"""The conformance suites of every plugin kind, in one place (each lives beside its contract).

Subclass one in a test module and override its fixture::

    from codesign.testing import HardwareModelConformance, SearchSpaceConformance
    from codesign.testing import DatasetConformance, StrategyConformance
"""

from codesign.nn.testing import DatasetConformance
from codesign.search.testing import StrategyConformance
from search_spaces.testing import SearchSpaceConformance
from simulators.testing import HardwareModelConformance

__all__ = ["DatasetConformance", "HardwareModelConformance", "SearchSpaceConformance", "StrategyConformance"]
