"""Deployment: lower a trained spiking classifier, export it for a target
runtime (TorchScript, ONNX, NIR), verify it against PyTorch and report.

Importing this package registers the targets in ``DEPLOY_TARGETS``.
"""
from .api import deploy, get_target, list_targets
from .base import DeployTarget, Export, Runtime, UnsupportedFeature
from .lower import LoweringError, lower_model
from .torchscript import TorchScriptTarget  # noqa: I001 (registration order = priority)
from .onnx import OnnxTarget
from .nir import NirTarget

__all__ = [
    'deploy', 'get_target', 'list_targets', 'DeployTarget', 'Export',
    'Runtime', 'UnsupportedFeature', 'LoweringError', 'lower_model',
    'TorchScriptTarget', 'OnnxTarget', 'NirTarget'
]
