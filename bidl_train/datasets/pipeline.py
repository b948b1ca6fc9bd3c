"""Building a dataset's transform pipeline."""
from mmengine.dataset import Compose

from bidl_train.registry import TRANSFORMS


def compose(pipeline):
    """Compose transforms, building config dicts from OUR registry.

    mmengine's ``Compose`` builds dicts from its root registry, which finds
    our names only when a default scope is set; datasets are also built
    outside a Runner (tools, tests), so the registry is named explicitly.
    """
    return Compose([
        TRANSFORMS.build(t) if isinstance(t, dict) else t
        for t in (pipeline or [])
    ])


def transforms_num_steps(transforms, start=None):
    """T of what ``transforms`` (run in order) output: the ``num_steps`` of
    the last one that states it (an event representation, a
    ``SpikeEncode``), else ``start`` (the steps the input already has).

    A transform that makes the steps exposes ``num_steps``; the others
    (crops, flips, event augmentations) keep the steps they receive.
    """
    steps = start
    for transform in transforms:
        steps = getattr(transform, 'num_steps', steps)
    return steps
