"""Global-local co-learning: local plasticity rules, plastic layers and the
schedules that combine them with global (BPTT) training
(:class:`~bidl_train.engine.loops.GlobalLocalLoop` runs a schedule), and
the teaching signal (:func:`teaching`: the labels of the batch in flight).

Importing this package registers the rules and schedules in
:data:`~bidl_train.registry.LEARNING_RULES` and the plastic layers in
:data:`~bidl_train.registry.MODELS` (the population-vote readout their
output layers use is :class:`~bidl_train.models.heads.PopulationClsHead`).
The demo's data
(``SyntheticMotion``, ``ShiftedDataset``) lives with the other datasets.
"""
from .plastic import PlasticConv2dLif, PlasticFcLif, PlasticLayer
from .rules import BCM, STDP, Hebbian, LocalRule, Oja, RewardSTDP, build_rule
from .schedule import GlobalLocalSchedule, Phase, build_schedule
from .teacher import current_teacher, teaching

__all__ = [
    'LocalRule', 'build_rule', 'Hebbian', 'Oja', 'STDP', 'RewardSTDP', 'BCM',
    'PlasticLayer', 'PlasticFcLif', 'PlasticConv2dLif',
    'GlobalLocalSchedule', 'Phase', 'build_schedule', 'teaching',
    'current_teacher'
]
