"""Deploy: export a run or task as one ONNX graph of its whole scorer, checked against PyTorch.

``aekit.deploy.export_onnx(RUN, "model.onnx")`` (or ``aekit export RUN --format onnx --out model.onnx``)
writes the preprocessing saved with the model, the network and, for detectors, the anomaly score and
the threshold comparison as one graph with a dynamic batch axis, after ONNX Runtime has reproduced
the task's own PyTorch outputs on sample inputs within tolerance. See :mod:`aekit.deploy.export`
for the check and its tolerances, :mod:`aekit.deploy.graphs` for what each kind's graph holds.
"""

from .export import (
    DEFAULT_TOLERANCES,
    EXPORTERS,
    FORMATS,
    ExportReport,
    OutputCheck,
    export_onnx,
    read_metadata,
)
from .graphs import SUPPORTED_KINDS, build_graph, series_point_scores

__all__ = [
    "DEFAULT_TOLERANCES", "EXPORTERS", "FORMATS", "SUPPORTED_KINDS", "ExportReport", "OutputCheck", "build_graph",
    "export_onnx", "read_metadata", "series_point_scores",
]
