from .cls_head import SpikingClsHead
from .population_head import PopulationClsHead

__all__ = ['SpikingClsHead', 'PopulationClsHead']
