"""DVS128 Gesture layout reading, caching, and the synthetic gesture set."""
import os
import struct

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate

from bidl_train.datasets import DVS128Gesture, SyntheticGesture
from bidl_train.datasets.io import make_events, read_events, write_aedat31
from bidl_train.datasets.synthetic.gestures import make_synthetic_gestures
from bidl_train.errors import DataError
from bidl_train.registry import DATASETS
from helpers.layout_writers import (aedat2_dvs128, nmnist_bytes, write_recording,
                            write_shd)

REP = dict(type='EventFrames', T=2, split_by='number')


@pytest.fixture
def gesture_root(tmp_path):
    root = tmp_path / 'DvsGesture'
    root.mkdir()
    # class 3 twice in one recording; windows with 10, 20, 30 events
    write_recording(root, 'user01_lab', [(3, 1000, 2000, 10),
                                         (5, 3000, 4000, 20),
                                         (3, 5000, 6000, 30)])
    write_recording(root, 'user02_led', [(1, 100, 200, 5)])
    write_recording(root, 'user24_natural', [(11, 10, 90, 7)])
    (root / 'trials_to_train.txt').write_text(
        'user01_lab.aedat\nuser02_led.aedat\n\n')
    (root / 'trials_to_test.txt').write_text('user24_natural.aedat\n')
    return root


def test_samples_labels_and_windows(gesture_root):
    ds = DVS128Gesture(gesture_root, 'train', representation=REP,
                       cache=False)
    assert len(ds) == 4
    assert [ds.get_label(i) for i in range(4)] == [2, 4, 2, 0]
    per_rec = [os.path.basename(r['path']) for r in ds.records]
    assert per_rec.count('user01_lab.aedat') == 3
    assert len(ds.metainfo['classes']) == 11
    counts = [ds[i]['inputs'].sum().item() for i in range(4)]
    assert counts == [10, 20, 30, 5]   # start in, end out
    sample = ds[1]
    assert sample['inputs'].dtype == torch.float32
    assert sample['inputs'].shape == (2, 2, 128, 128)
    assert sample['label'] == 4
    batch = default_collate([ds[0], ds[1]])
    assert batch['inputs'].shape == (2, 2, 2, 128, 128)
    test = DVS128Gesture(gesture_root.parent, 'test', representation=REP,
                         cache=False)  # parent of DvsGesture/ works too
    assert len(test) == 1 and test.get_label(0) == 10


def test_cache_reuse_and_invalidation(gesture_root, tmp_path, monkeypatch):
    cache_dir = tmp_path / 'cache'
    first = DVS128Gesture(gesture_root, 'train', representation=REP,
                          cache_dir=cache_dir)
    entries = os.listdir(cache_dir)
    assert len(entries) == 1
    want = [first[i]['inputs'] for i in range(len(first))]

    # reuse: building again must not prepare anything
    def no_build(self, events):
        raise AssertionError('cache was rebuilt')

    monkeypatch.setattr(DVS128Gesture, '_prepare', no_build)
    again = DVS128Gesture(gesture_root, 'train', representation=REP,
                          cache_dir=cache_dir)
    for i, w in enumerate(want):
        assert torch.equal(again[i]['inputs'], w)

    monkeypatch.undo()
    # the cache files are the representation output, not something else
    uncached = DVS128Gesture(gesture_root, 'train', representation=REP,
                             cache=False)
    for i, w in enumerate(want):
        assert torch.equal(uncached[i]['inputs'], w)

    # other parameters -> other entry
    DVS128Gesture(gesture_root, 'train', representation=dict(REP, T=3),
                  cache_dir=cache_dir)
    assert len(os.listdir(cache_dir)) == 2
    # a changed source file -> other entry
    write_recording(gesture_root, 'user02_led', [(1, 100, 200, 6)])
    changed = DVS128Gesture(gesture_root, 'train', representation=REP,
                            cache_dir=cache_dir)
    assert len(os.listdir(cache_dir)) == 3
    assert changed[3]['inputs'].sum().item() == 6


def test_incomplete_cache_is_rebuilt(gesture_root, tmp_path):
    ds = DVS128Gesture(gesture_root, 'train', representation=REP,
                       cache_dir=tmp_path / 'c')
    os.remove(os.path.join(ds._cache.dir, 'index.json'))
    os.remove(os.path.join(ds._cache.dir, '000001.npy'))
    again = DVS128Gesture(gesture_root, 'train', representation=REP,
                          cache_dir=tmp_path / 'c')
    assert again[1]['inputs'].sum().item() == 20


def test_default_cache_location(gesture_root):
    DVS128Gesture(gesture_root, 'test', representation=REP)
    assert os.path.isdir(gesture_root / '.cache')


def test_event_pipeline_without_representation(gesture_root):
    ds = DVS128Gesture(gesture_root, 'train', representation=None,
                       pipeline=[dict(type='EventFrames', T=1, size=32)],
                       cache=False)
    assert ds[2]['inputs'].shape == (1, 2, 32, 32)
    assert ds[2]['inputs'].sum().item() == 30
    bare = DVS128Gesture(gesture_root, 'train', representation=None,
                         cache=False)
    with pytest.raises(DataError, match='pipeline'):
        bare[0]


def test_missing_root_explains_where_data_comes_from(tmp_path):
    with pytest.raises(DataError) as info:
        DVS128Gesture(tmp_path / 'nowhere', 'train')
    msg = str(info.value)
    assert 'IBM' in msg and 'trials_to_train.txt' in msg
    assert 'nowhere' in msg


def test_bad_label_rows(gesture_root):
    (gesture_root / 'user02_led_labels.csv').write_text(
        'class,startTime_usec,endTime_usec\n12,1,2\n')
    with pytest.raises(DataError, match='line 2.*class 12') as info:
        DVS128Gesture(gesture_root, 'train', cache=False)
    assert 'user02_led_labels.csv' in str(info.value)
    os.remove(gesture_root / 'user02_led.aedat')
    with pytest.raises(DataError, match='missing'):
        DVS128Gesture(gesture_root, 'train', cache=False)


SMALL = dict(users_train=2, users_test=1, conditions=2)


def rotation_direction(events, centre):
    """+1 if the events near ``centre`` turn clockwise (image, y down) over
    time, -1 if counter-clockwise: the sign of the summed wrapped changes of
    the mean angle of 20 ms bins (computed independently of the generator)."""
    dx = events['x'].astype(float) - centre[0]
    dy = events['y'].astype(float) - centre[1]
    near = np.hypot(dx, dy) < 34
    t = events['t'][near]
    ang = np.arctan2(dy[near], dx[near])
    bins = (t - t[0]) // 20_000
    means = [np.angle(np.exp(1j * ang[bins == b]).mean())
             for b in np.unique(bins)]
    steps = np.angle(np.exp(1j * np.diff(means)))
    return int(np.sign(steps.sum()))


def test_synthetic_gestures_layout_directions_and_balance(tmp_path):
    root = tmp_path / 'syn'
    info = make_synthetic_gestures(root, num_classes=4, **SMALL)
    assert info['classes'] == ['left cw right cw', 'left ccw right ccw',
                               'left cw right ccw', 'left ccw right cw']
    train = DVS128Gesture(root, 'train', classes=info['classes'], cache=False,
                          representation=REP)
    assert len(train) == 2 * 2 * 4
    labels = [train.get_label(i) for i in range(len(train))]
    assert sorted(labels) == sorted(list(range(4)) * 4)
    want = {0: (1, 1), 1: (-1, -1), 2: (1, -1), 3: (-1, 1)}
    for rec in train.records:
        start, end = rec['window']
        ev = read_events(rec['path'])
        ev = ev[(ev['t'] >= start) & (ev['t'] < end)]
        assert 2000 < len(ev) < 6000
        # polarity carries no direction: about half the events are ON
        assert 0.4 < ev['p'].mean() < 0.6
        got = (rotation_direction(ev, (34, 64)),
               rotation_direction(ev, (94, 64)))
        assert got == want[rec['label']]


def test_synthetic_generation_is_deterministic(tmp_path):
    make_synthetic_gestures(tmp_path / 'a', **SMALL)
    make_synthetic_gestures(tmp_path / 'b', **SMALL)
    names = sorted(os.listdir(tmp_path / 'a'))
    assert names == sorted(os.listdir(tmp_path / 'b'))
    for n in names:
        assert (tmp_path / 'a' / n).read_bytes() == \
            (tmp_path / 'b' / n).read_bytes()


def test_synthetic_dataset_from_registry(tmp_path):
    root = tmp_path / 'demo'
    ds = DATASETS.build(dict(type='SyntheticGesture', data_root=str(root),
                             split='test', **SMALL))
    assert len(ds) == 1 * 2 * 4
    assert ds.metainfo['synthetic'] and len(ds.metainfo['classes']) == 4
    x = ds[0]['inputs']
    assert x.shape == (16, 2, 32, 32) and x.dtype == torch.float32
    assert os.path.isfile(root / 'synthetic.json')
    # existing data with the same options is reused, not regenerated
    mtime = os.stat(root / 'user03_fluorescent.aedat').st_mtime_ns
    SyntheticGesture(root, split='test', **SMALL)
    assert os.stat(root / 'user03_fluorescent.aedat').st_mtime_ns == mtime
    # a non-empty foreign folder is refused
    (tmp_path / 'real').mkdir()
    (tmp_path / 'real' / 'x.txt').write_text('mine')
    with pytest.raises(DataError, match='refusing'):
        SyntheticGesture(tmp_path / 'real')


def test_nmnist_layout(tmp_path):
    for split, n in (('Train', 2), ('Test', 1)):
        for d in range(10):
            folder = tmp_path / split / str(d)
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f'{i:05d}.bin').write_bytes(
                    nmnist_bytes([(10, 33, 0, 1), (20 + d, d, 33, 0)]))
    rep = dict(type='EventFrames', T=1)
    train = DATASETS.build(dict(type='NMNIST', data_root=str(tmp_path),
                                split='train', representation=rep,
                                cache=False))
    assert len(train) == 20
    assert [train.get_label(i) for i in range(20)] == [
        d for d in range(10) for _ in range(2)]
    x = train[5]['inputs']  # digit 2
    assert x.shape == (1, 2, 34, 34)
    assert x[0, 1, 0, 33] == 1 and x[0, 0, 33, 2] == 1 and x.sum() == 2
    with pytest.raises(DataError, match='N-MNIST'):
        DATASETS.build(dict(type='NMNIST', data_root=str(tmp_path / 'no')))


def test_cifar10_dvs_fixed_split_and_orientation(tmp_path, monkeypatch):
    from bidl_train.datasets import CIFAR10DVS
    classes = CIFAR10DVS.classes
    # the shipped split: recordings 900..999 of each class are test
    with open(CIFAR10DVS.SPLIT_FILE) as f:
        shipped = [line.strip() for line in f if line.strip()]
    assert len(shipped) == 1000 and len(set(shipped)) == 1000
    assert shipped[0] == 'airplane/cifar10_airplane_900.aedat'
    assert shipped[-1] == 'truck/cifar10_truck_999.aedat'
    # a small copy: recordings 0..3, 2 and 3 test
    split = tmp_path / 'split.txt'
    split.write_text(''.join(f'{c}/cifar10_{c}_{i}.aedat\n' for c in classes
                             for i in (2, 3)))
    monkeypatch.setattr(CIFAR10DVS, 'SPLIT_FILE', str(split))
    # raw DVS128 address: raw_x = 5, y = 7, raw_p = 1 (OFF in jAER)
    # jAER: x = 122, y = 7, p = 0; SpikingJelly orientation: x' = 127 - 7,
    # y' = 122
    body = struct.pack('>II', (7 << 8) | (5 << 1) | 1, 10)
    for c in classes:
        (tmp_path / c).mkdir()
        for i in range(4):
            (tmp_path / c / f'cifar10_{c}_{i}.aedat').write_bytes(
                b'#!AER-DAT2.0\r\n' + body)
    rep = dict(type='EventFrames', T=1)
    train = CIFAR10DVS(tmp_path, 'train', representation=rep, cache=False)
    test = CIFAR10DVS(tmp_path, 'test', representation=rep, cache=False)
    assert len(train) == 20 and len(test) == 20
    assert {os.path.basename(r['path'])[-8:] for r in test.records} == \
        {'_2.aedat', '_3.aedat'}
    x = train[0]['inputs']
    assert x[0, 0, 122, 120] == 1 and x.sum() == 1
    os.remove(tmp_path / 'cat' / 'cifar10_cat_3.aedat')
    with pytest.raises(DataError, match='missing'):
        CIFAR10DVS(tmp_path, 'test', representation=rep, cache=False)


def test_event_folder_any_format(tmp_path):
    for split in ('train', 'test'):
        for c in ('a', 'b'):
            (tmp_path / split / c).mkdir(parents=True)
    np.save(tmp_path / 'train' / 'a' / '1.npy',
            make_events([0, 5], [1, 2], [3, 4], [1, 0]))
    write_aedat31(tmp_path / 'train' / 'b' / '2.aedat',
                  make_events([7], [9], [9], [1]))
    (tmp_path / 'train' / 'b' / 'notes.txt').write_text('ignored: not events')
    ds = DATASETS.build(dict(type='EventFolder', data_root=str(tmp_path),
                             sensor_size=(16, 16), cache=False,
                             representation=dict(type='EventFrames', T=1)))
    assert ds.metainfo['classes'] == ['a', 'b'] and len(ds) == 2
    assert ds[0]['inputs'].sum() == 2 and ds[1]['label'] == 1
    assert ds[1]['inputs'][0, 1, 9, 9] == 1


# -- N-Caltech101, MNIST-DVS, SHD/SSC, EventMix ------------------------------

def test_ncaltech101_fixed_split(tmp_path, monkeypatch):
    from bidl_train.datasets import NCaltech101
    classes = NCaltech101.classes
    assert len(classes) == 101 and 'Faces' not in classes
    # the shipped split: ceil(0.8 n) train images per class, 8709 in all
    rules = {}
    with open(NCaltech101.SPLIT_FILE) as f:
        for line in f:
            if line.strip() and not line.startswith('#'):
                name, n_train, n = line.split()
                rules[name] = (int(n_train), int(n))
    assert sorted(rules) == sorted(classes)
    assert rules['airplanes'] == (640, 800) and rules['ant'] == (34, 42)
    # a small copy: 5 images per class, images 1-3 train, 4-5 test
    split = tmp_path / 'split.txt'
    split.write_text('# test copy\n' + ''.join(f'{c} 3 5\n' for c in classes))
    monkeypatch.setattr(NCaltech101, 'SPLIT_FILE', str(split))
    root = tmp_path / 'Caltech101'
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(1, 6):
            (root / c / f'image_{i:04d}.bin').write_bytes(
                nmnist_bytes([(100 * i, 239, 179, 1)]))
    rep = dict(type='EventFrames', T=1)
    train = DATASETS.build(dict(type='NCaltech101', data_root=str(tmp_path),
                                split='train', representation=rep,
                                cache=False))
    test = NCaltech101(tmp_path, 'test', representation=rep, cache=False)
    assert len(train) == 303 and len(test) == 202
    assert {os.path.basename(r['path']) for r in test.records} == {
        'image_0004.bin', 'image_0005.bin'}
    assert train.get_label(0) == 0 and test.get_label(201) == 100
    x = train[0]['inputs']
    assert x.shape == (1, 2, 180, 240) and x[0, 1, 179, 239] == 1
    with pytest.raises(DataError, match='Orchard'):
        NCaltech101(tmp_path / 'none')


def test_dvs_mnist_layout_scales_split_and_orientation(tmp_path, monkeypatch):
    from bidl_train.datasets import DVSMNIST
    with open(DVSMNIST.SPLIT_FILE) as f:
        rules = [line.split() for line in f
                 if line.strip() and not line.startswith('#')]
    assert rules == [[str(d), '800'] for d in range(10)]
    split = tmp_path / 'split.txt'
    split.write_text(''.join(f'{d} 2\n' for d in range(10)))
    monkeypatch.setattr(DVSMNIST, 'SPLIT_FILE', str(split))
    root = tmp_path / 'extract'   # BIDL keeps the archives here
    for d in range(10):
        for s in (4, 8, 16):
            folder = root / f'grabbed_data{d}' / f'scale{s}'
            folder.mkdir(parents=True)
            for i in (1, 2, 3):
                # raw_x = 5, y = 7 + d, raw_p = 1; one event per recording
                (folder / f'mnist_{d}_scale{s:02d}_{i:04d}.aedat').write_bytes(
                    aedat2_dvs128([(5, 7 + d, 1, 10 * i)]))
    rep = dict(type='EventFrames', T=1)
    # the config's arguments (scale left at its default, 16)
    train = DATASETS.build(dict(type='DVSMNIST', data_root=str(tmp_path),
                                split='train', representation=rep,
                                cache=False))
    assert len(train) == 20
    assert all('scale16' in r['path'] for r in train.records)
    test = DVSMNIST(tmp_path, 'test', scale=(4, 8), representation=rep,
                    cache=False)
    assert len(test) == 20
    assert {os.path.basename(r['path'])[-10:] for r in test.records} == {
        '0003.aedat'}
    # BIDL's orientation: x' = 127 - y_raw, y' = 127 - x_raw,
    # p' = 1 - p_raw -> digit 3: x' = 117, y' = 122, p' = 0
    x = train[6]['inputs']
    assert train.get_label(6) == 3
    assert x[0, 0, 122, 117] == 1 and x.sum() == 1
    # the config's representation: T = 20 frames of 40x40
    cfg_rep = dict(type='EventFrames', T=20, split_by='number', size=40)
    assert DVSMNIST(tmp_path, 'train', representation=cfg_rep,
                    cache=False)[0]['inputs'].shape == (20, 2, 40, 40)
    with pytest.raises(DataError, match='scale'):
        DVSMNIST(tmp_path, scale=5)
    with pytest.raises(DataError, match='grabbed_data'):
        DVSMNIST(tmp_path / 'none')


def test_shd_frames_bins_cache_and_config_shapes(tmp_path):
    pytest.importorskip('h5py')  # SHD is HDF5: the optional [events] extra
    samples = [([0.0, 0.0105, 0.5, 0.999, 1.2], [0, 699, 3, 3, 5]),
               ([0.25], [10])]
    write_shd(tmp_path / 'shd_train.h5', samples, [19, 2])
    write_shd(tmp_path / 'shd_test.h5', samples[:1], [0])
    # what configs/shd.py builds: EventFrames T=100 by time -> [100, 2, 1, 700]
    ds = DATASETS.build(dict(type='SHD', data_root=str(tmp_path),
                             split='train', cache_dir=str(tmp_path / 'c'),
                             representation=dict(type='EventFrames', T=100,
                                                 split_by='time')))
    assert len(ds) == 2 and ds.get_label(0) == 19
    assert ds.metainfo['classes'][19] == 'neun (German)'
    x = ds[0]['inputs']
    assert x.shape == (100, 2, 1, 700) and x[:, 0].sum() == 0
    # t0 = 0, t1 = 1.2 s, dt = 12 ms: 10.5 ms -> bin 0, 0.5 s -> 41,
    # 0.999 s -> 83, 1.2 s -> last bin
    assert x[0, 1, 0, 0] == 1 and x[0, 1, 0, 699] == 1
    assert x[41, 1, 0, 3] == 1 and x[83, 1, 0, 3] == 1 and x[99, 1, 0, 5] == 1
    # fixed 1 s window, 100 bins of 10 ms: 10.5 ms -> bin 1; 1.2 s dropped
    SHD_REP = dict(type='SpikeBins', T=100, window=1_000_000)
    ds = DATASETS.build(dict(type='SHD', data_root=str(tmp_path),
                             split='train', cache=False,
                             representation=SHD_REP))
    x = ds[0]['inputs']
    assert x.shape == (100, 700) and x.sum() == 4
    assert x[0, 0] == 1 and x[1, 699] == 1 and x[50, 3] == 1 and \
        x[99, 3] == 1
    img = DATASETS.build(dict(type='SHD', data_root=str(tmp_path),
                              split='test', cache=False,
                              representation=dict(SHD_REP, layout='image')))
    assert img[0]['inputs'].shape == (100, 1, 1, 700)
    # SSC: three splits, names from extra/keys
    write_shd(tmp_path / 'ssc_valid.h5', samples, [34, 0],
              keys=[f'w{i}' for i in range(35)])
    ssc = DATASETS.build(dict(type='SSC', data_root=str(tmp_path),
                              split='valid', cache=False,
                              representation=SHD_REP))
    assert ssc.metainfo['classes'][34] == 'w34' and ssc[1]['label'] == 0
    with pytest.raises(DataError, match='gunzip'):
        DATASETS.build(dict(type='SSC', data_root=str(tmp_path)))
    (tmp_path / 'ssc_train.h5.gz').write_bytes(b'')
    with pytest.raises(DataError, match='gunzip it first'):
        DATASETS.build(dict(type='SSC', data_root=str(tmp_path)))
    write_shd(tmp_path / 'shd_test.h5', samples[:1], [20])
    with pytest.raises(DataError, match='labels outside'):
        DATASETS.build(dict(type='SHD', data_root=str(tmp_path),
                            split='test', cache=False))


class _Frames(torch.utils.data.Dataset):
    """Two constant samples: all ones (label 0) and all twos (label 1)."""
    metainfo = dict(classes=['a', 'b', 'c'])

    def __init__(self, shape):
        self.items = [dict(inputs=torch.full(shape, float(v + 1)), label=v)
                      for v in (0, 1)]

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return dict(self.items[i])


def test_event_mix_cutmix_and_eventmix_boxes_and_labels():
    from bidl_train.datasets import EventMixDataset
    shape = (4, 2, 8, 8)
    ds = EventMixDataset(_Frames(shape), alpha=1.0, prob=1.0, seed=5)
    # replay the wrapper's draws: prob, partner, lam, box start (t, y, x)
    rng = np.random.default_rng(5)
    rng.random()
    partner = int(rng.integers(2))
    lam = rng.beta(1.0, 1.0)
    side = np.sqrt(1 - lam)
    h, w = int(round(8 * side)), int(round(8 * side))
    t0 = int(rng.integers(0, 1))
    y0, x0 = int(rng.integers(0, 8 - h + 1)), int(rng.integers(0, 8 - w + 1))
    out = ds[0]
    want = torch.ones(shape)
    want[:, :, y0:y0 + h, x0:x0 + w] = float(partner + 1)
    assert t0 == 0 and torch.equal(out['inputs'], want)
    wa = 1 - h * w / 64
    expect = torch.zeros(3)
    expect[0] += wa
    expect[partner] += 1 - wa
    assert torch.allclose(out['soft_label'], expect)
    assert out['label'] == (0 if wa >= 0.5 else partner)

    # eventmix: a cuboid in (t, y, x); event weighting counts events
    ds = EventMixDataset(_Frames(shape), prob=1.0, mode='eventmix',
                         weight='events')
    a = torch.ones(shape)
    b = torch.full(shape, 3.0)
    ds.rng = np.random.default_rng(0)
    mixed, w = ds.mix(a, b)
    n_b = int((mixed == 3).sum())
    assert n_b > 0 and n_b % 2 == 0          # both polarities cut alike
    assert w == pytest.approx((a.numel() - n_b) / (a.numel() - n_b + 3 * n_b))
    # prob 0: untouched, weight 1
    plain = EventMixDataset(_Frames(shape), prob=0.0)[1]
    assert torch.equal(plain['inputs'], torch.full(shape, 2.0))
    assert plain['soft_label'].tolist() == [0, 1, 0] and plain['label'] == 1
    with pytest.raises(DataError, match='mode'):
        EventMixDataset(_Frames(shape), mode='mixup')


def test_event_folder_takes_the_sensor_size_from_a_prophesee_header(tmp_path):
    from helpers.prophesee_writers import dat_bytes
    for c in ('a', 'b'):
        (tmp_path / 'train' / c).mkdir(parents=True)
        (tmp_path / 'train' / c / 'rec.dat').write_bytes(
            dat_bytes([(10, 5, 7, 1), (20, 300, 200, 0)], width=320,
                      height=240))
    ds = DATASETS.build(dict(type='EventFolder', data_root=str(tmp_path),
                             cache=False,
                             representation=dict(type='EventFrames', T=1)))
    assert ds.metainfo['sensor_size'] == (240, 320)
    frames = ds[0]['inputs']
    assert frames.shape == (1, 2, 240, 320)
    assert frames[0, 1, 7, 5] == 1 and frames[0, 0, 200, 300] == 1


def test_event_folder_without_a_recorded_size_assumes_dvs128(tmp_path):
    (tmp_path / 'train' / 'a').mkdir(parents=True)
    np.save(tmp_path / 'train' / 'a' / '1.npy',
            make_events([0, 5], [1, 2], [3, 4], [1, 0]))
    ds = DATASETS.build(dict(type='EventFolder', data_root=str(tmp_path),
                             cache=False,
                             representation=dict(type='EventFrames', T=1)))
    assert ds.metainfo['sensor_size'] == (128, 128)
