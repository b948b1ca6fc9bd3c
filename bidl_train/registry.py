"""Scoped registries of bidl-train.

Each is a child of mmengine's root registry of the same kind, so a config with
``default_scope='bidl_train'`` resolves ``type='LIF'`` here and still falls back
to mmengine's optimizers, schedulers, loops and hooks. ``locations`` lists the
modules that register into each registry: building from a config imports them,
so no import-order tricks are needed.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

SCOPE = 'bidl_train'

#: Neurons, surrogate gradients, layers, backbones, heads, classifiers, losses
#: and data preprocessors.
MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope=SCOPE,
    locations=[
        'bidl_train.neurons', 'bidl_train.layers', 'bidl_train.models',
        'bidl_train.learning'
    ])

#: Datasets of every modality.
DATASETS = Registry(
    'dataset',
    parent=MMENGINE_DATASETS,
    scope=SCOPE,
    locations=['bidl_train.datasets'])

#: Data transforms: event augmentations, representations, frame transforms,
#: and per-sample spike encoding (``SpikeEncode``).
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    scope=SCOPE,
    locations=['bidl_train.datasets'])

#: Evaluation metrics.
METRICS = Registry(
    'metric',
    parent=MMENGINE_METRICS,
    scope=SCOPE,
    locations=['bidl_train.evaluation'])

#: Runner hooks (deployment, spike monitoring, NaN guard, seeding, progress).
HOOKS = Registry(
    'hook',
    parent=MMENGINE_HOOKS,
    scope=SCOPE,
    locations=[
        'bidl_train.engine.hooks', 'bidl_train.engine.hooks.nan_guard',
        'bidl_train.engine.hooks.deploy', 'bidl_train.engine.hooks.epoch_seed',
        'bidl_train.engine.hooks.spike_monitor',
        'bidl_train.engine.hooks.spike_misclassified',
        'bidl_train.engine.hooks.progress_bar',
        'bidl_train.engine.hooks.checkpoint'
    ])

#: Training loops (``train_cfg=dict(type='GlobalLocalLoop', ...)``: global-local
#: co-learning).
LOOPS = Registry(
    'loop',
    parent=MMENGINE_LOOPS,
    scope=SCOPE,
    locations=['bidl_train.engine.loops'])

#: Local plasticity rules and global-local schedules.
LEARNING_RULES = Registry(
    'learning rule', scope=SCOPE, locations=['bidl_train.learning'])

#: Deployment targets (onnx, torchscript, nir, ...).
DEPLOY_TARGETS = Registry(
    'deploy target', scope=SCOPE, locations=['bidl_train.deploy'])

# ---------------------------------------------------------------------------
# Pass-through registries. They hold nothing of ours: with
# ``default_scope='bidl_train'`` mmengine looks for a 'bidl_train' child of
# every registry it builds from (optimizers, schedulers, samplers, ...) and
# warns when there is none. These empty children make the lookup succeed and
# fall through to mmengine's own entries.
# ---------------------------------------------------------------------------
from mmengine import registry as _mm  # noqa: E402

_PASS_THROUGH = ('RUNNERS', 'RUNNER_CONSTRUCTORS', 'DATA_SAMPLERS',
                 'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
                 'PARAM_SCHEDULERS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS',
                 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'EVALUATOR',
                 'FUNCTIONS', 'INFERENCERS', 'TASK_UTILS', 'STRATEGIES')
PASS_THROUGH_REGISTRIES = {
    name: Registry(getattr(_mm, name).name, parent=getattr(_mm, name),
                   scope=SCOPE)
    for name in _PASS_THROUGH if hasattr(_mm, name)
}
