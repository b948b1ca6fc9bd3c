"""Deployment: lower a trained spiking classifier, export it for a target
runtime (TorchScript, ONNX, NIR), verify it against PyTorch and report.

Importing this package registers the targets in ``DEPLOY_TARGETS`` and
the lowerings of bidl-train's modules (:mod:`.lowerings`) in
``LAYER_LOWERINGS``, ``OP_LOWERINGS``, ``NEURON_LOWERINGS`` and
``NIR_LOWERINGS``, where a layer of another package registers its own.
"""
from .api import deploy, get_target, list_targets
from .base import DeployTarget, Export, Runtime, UnsupportedFeature
from .lower import (LAYER_LOWERINGS, NEURON_LOWERINGS, OP_LOWERINGS,
                    Lowerer, LoweringError, lower_model)
from .nir_graph import NIR_LOWERINGS
from . import lowerings  # noqa: F401,I001 (registers the lowerings)
from .torchscript import TorchScriptTarget  # noqa: I001 (registration order = priority)
from .onnx import OnnxTarget
from .nir import NirTarget

__all__ = [
    'deploy', 'get_target', 'list_targets', 'DeployTarget', 'Export',
    'Runtime', 'UnsupportedFeature', 'LoweringError', 'lower_model',
    'Lowerer', 'LAYER_LOWERINGS', 'OP_LOWERINGS', 'NEURON_LOWERINGS',
    'NIR_LOWERINGS',
    'TorchScriptTarget', 'OnnxTarget', 'NirTarget'
]
