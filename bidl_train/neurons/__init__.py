"""Spiking neurons: surrogate gradients, fused kernels and neuron modules.

Importing this package registers every neuron and surrogate in
:data:`bidl_train.registry.MODELS`.
"""
from .base import PARAM_SHAPES, BaseNeuron
from .build import build_module
from .functional import LIFMultiStep, LIFMultiStepCpp, lif_multistep
from .lif import LIF
from .lif_variants import IF, PLIF
from .alif import ALIF
from .cuba import CubaLIF
from .izhikevich import IZHIKEVICH_PRESETS, Izhikevich
from .lifplus import LIFPLUS_DEFAULTS, LIFPlus
from .surrogate import (SURROGATE_SHORTCUTS, ATanSurrogate, BaseSurrogate,
                        ErfSurrogate, FastSigmoidSurrogate, RectangleSurrogate,
                        SigmoidSurrogate, SurrogateSpike, TriangleSurrogate,
                        atan_grad, build_surrogate, erf_grad, fast_sigmoid_grad,
                        heaviside, rectangle_grad, sigmoid_grad, triangle_grad)

__all__ = [
    'BaseNeuron', 'PARAM_SHAPES', 'build_module', 'LIF', 'IF', 'PLIF', 'ALIF',
    'CubaLIF', 'Izhikevich', 'IZHIKEVICH_PRESETS', 'LIFPlus',
    'LIFPLUS_DEFAULTS',
    'LIFMultiStep', 'LIFMultiStepCpp',
    'lif_multistep', 'SURROGATE_SHORTCUTS', 'BaseSurrogate', 'SurrogateSpike',
    'RectangleSurrogate', 'SigmoidSurrogate', 'ATanSurrogate',
    'TriangleSurrogate', 'FastSigmoidSurrogate', 'ErfSurrogate',
    'build_surrogate', 'heaviside', 'rectangle_grad', 'sigmoid_grad',
    'atan_grad', 'triangle_grad', 'fast_sigmoid_grad', 'erf_grad'
]
