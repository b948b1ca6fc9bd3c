"""Random verification inputs take T from what the config states
(bidl_train.deploy.samples.input_shape), not from a guess over key names.

The config below fooled the old guess (``representation.T``, ``T``,
``max_len`` or ``num_slices`` of the val, then test, then train dataset
config): its val dataset is a wrapper, so the guess fell through to the
training set's ``T=8`` while the val samples have 5 steps.
"""
from mmengine.config import Config

import bidl_train.datasets  # noqa: F401  (registers the datasets)
from bidl_train.deploy.samples import input_shape, random_batch
from bidl_train.registry import DATASETS, MODELS

WRAPPED_VAL = dict(
    model=dict(
        type='SpikingClassifier',
        backbone=dict(type='ConvLifNet', in_channels=2, input_size=16,
                      channels=[4], pools=[2], fc=[8]),
        head=dict(type='SpikingClsHead', in_features=8, num_classes=4)),
    train_dataloader=dict(batch_size=2, dataset=dict(
        type='SyntheticMotion', split='train', num_samples=4, T=8)),
    val_dataloader=dict(batch_size=2, dataset=dict(
        type='ShiftedDataset', swap_polarity=True, dataset=dict(
            type='SyntheticMotion', split='test', num_samples=4,
            num_steps=5))))


def test_random_inputs_have_the_val_samples_steps():
    cfg = Config(WRAPPED_VAL)
    model = MODELS.build(cfg.model)
    sample = DATASETS.build(cfg.val_dataloader.dataset)[0]['inputs']
    assert list(sample.shape) == [5, 2, 16, 16]  # what verification sees
    assert input_shape(cfg, model) == list(sample.shape)
    x = random_batch(cfg, model, 3)
    assert tuple(x.shape) == (5, 3, 2, 16, 16)


def test_the_top_level_num_steps_states_t_where_no_dataset_does():
    cfg = Config(dict(model=WRAPPED_VAL['model'], num_steps=5))
    assert input_shape(cfg, MODELS.build(cfg.model)) == [5, 2, 16, 16]
