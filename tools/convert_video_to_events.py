"""Convert a video (or a still image, by saccades) into an event file.

Examples::

    # a video: frame times from its frame rate (or --fps)
    python tools/convert_video_to_events.py clip.mp4 clip.aedat
    # a folder of frames (sorted names) at 30 fps, thresholds 0.25, noise
    python tools/convert_video_to_events.py frames/ out.npy --fps 30 \
        --threshold 0.25 --shot-noise 0.5 --seed 0
    # a still image moved in three saccades (N-MNIST-like)
    python tools/convert_video_to_events.py digit.png digit.aedat --saccades

The emulator model is described in :mod:`bidl_train.datasets.emulator`.
``.aedat`` output is AEDAT 3.1 (any sensor size, readable by jAER/DV and by
``read_events``); ``.npy`` is a structured array ``t, x, y, p``.
"""
import argparse
import os
import sys

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.pgm', '.tif', '.tiff')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='convert_video_to_events',
        description='Emulate a DVS on a video, a folder of frames or a '
        'still image')
    parser.add_argument('source', help='video file, folder of frames, or '
                        'an image (with --saccades)')
    parser.add_argument('out', help='output event file: .aedat or .npy')
    parser.add_argument('--fps', type=float,
                        help='frame rate (default: the video\'s, else 30)')
    parser.add_argument('--threshold', type=float, default=0.2,
                        help='ON and OFF contrast threshold (log intensity)')
    parser.add_argument('--on-threshold', type=float,
                        help='ON threshold (overrides --threshold)')
    parser.add_argument('--off-threshold', type=float,
                        help='OFF threshold (overrides --threshold)')
    parser.add_argument('--refractory', type=float, default=0,
                        help='refractory period in us')
    parser.add_argument('--mismatch', type=float, default=0.0,
                        help='relative spread of per-pixel thresholds')
    parser.add_argument('--shot-noise', type=float, default=0.0,
                        help='noise events per pixel per second')
    parser.add_argument('--saccades', action='store_true',
                        help='the source is a still image: move it in three '
                        'saccades')
    parser.add_argument('--amplitude', type=float, default=3.0,
                        help='saccade amplitude in pixels')
    parser.add_argument('--seed', type=int, help='seed of the noise')
    return parser.parse_args(argv)


def read_frames(source, fps):
    """``(frames [T, H, W(, 3)] uint8, fps)`` of a video or a folder."""
    import cv2
    import numpy as np

    from bidl_train.errors import DataError
    if os.path.isdir(source):
        names = sorted(n for n in os.listdir(source)
                       if n.lower().endswith(IMAGE_EXTENSIONS))
        frames = [cv2.imread(os.path.join(source, n)) for n in names]
        if not frames or any(f is None for f in frames):
            raise DataError('no readable image frames in the folder',
                            path=source)
        return np.stack(frames), fps or 30.0
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise DataError('OpenCV cannot open this video', path=source)
    video_fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if len(frames) < 2:
        raise DataError(f'the video has {len(frames)} readable frame(s); '
                        'events need at least 2', path=source)
    return np.stack(frames), fps or (video_fps if video_fps > 0 else 30.0)


def main(argv=None):
    args = parse_args(argv)
    import cv2
    import numpy as np

    from bidl_train.datasets.emulator import (emulate_events,
                                              saccade_frames, to_gray)
    from bidl_train.datasets.io import write_aedat31
    from bidl_train.errors import BidlError, DataError
    try:
        ext = os.path.splitext(args.out)[1].lower()
        if ext not in ('.aedat', '.npy'):
            raise DataError('output must end in .aedat or .npy',
                            path=args.out)
        if args.saccades:
            image = cv2.imread(args.source, cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise DataError('cannot read the image', path=args.source)
            frames, times = saccade_frames(image, amplitude=args.amplitude)
        else:
            frames, fps = read_frames(args.source, args.fps)
            times = np.arange(len(frames)) * (1e6 / fps)
        gray = to_gray(frames)
        events = emulate_events(
            gray, times,
            pos_threshold=args.on_threshold or args.threshold,
            neg_threshold=args.off_threshold or args.threshold,
            refractory=args.refractory, threshold_sigma=args.mismatch,
            shot_noise_rate=args.shot_noise, seed=args.seed)
        if ext == '.aedat':
            write_aedat31(args.out, events, source_name='DVSEmulator')
        else:
            np.save(args.out, events)
    except BidlError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    h, w = gray.shape[1:]
    print(f'{len(events)} events ({int((events["p"] == 1).sum())} ON) from '
          f'{len(gray)} frames of {w}x{h} -> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
