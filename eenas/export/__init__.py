"""ONNX export of an arch's trained early-exit network, and its onnxruntime parity check (needs ``eenas[onnx]``)."""

from eenas.export.onnx_graph import ExportResult, export_arch, require_onnx, write_manifest
from eenas.export.parity import Parity, check_parity
from eenas.export.run import Exported, export, trained_network

__all__ = ["ExportResult", "Exported", "Parity", "check_parity", "export", "export_arch", "require_onnx",
           "trained_network", "write_manifest"]
