"""FPGA hardware models: the device catalog, the overlay and dataflow templates, the model registry and
the conformance suite every model runs (``simulators.testing``)."""
