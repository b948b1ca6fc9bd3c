"""AEDAT 4.0 (iniVation DV; DAVIS346/DVXplorer, tonic's CIFAR10-DVS) reader.

The body is a stream of LZ4/ZSTD-compressed flatbuffer packets described by
a flatbuffer IO header, so decoding is delegated to the optional ``aedat``
package (``pip install aedat``). Only event packets are kept; frame, IMU and
trigger packets are skipped. Its events carry ``t, x, y, on``; ``on`` becomes
``p`` (1 = ON).
"""
import os

import numpy as np

from bidl_train.errors import DataError

from .events import empty_events, make_events


def read_aedat4(path):
    """Read the polarity events of an AEDAT 4.0 file (needs ``aedat``)."""
    path = os.fspath(path)
    try:
        import aedat
    except ImportError as err:
        raise DataError(
            'reading AEDAT 4.0 needs the optional "aedat" package: '
            'pip install aedat', path=path) from err
    chunks = []
    try:
        for packet in aedat.Decoder(path):
            if 'events' in packet:
                ev = packet['events']
                chunks.append(make_events(ev['t'], ev['x'], ev['y'],
                                          ev['on'].astype(np.uint8)))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # the Rust decoder panics on bad input
        # (pyo3's PanicException derives from BaseException)
        raise DataError(f'cannot decode AEDAT 4.0 ({err}); the file is '
                        'truncated or corrupt', path=path) from err
    if not chunks:
        return empty_events()
    return np.concatenate(chunks)
