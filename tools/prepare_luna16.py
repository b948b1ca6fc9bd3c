#!/usr/bin/env python
"""Cut LUNA16 CT scans into BIDL-style Luna16Cls patches.

Input (the LUNA16 release, see ``datasets/Luna16/README.md``)::

    <luna_root>/subset0/<seriesuid>.mhd + .raw   ... subset9/
    <luna_root>/CSVFILES/candidates.csv          seriesuid,coordX,coordY,coordZ,class
    <luna_root>/seg-lungs-LUNA16/<seriesuid>.mhd (optional lung masks)

Output (what ``bidl_train.datasets.volume.Luna16Cls`` reads)::

    <out>/{train,test}/<class>_<seriesuid>_<candidate index>.npy   uint8 [8, 32, 32]
    <out>/split.json   the seriesuids of each split

Per scan:

1. read the MetaImage (``.mhd`` header + ``.raw`` bytes) with our own reader
   (:func:`read_metaimage`; SimpleITK is not needed), giving voxels
   ``[z, y, x]`` in Hounsfield units, ``origin`` / ``spacing`` (x, y, z, mm)
   and the direction matrix;
2. HU window ``[-1200, 600]`` -> ``[0, 255]`` uint8 (BIDL's ``lumTrans``):
   ``u8 = uint8(255 * clip((hu + 1200) / 1800, 0, 1))``;
3. lung masking (when ``--seg-dir`` holds LUNA16's lung masks, whose
   values 3 and 4 are the two lungs): the mask is dilated by ``--dilate``
   voxels (6-neighbourhood) and every voxel outside it is set to 170, the
   fill value BIDL uses for tissue outside the lungs;
4. for each candidate: world (mm) -> voxel with
   ``index = D^-1 (world - origin) / spacing`` (D = direction), then an
   ``8 x 32 x 32`` patch at 1 mm isotropic spacing is sampled around it by
   trilinear interpolation. Patch voxel ``(k, i, j)`` sits at
   ``centre + ((k - 4), (i - 16), (j - 16)) * out_spacing / spacing``
   (BIDL's ``[c - n//2, c + n//2)`` window); samples outside the scan are
   170.

Splits are decided per scan (never per patch, so no scan leaks across):
a scan is in test when ``sha1(seriesuid)`` mod 1000 < ``1000 *
test_fraction``, reproducible without a random seed. All positives
(class 1) are kept; at most ``--max-neg-per-scan`` negatives per scan are
drawn with a seeded generator (candidates.csv holds ~550k negatives).
"""
import argparse
import csv
import glob
import hashlib
import json
import os
import os.path as osp
import sys
import zlib

import numpy as np

# Runs as a script from the repository root or anywhere after install.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from bidl_train.errors import DataError  # noqa: E402

PAD_VALUE = 170
PATCH_SHAPE = (8, 32, 32)
HU_WINDOW = (-1200.0, 600.0)

_MET_TYPES = {
    'MET_UCHAR': 'u1', 'MET_CHAR': 'i1', 'MET_USHORT': 'u2',
    'MET_SHORT': 'i2', 'MET_UINT': 'u4', 'MET_INT': 'i4',
    'MET_ULONG_LONG': 'u8', 'MET_LONG_LONG': 'i8', 'MET_FLOAT': 'f4',
    'MET_DOUBLE': 'f8'
}


def _parse_header(path):
    """Return ``(fields dict, byte length of the header)`` of a ``.mhd``.

    A MetaImage header is ``Key = Value`` text lines; ``ElementDataFile``
    is always the last one (``LOCAL`` means the bytes follow it).
    """
    fields = {}
    with open(path, 'rb') as f:
        while True:
            line = f.readline()
            if not line:
                break
            text = line.decode('latin-1').strip()
            if not text:
                continue
            if '=' not in text:
                raise DataError(f'bad MetaImage header line {text!r}',
                                path=path, offset=f.tell() - len(line))
            key, value = (s.strip() for s in text.split('=', 1))
            fields[key] = value
            if key == 'ElementDataFile':
                return fields, f.tell()
    raise DataError('MetaImage header has no ElementDataFile line',
                    path=path)


def read_metaimage(path):
    """Read a 3D MetaImage (``.mhd`` + ``.raw``, or ``.mha``).

    Returns ``(array [z, y, x], origin (x, y, z), spacing (x, y, z),
    direction 3x3)``. Supports every scalar ``ElementType``, MSB/LSB byte
    order, ``HeaderSize`` and zlib ``CompressedData``.
    """
    fields, header_len = _parse_header(path)
    try:
        dims = [int(v) for v in fields['DimSize'].split()]
        dtype = np.dtype(_MET_TYPES[fields['ElementType']])
    except KeyError as e:
        raise DataError(f'MetaImage header lacks or has an unsupported '
                        f'{e}', path=path) from None
    if len(dims) != 3 or int(fields.get('NDims', 3)) != 3:
        raise DataError(f'expected a 3D image, DimSize is {dims}', path=path)
    if int(fields.get('ElementNumberOfChannels', 1)) != 1:
        raise DataError('multi-channel images are not supported', path=path)
    msb = (fields.get('BinaryDataByteOrderMSB', fields.get(
        'ElementByteOrderMSB', 'False')).lower() == 'true')
    dtype = dtype.newbyteorder('>' if msb else '<')
    spacing = np.array([float(v) for v in fields.get(
        'ElementSpacing', fields.get('ElementSize', '1 1 1')).split()])
    origin = np.array([float(v) for v in fields.get(
        'Offset', fields.get('Origin', '0 0 0')).split()])
    direction = np.array([float(v) for v in fields.get(
        'TransformMatrix', '1 0 0 0 1 0 0 0 1').split()]).reshape(3, 3)

    data_file = fields['ElementDataFile']
    if data_file == 'LOCAL':
        raw_path, skip = path, header_len
    else:
        raw_path, skip = osp.join(osp.dirname(path), data_file), 0
    try:
        with open(raw_path, 'rb') as f:
            f.seek(skip)
            payload = f.read()
    except FileNotFoundError:
        raise DataError('MetaImage data file not found (it should lie '
                        'beside the .mhd)', path=raw_path) from None
    if fields.get('CompressedData', 'False').lower() == 'true':
        try:
            payload = zlib.decompress(payload)
        except zlib.error as e:
            raise DataError(f'bad zlib data ({e})', path=raw_path) from None
    nbytes = int(np.prod(dims)) * dtype.itemsize
    header_size = int(fields.get('HeaderSize', 0))
    if header_size == -1:  # data are the LAST nbytes of the file
        payload = payload[len(payload) - nbytes:]
    else:
        payload = payload[header_size:]
    if len(payload) < nbytes:
        raise DataError(
            f'MetaImage data truncated: {len(payload)} of {nbytes} bytes',
            path=raw_path, offset=skip + header_size + len(payload))
    array = np.frombuffer(payload[:nbytes], dtype=dtype).reshape(dims[::-1])
    return array.astype(dtype.newbyteorder('=')), origin, spacing, direction


def world_to_voxel(world_xyz, origin, spacing, direction):
    """World mm (x, y, z) -> fractional voxel index (z, y, x)."""
    local = np.linalg.solve(direction, np.asarray(world_xyz) - origin)
    return (local / spacing)[::-1]


def hu_to_uint8(hu, window=HU_WINDOW):
    """``uint8(255 * clip((hu - low) / (high - low), 0, 1))``."""
    low, high = window
    norm = np.clip((hu.astype(np.float32) - low) / (high - low), 0.0, 1.0)
    return (norm * 255).astype(np.uint8)


def dilate(mask, iterations):
    """Binary dilation with the 6-neighbourhood, ``iterations`` times."""
    mask = mask.astype(bool)
    for _ in range(iterations):
        grown = mask.copy()
        for axis in range(3):
            for shift in (1, -1):
                rolled = np.roll(mask, shift, axis=axis)
                # np.roll wraps around; clear the wrapped-in face
                edge = [slice(None)] * 3
                edge[axis] = 0 if shift == 1 else -1
                rolled[tuple(edge)] = False
                grown |= rolled
        mask = grown
    return mask


def trilinear(volume, coords, pad_value):
    """Sample ``volume [z, y, x]`` at fractional ``coords [..., 3]``.

    A sample whose coordinate lies outside ``[0, size - 1]`` on any axis
    takes ``pad_value``.
    """
    vol = volume.astype(np.float32)
    shape = np.array(vol.shape)
    inside = np.all((coords >= 0) & (coords <= shape - 1), axis=-1)
    c = np.clip(coords, 0, shape - 1)
    lo = np.floor(c).astype(np.int64)
    hi = np.minimum(lo + 1, shape - 1)
    frac = c - lo
    out = np.zeros(coords.shape[:-1], np.float32)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                z = hi[..., 0] if dz else lo[..., 0]
                y = hi[..., 1] if dy else lo[..., 1]
                x = hi[..., 2] if dx else lo[..., 2]
                w = ((frac[..., 0] if dz else 1 - frac[..., 0]) *
                     (frac[..., 1] if dy else 1 - frac[..., 1]) *
                     (frac[..., 2] if dx else 1 - frac[..., 2]))
                out += w * vol[z, y, x]
    return np.where(inside, out, np.float32(pad_value))


def sample_patch(volume, spacing_zyx, center_zyx, shape=PATCH_SHAPE,
                 out_spacing=(1.0, 1.0, 1.0), pad_value=PAD_VALUE):
    """Patch of ``shape`` at ``out_spacing`` mm around ``center_zyx``.

    Output voxel ``k`` on an axis of size ``n`` samples the source at
    ``center + (k - n // 2) * out_spacing / spacing``; with equal spacings
    and an integer centre this is exactly ``volume[c - n//2 : c + n//2]``.
    """
    steps = np.asarray(out_spacing, float) / np.asarray(spacing_zyx, float)
    axes = [
        center_zyx[a] + (np.arange(n) - n // 2) * steps[a]
        for a, n in enumerate(shape)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing='ij'), axis=-1)
    patch = trilinear(volume, grid, pad_value)
    return np.clip(np.round(patch), 0, 255).astype(np.uint8)


def read_candidates(path):
    """``{seriesuid: [(row index, (x, y, z), class)]}`` of candidates.csv."""
    by_scan = {}
    with open(path, newline='') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        expected = ['seriesuid', 'coordX', 'coordY', 'coordZ', 'class']
        if header is None or [h.strip() for h in header[:5]] != expected:
            raise DataError(f'expected header {",".join(expected)}',
                            path=path)
        for i, row in enumerate(reader):
            try:
                xyz = tuple(float(v) for v in row[1:4])
                cls = int(row[4])
            except (ValueError, IndexError):
                raise DataError(f'line {reader.line_num}: bad row {row}',
                                path=path) from None
            by_scan.setdefault(row[0], []).append((i, xyz, cls))
    return by_scan


def is_test_scan(seriesuid, test_fraction):
    digest = hashlib.sha1(seriesuid.encode()).hexdigest()
    return int(digest, 16) % 1000 < round(1000 * test_fraction)


def prepare_scan(mhd_path, candidates, out_dir, seg_path=None, dilate_iters=10,
                 max_neg=10, rng=None):
    """Write the patches of one scan into ``out_dir``; return their paths."""
    hu, origin, spacing, direction = read_metaimage(mhd_path)
    vol = hu_to_uint8(hu)
    if seg_path is not None:
        seg, *_ = read_metaimage(seg_path)
        if seg.shape != hu.shape:
            raise DataError(f'lung mask shape {seg.shape} differs from the '
                            f'scan {hu.shape}', path=seg_path)
        lungs = dilate((seg == 3) | (seg == 4), dilate_iters)
        vol = np.where(lungs, vol, np.uint8(PAD_VALUE))
    positives = [c for c in candidates if c[2] == 1]
    negatives = [c for c in candidates if c[2] != 1]
    if max_neg is not None and len(negatives) > max_neg:
        rng = rng or np.random.default_rng(0)
        keep = sorted(rng.choice(len(negatives), max_neg, replace=False))
        negatives = [negatives[i] for i in keep]
    uid = osp.splitext(osp.basename(mhd_path))[0]
    spacing_zyx = spacing[::-1]
    written = []
    os.makedirs(out_dir, exist_ok=True)
    for idx, xyz, cls in positives + negatives:
        center = world_to_voxel(xyz, origin, spacing, direction)
        patch = sample_patch(vol, spacing_zyx, center)
        path = osp.join(out_dir, f'{cls}_{uid}_{idx}.npy')
        np.save(path, patch)
        written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('luna_root', help='folder with subset*/ and CSVFILES/')
    parser.add_argument('out', help='output folder (e.g. datasets/Luna16)')
    parser.add_argument('--candidates', default=None,
                        help='default <luna_root>/CSVFILES/candidates.csv')
    parser.add_argument('--seg-dir', default=None,
                        help='LUNA16 seg-lungs-LUNA16 folder (lung masking)')
    parser.add_argument('--dilate', type=int, default=10)
    parser.add_argument('--max-neg-per-scan', type=int, default=10)
    parser.add_argument('--test-fraction', type=float, default=0.2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    cand_path = args.candidates or osp.join(args.luna_root, 'CSVFILES',
                                            'candidates.csv')
    by_scan = read_candidates(cand_path)
    scans = sorted(
        glob.glob(osp.join(args.luna_root, 'subset*', '*.mhd')) +
        glob.glob(osp.join(args.luna_root, '*.mhd')))
    if not scans:
        raise DataError('no .mhd scans under subset*/', path=args.luna_root)
    rng = np.random.default_rng(args.seed)
    split = {'train': [], 'test': []}
    for mhd in scans:
        uid = osp.splitext(osp.basename(mhd))[0]
        if uid not in by_scan:
            continue  # a scan without candidates has nothing to cut
        name = 'test' if is_test_scan(uid, args.test_fraction) else 'train'
        seg = osp.join(args.seg_dir, uid + '.mhd') if args.seg_dir else None
        n = len(prepare_scan(mhd, by_scan[uid], osp.join(args.out, name),
                             seg, args.dilate, args.max_neg_per_scan, rng))
        split[name].append(uid)
        print(f'{name}: {uid}: {n} patches')
    with open(osp.join(args.out, 'split.json'), 'w') as f:
        json.dump(split, f, indent=1)


if __name__ == '__main__':
    try:
        main()
    except DataError as e:
        sys.exit(f'error: {e}')
