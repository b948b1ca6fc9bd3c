"""tools/analyze.py --random takes T from what the config states.

The config's test dataset is a wrapper (ShiftedDataset around
SyntheticMotion with 5 steps): the old guess over ``representation.T`` /
``T`` / ``max_len`` / ``num_slices`` found none on it and refused.
"""
import json

from helpers.commands import run_here, tool

CONFIG = '''
default_scope = 'bidl_train'
model = dict(
    type='SpikingClassifier',
    backbone=dict(type='ConvLifNet', in_channels=2, input_size=16,
                  channels=[4], pools=[2], fc=[8]),
    head=dict(type='SpikingClsHead', in_features=8, num_classes=4))
_motion = dict(type='SyntheticMotion', num_samples=4, num_steps=5)
train_dataloader = dict(batch_size=2, dataset=dict(_motion, split='train'))
test_dataloader = dict(batch_size=2, dataset=dict(
    type='ShiftedDataset', swap_polarity=True,
    dataset=dict(_motion, split='test')))
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
'''


def test_random_inputs_have_the_test_samples_steps(tmp_path):
    path = tmp_path / 'cfg.py'
    path.write_text(CONFIG)
    out = tmp_path / 'report.json'
    proc = run_here([tool('analyze'), str(path), '--random', '--batches', '1',
                     '--json', str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    # the motion samples are [5, 2, 16, 16]: 5 steps of 2 x 16 x 16 frames
    assert report['input_shape'] == [5, 2, 16, 16]


def test_disagreeing_steps_are_one_line(tmp_path):
    path = tmp_path / 'cfg.py'
    path.write_text(CONFIG + 'num_steps = 8\n')
    proc = run_here([tool('analyze'), str(path), '--random', '--batches', '1'],
                    tmp_path, check=False)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith('analyze: error:')]
    assert len(errors) == 1 and "the config's num_steps = 8" in errors[0]
    assert 'test_dataloader.dataset = 5' in errors[0]
