"""Spiking neurons: surrogate gradients, fused kernels and neuron modules.

Importing this package registers every neuron and surrogate in
:data:`bidl_train.registry.MODELS`.
"""
from .base import PARAM_SHAPES, BaseNeuron, SpikingDynamics
from .build import build_module
from .functional import LIFMultiStep, LIFMultiStepCpp, lif_multistep
from .lif import LIF, LIFEquations
from .lif_variants import IF, PLIF
from .alif import ALIF
from .cuba import CubaLIF
from .izhikevich import IZHIKEVICH_PRESETS, Izhikevich
from .lifplus import LIFPLUS_DEFAULTS, LIFPlus
from .surrogate import (SURROGATE_SHORTCUTS, SURROGATE_TABLE, ATanSurrogate,
                        BaseSurrogate, ErfSurrogate, FastSigmoidSurrogate,
                        Heaviside, RectangleSurrogate, SigmoidSurrogate,
                        SurrogateKind, SurrogateSpike, TriangleSurrogate,
                        atan_grad, build_surrogate, erf_grad, fast_sigmoid_grad,
                        heaviside, rectangle_grad, sigmoid_grad, surrogate_code,
                        triangle_grad)

__all__ = [
    'BaseNeuron', 'PARAM_SHAPES', 'SpikingDynamics', 'build_module', 'LIF',
    'LIFEquations', 'IF', 'PLIF', 'ALIF',
    'CubaLIF', 'Izhikevich', 'IZHIKEVICH_PRESETS', 'LIFPlus',
    'LIFPLUS_DEFAULTS',
    'LIFMultiStep', 'LIFMultiStepCpp',
    'lif_multistep', 'SURROGATE_SHORTCUTS', 'BaseSurrogate', 'SurrogateSpike',
    'RectangleSurrogate', 'SigmoidSurrogate', 'ATanSurrogate',
    'TriangleSurrogate', 'FastSigmoidSurrogate', 'ErfSurrogate',
    'SURROGATE_TABLE', 'SurrogateKind', 'Heaviside', 'surrogate_code',
    'build_surrogate', 'heaviside', 'rectangle_grad', 'sigmoid_grad',
    'atan_grad', 'triangle_grad', 'fast_sigmoid_grad', 'erf_grad'
]
