"""`clgrad.onnx`: importable (scripts import it at the top), but export is not implemented."""
from __future__ import annotations

__all__ = ["export"]


def export(*args, **kwargs):
    raise NotImplementedError(
        "clgrad.onnx.export is not implemented: clgrad cannot write ONNX graphs yet. Save the "
        "weights with clgrad.save(model.state_dict(), path) or clgrad.safetensors instead.")
