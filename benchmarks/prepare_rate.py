"""Data-preparation rate and record size: videos/s per worker and bytes per video.

Writes one Kinetics-like source clip (10 s at 30 fps, H.264, a camera panning and
zooming over a photograph so JPEG sizes are those of natural images, not of flat
synthetic colours), then times, in this process (= one worker):

  decode    probe + PyAV decode + resize to the short side (`read_frames`)
  encode    decode + JPEG encoding of every stored frame (`encode_video`, what a worker does)
  prepare   `prepare_dataset(workers=1)` end to end, including building and writing records
  jpeg      per stored frame: Pillow (what workers use) against `tf.io.encode_jpeg`, same
            quality, ms per frame and bytes per frame (`--jpeg-encoders`)

CPU seconds are reported next to wall seconds: PyAV decodes with frame threads, so
one process may borrow a second core; the per-core rate uses CPU seconds. The
extrapolation to Kinetics-400 (about 260k train + val clips) assumes one worker per core.

  python benchmarks/prepare_rate.py --source-size 640x360 --videos 4
  python benchmarks/prepare_rate.py --source-size 640x360 --videos 1 --jpeg-encoders
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

KINETICS400_VIDEOS = 260_000  # ~240k train + ~20k val clips still downloadable


def natural_clip(width: int, height: int, num_frames: int) -> np.ndarray:
    """Frames of a slow pan and zoom over matplotlib's sample photograph."""
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        photo = Image.open(handle).convert("RGB")
    # Large enough that the crop window can travel.
    base = photo.resize((int(width * 1.6), int(width * 1.6 * photo.height / photo.width)))
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        zoom = 1.0 + 0.3 * t / num_frames
        crop_w, crop_h = int(width * 1.2 / zoom), int(height * 1.2 / zoom)
        x = int((base.width - crop_w) * t / num_frames)
        y = int((base.height - crop_h) * (0.5 + 0.4 * np.sin(t / 20)))
        window = base.crop((x, y, x + crop_w, y + crop_h)).resize((width, height))
        frames[t] = np.asarray(window)
    return frames


def timed(function, repeats: int) -> tuple[float, float]:
    """Wall and CPU seconds per call (CPU counts every decoder thread of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--source-size", default="640x360", help="WxH of the source clip")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--source-fps", type=float, default=30.0)
    parser.add_argument("--videos", type=int, default=4, help="videos per timing")
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--fps", type=float, default=None)
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--jpeg-encoders", action="store_true",
                        help="also time Pillow against tf.io.encode_jpeg per stored frame")
    args = parser.parse_args()

    from keras_squeezetime.training.annotations import VideoEntry
    from keras_squeezetime.training.prepare import PrepareSettings, encode_video, prepare_dataset
    from keras_squeezetime.video import probe_video, read_frames, write_video

    width, height = (int(v) for v in args.source_size.split("x"))
    settings = PrepareSettings(args.short_side, args.fps, args.max_frames, args.jpeg_quality)
    with tempfile.TemporaryDirectory() as workdir:
        source = os.path.join(workdir, "source.mp4")
        num_frames = int(round(args.seconds * args.source_fps))
        write_video(source, natural_clip(width, height, num_frames), fps=args.source_fps, crf=23)
        entry = VideoEntry(source, 0, "abseiling", "source")
        source_bytes = os.path.getsize(source)

        read_frames(source, short_side=args.short_side)  # warm-up: imports, caches
        decode = timed(
            lambda: (
                probe_video(source),
                read_frames(
                    source, short_side=args.short_side, fps=args.fps, max_frames=args.max_frames
                ),
            ),
            args.videos,
        )
        encode = timed(lambda: encode_video(entry, settings), args.videos)
        stored = len(encode_video(entry, settings)["jpegs"])
        if args.jpeg_encoders:
            frames = read_frames(source, short_side=args.short_side, fps=args.fps,
                                 max_frames=args.max_frames)
            jpeg = jpeg_encoders(frames, args.jpeg_quality)

        output = os.path.join(workdir, "records")
        manifests = []
        prepare = timed(
            lambda: manifests.append(prepare_dataset(
                [entry] * args.videos, f"{output}{len(manifests)}", workers=1,
                short_side=args.short_side, fps=args.fps, max_frames=args.max_frames,
                shard_size=args.videos, jpeg_quality=args.jpeg_quality,
            )),
            1,
        )
        prepare = tuple(seconds / args.videos for seconds in prepare)
        manifest = manifests[0]

    per_video = manifest["bytes_per_video"]
    # Per core: CPU seconds, so decoder threads that borrowed a second core are counted.
    rate = 1.0 / prepare[1]
    result = {
        "source": f"{width}x{height} H.264 crf 23, {args.seconds:g} s at {args.source_fps:g} fps",
        "source_bytes": source_bytes,
        "settings": vars(args),
        "stored_frames": stored,
        "seconds_per_video_wall_cpu": {
            "decode_resize": [round(v, 3) for v in decode],
            "decode_resize_jpeg": [round(v, 3) for v in encode],
            "prepare_end_to_end": [round(v, 3) for v in prepare],
        },
        "videos_per_cpu_second": round(rate, 3),
        "bytes_per_video": round(per_video),
        "bytes_per_frame": round(per_video / stored),
        "kinetics400": {
            "videos": KINETICS400_VIDEOS,
            "disk_gb": round(per_video * KINETICS400_VIDEOS / 1e9),
            "hours_on_8_cores": round(KINETICS400_VIDEOS / (rate * 8) / 3600, 1),
            "hours_on_32_cores": round(KINETICS400_VIDEOS / (rate * 32) / 3600, 1),
        },
    }
    if args.jpeg_encoders:
        result["jpeg_per_frame"] = jpeg
    print(json.dumps(result, indent=2))


def jpeg_encoders(frames: np.ndarray, quality: int) -> dict[str, dict[str, float]]:
    """Median ms and mean bytes per frame of each JPEG encoder on the same stored frames."""
    import io

    import tensorflow as tf
    from PIL import Image

    def pillow(frame):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        return buffer.getvalue()

    def tensorflow(frame):
        return tf.io.encode_jpeg(frame, quality=quality).numpy()

    result = {}
    for name, encode in (("pillow", pillow), ("tf.io.encode_jpeg", tensorflow)):
        encode(frames[0])  # warm-up
        times, sizes = [], []
        for frame in frames:
            start = time.perf_counter()
            sizes.append(len(encode(frame)))
            times.append(time.perf_counter() - start)
        result[name] = {"median_ms": round(1e3 * float(np.median(times)), 3),
                        "mean_bytes": round(float(np.mean(sizes)))}
    return result


if __name__ == "__main__":
    main()
