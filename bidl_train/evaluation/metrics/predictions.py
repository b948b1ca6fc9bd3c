"""Keep every sample's prediction, for ``bidl-test --out``.

mmpretrain users run ``tools/test.py --out results.pkl`` to get the
per-sample scores and labels (its ``DumpResults`` metric). This metric
collects the same fields (``pred_score``, ``pred_label``, ``gt_label``)
and gives them back as plain lists; bidl-test writes them as JSON, CSV or
NPZ (never a pickle: a results file is data, and loading a pickle runs
code).
"""
import numpy as np
from mmengine.evaluator import BaseMetric

from bidl_train.registry import METRICS


@METRICS.register_module()
class SamplePredictions(BaseMetric):
    """Collect ``pred_score``, ``pred_label`` and ``gt_label`` per sample.

    mmengine gathers the samples of all ranks in dataset order (the padding
    of the distributed sampler dropped), so ``sample_idx`` is the sample's
    index in the split. It reports no metric; after the run
    :attr:`predictions` holds one dict per sample (on rank 0).
    ``pred_label`` is -1 for a sample whose scores decide nothing (NaN/Inf
    or a tie at the top), as in ``SpikingClassifier.predict``.
    """
    default_prefix = ''

    def __init__(self, collect_device='cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.predictions = []

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            label = sample.get('gt_label')
            self.results.append(dict(
                pred_score=np.asarray(sample['pred_score'],
                                      dtype=np.float32).tolist(),
                pred_label=int(sample['pred_label']),
                gt_label=None if label is None else int(label)))

    def compute_metrics(self, results):
        self.predictions = [dict(sample_idx=i, **r)
                            for i, r in enumerate(results)]
        return {}
