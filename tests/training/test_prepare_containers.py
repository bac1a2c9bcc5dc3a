"""Every extension `--folder` takes is a container prepare decodes: real files written with PyAV."""

from __future__ import annotations

import os
import pathlib
from fractions import Fraction

import av
import numpy as np
import tensorflow as tf

from keras_squeezetime.training.annotations import VIDEO_EXTENSIONS, parse_class_folders
from keras_squeezetime.training.prepare import prepare_dataset
from keras_squeezetime.training.records import parse_sequence_example
from tests.conftest import solid_frames

# extension -> (PyAV encoder, muxer; None: FFmpeg picks it from the extension). A codec such
# files commonly hold; .ogv is VP8 in Ogg since PyAV's wheel has no Theora encoder.
CONTAINERS = {
    ".mp4": ("libx264", None), ".m4v": ("libx264", "mp4"), ".mov": ("libx264", None),
    ".qt": ("libx264", "mov"), ".mkv": ("libx264", None), ".webm": ("libvpx-vp9", None),
    ".avi": ("mjpeg", None), ".divx": ("mpeg4", "avi"), ".flv": ("flv", None),
    ".f4v": ("libx264", "mp4"), ".3gp": ("h263", None), ".3g2": ("h263", None),
    ".mpg": ("mpeg1video", None), ".mpeg": ("mpeg2video", None), ".mpe": ("mpeg1video", "mpeg"),
    ".vob": ("mpeg2video", None), ".ts": ("libx264", None), ".m2ts": ("libx264", None),
    ".mts": ("libx264", None), ".m2t": ("mpeg2video", None), ".wmv": ("wmv2", None),
    ".asf": ("wmv2", None), ".ogv": ("libvpx", None), ".mxf": ("mpeg2video", None),
    ".rm": ("rv10", None), ".rmvb": ("rv20", "rm"), ".dv": ("dvvideo", None),
}
# Frame sizes other than 176x144 (a size H.263 takes): DV has only its TV sizes.
SIZES = {"dvvideo": (720, 576)}


def write_with_pyav(path: pathlib.Path, encoder: str, muxer: str | None, num_frames: int) -> None:
    """`num_frames` palette frames at 25 fps, 176x144 (or `SIZES`), straight with PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = SIZES.get(encoder, (176, 144))
    with av.open(os.fspath(path), "w", format=muxer) as container:
        stream = container.add_stream(encoder, rate=Fraction(25))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if encoder == "mjpeg" else "yuv420p"
        for frame in solid_frames(num_frames, height, width):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_every_recognised_extension_decodes_through_prepare(tmp_path, frame_ids):
    assert set(CONTAINERS) == set(VIDEO_EXTENSIONS)  # a new extension needs a file here
    for extension, (encoder, muxer) in CONTAINERS.items():
        write_with_pyav(tmp_path / "data" / "clips" / f"{extension[1:]}{extension}", encoder,
                        muxer, 6)
    output = tmp_path / "out"

    entries = parse_class_folders(tmp_path / "data")
    manifest = prepare_dataset(entries, os.fspath(output), short_side=None, shard_size=100)

    assert sorted(pathlib.Path(e.path).suffix for e in entries) == sorted(CONTAINERS)
    assert manifest["failures"] == [] and manifest["num_written"] == len(CONTAINERS)
    (shard,) = output.glob("*.tfrecord")
    for serialized in tf.data.TFRecordDataset(os.fspath(shard)):
        parsed = parse_sequence_example(serialized)
        frames = np.stack([tf.io.decode_jpeg(jpeg).numpy() for jpeg in parsed["frames"]])
        assert frame_ids(frames) == list(range(6)), parsed["media_id"]
        assert float(parsed["frame_rate"]) == 25.0
