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
