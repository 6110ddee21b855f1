"""FPGA hardware models: the device catalog, the overlay, dataflow and pipeline templates, the model registry,
per-layer cost tables and the conformance suite every model runs (``simulators.testing``)."""

from simulators.dataflow import DataflowModel
from simulators.devices import Device, DeviceCatalog, load_device_file
from simulators.overlay import OverlayModel
from simulators.pipeline import PipelineModel
from simulators.registry import hardware_model_names, make_hardware_model
from simulators.tables import layer_latency_table, layer_resource_table

__all__ = [
    "DataflowModel",
    "Device",
    "DeviceCatalog",
    "OverlayModel",
    "PipelineModel",
    "hardware_model_names",
    "layer_latency_table",
    "layer_resource_table",
    "load_device_file",
    "make_hardware_model",
]
