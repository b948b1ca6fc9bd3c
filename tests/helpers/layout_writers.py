"""Writers of the published dataset layouts, byte by byte, for the tests.

They assemble files with ``struct`` / ``h5py`` / ``numpy`` directly from the
byte layouts in shared/FORMATS.md, not through the package's own writers, so
a reader test checks the reader against an independent encoding (the gesture
recordings use the package's AEDAT 3.1 writer, itself checked against hand
made bytes in tests/datasets/test_event_io.py). Shared by
the reader tests and by tests/configs/test_task_configs_data.py, which writes a tiny
copy of every task's dataset.
"""
import os
import struct

import numpy as np

from bidl_train.datasets.io import make_events, write_aedat31


def nmnist_bytes(rows):
    """N-MNIST / N-Caltech101 ``.bin`` bytes of events ``(t, x, y, p)``:
    5 bytes each, x, y, then polarity in bit 7 and a 23-bit time."""
    return b''.join(bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF,
                           t & 0xFF]) for t, x, y, p in rows)


def aedat2_dvs128(rows):
    """AEDAT 2.0 bytes of raw DVS128 events (raw_x, y, raw_p, t)."""
    body = b''.join(struct.pack('>II', (y << 8) | (x << 1) | p, t)
                    for x, y, p, t in rows)
    return b'#!AER-DAT2.0\r\n# HardwareInterface: DVS128\r\n' + body


def write_recording(root, name, windows, extra=()):
    """One DVS128 Gesture recording (``<name>.aedat``, AEDAT 3.1) and its
    ``<name>_labels.csv``; ``windows`` = [(class, start, end, n_events)].

    Events are spread inside each window, one exactly at ``start`` (in) and
    one exactly at ``end`` (out, counted by nobody unless another window
    covers it)."""
    t, labels = list(extra), []
    for cls, start, end, n in windows:
        t += [start] + list(np.linspace(start + 1, end - 1, n - 1).astype(int))
        t.append(end)  # outside this window
        labels.append(f'{cls},{start},{end}\n')
    t = np.sort(np.array(t))
    ev = make_events(t, t % 128, (t // 7) % 128, t % 2)
    write_aedat31(os.path.join(root, name + '.aedat'), ev)
    with open(os.path.join(root, name + '_labels.csv'), 'w') as f:
        f.write('class,startTime_usec,endTime_usec\n' + ''.join(labels))


def write_shd(path, samples, labels, keys=None):
    """SHD layout written with h5py directly: vlen float times (s), vlen
    uint16 units, labels."""
    import h5py
    with h5py.File(path, 'w') as f:
        times = f.create_dataset('spikes/times', (len(samples), ),
                                 dtype=h5py.vlen_dtype(np.float64))
        units = f.create_dataset('spikes/units', (len(samples), ),
                                 dtype=h5py.vlen_dtype(np.uint16))
        for i, (ts, us) in enumerate(samples):
            times[i] = np.asarray(ts, np.float64)
            units[i] = np.asarray(us, np.uint16)
        f['labels'] = np.asarray(labels, np.uint16)
        if keys is not None:
            f['extra/keys'] = np.array([k.encode() for k in keys])


def write_es_imagenet(root, entries, split='train'):
    """ES-ImageNet release files of one split: ``<split>label.txt`` and
    ``<split>/<relpath>`` ``.npz`` files holding ``pos`` / ``neg`` uint8
    ``[N, 3]`` (x, y, t) arrays.

    ``entries``: (relpath, label, a, b, pos, neg) per sample."""
    (root / split).mkdir(parents=True, exist_ok=True)
    lines = []
    for rel, label, a, b, pos, neg in entries:
        path = root / split / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, pos=np.asarray(pos, np.uint8).reshape(-1, 3),
                            neg=np.asarray(neg, np.uint8).reshape(-1, 3))
        lines.append(f'{rel} {label} {a} {b}')
    (root / f'{split}label.txt').write_text('\n'.join(lines) + '\n')
