"""Shared fixtures: small real video files written with PyAV (no mocks), and BN damping.

`make_video` writes a clip whose frame `i` is a solid colour `PALETTE[i % len(PALETTE)]`
(so a test can tell decoded frames apart), or frames you pass in. `make_broken_file`
writes the broken inputs a data pipeline must survive.
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable, Sequence

import numpy as np
import pytest

from keras_squeezetime.video.writer import write_video

# Distinct, saturated-enough colours that survive chroma subsampling and lossy codecs;
# neighbours differ by >= 60 levels in some channel.
PALETTE = np.array(
    [
        [230, 30, 30], [30, 200, 40], [40, 60, 220], [230, 220, 40], [200, 40, 210],
        [40, 210, 210], [250, 140, 20], [120, 120, 120], [20, 20, 20], [240, 240, 240],
        [140, 60, 20], [90, 160, 250],
    ],
    dtype=np.uint8,
)

CODEC_BY_EXTENSION = {
    ".mp4": "h264", ".mov": "h264", ".mkv": "h264", ".webm": "vp9", ".avi": "mjpeg"
}


def solid_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """`(T, H, W, 3)` uint8 frames, frame `i` filled with `PALETTE[i % len(PALETTE)]`."""
    colors = PALETTE[np.arange(num_frames) % len(PALETTE)]
    return np.broadcast_to(colors[:, None, None, :], (num_frames, height, width, 3)).copy()


@pytest.fixture
def palette() -> np.ndarray:
    """The colours of `make_video`'s default frames, `(len, 3)` uint8."""
    return PALETTE.copy()


@pytest.fixture
def frame_ids() -> Callable[..., list[int]]:
    """`frame_ids(frames, tolerance=16)`: the `PALETTE` index of each decoded frame.

    Matches each frame's mean colour to the nearest palette colour and asserts it is
    within `tolerance` levels per channel (lossy video codecs, JPEG, YUV round trips).
    """

    def identify(frames: np.ndarray, tolerance: float = 16) -> list[int]:
        means = frames.reshape(len(frames), -1, 3).mean(axis=1)
        distances = np.abs(means[:, None, :] - PALETTE[None, :, :].astype(float)).max(axis=-1)
        ids = distances.argmin(axis=1)
        worst = distances[np.arange(len(ids)), ids].max()
        assert worst <= tolerance, f"a frame is {worst:.1f} levels from every palette colour"
        return ids.tolist()

    return identify


@pytest.fixture
def make_video(tmp_path: pathlib.Path) -> Callable[..., pathlib.Path]:
    """Factory writing a real encoded video under `tmp_path`; returns its path.

    `make_video(name="clip.mp4", num_frames=20, height=48, width=64, fps=25.0,
    codec=None, rotation=None, frames=None, timestamps=None)`: the codec follows the
    extension (.mp4/.mov/.mkv H.264, .webm VP9, .avi MJPEG) unless given; `name` may
    hold sub-folders, spaces and non-ASCII letters.
    """

    def factory(
        name: str = "clip.mp4",
        num_frames: int = 20,
        height: int = 48,
        width: int = 64,
        fps: float = 25.0,
        codec: str | None = None,
        rotation: int | None = None,
        frames: np.ndarray | None = None,
        timestamps: Sequence[float] | None = None,
    ) -> pathlib.Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if frames is None:
            frames = solid_frames(num_frames, height, width)
        codec = codec or CODEC_BY_EXTENSION[path.suffix.lower()]
        write_video(path, frames, fps=fps, codec=codec, rotation=rotation, timestamps=timestamps)
        return path

    return factory


@pytest.fixture
def make_broken_file(tmp_path: pathlib.Path, make_video) -> Callable[..., pathlib.Path]:
    """Factory for inputs that are not decodable videos; returns the path.

    `make_broken_file(kind, name=None)` with kind "truncated" (an H.264 mp4 cut in
    half: its index is lost), "empty" (0 bytes) or "text" (not a video at all).
    """

    def factory(kind: str, name: str | None = None) -> pathlib.Path:
        if kind == "truncated":
            path = make_video(name or "truncated.mp4", num_frames=20)
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
            return path
        path = tmp_path / (name or f"{kind}.mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "empty":
            path.write_bytes(b"")
        elif kind == "text":
            path.write_text("this is not a video\n" * 20, encoding="utf-8")
        else:
            raise ValueError(f"Unknown broken-file kind {kind!r}.")
        return path

    return factory


@pytest.fixture
def make_overcounted_video(make_video) -> Callable[..., pathlib.Path]:
    """Factory for a real video whose header claims more frames than it decodes to.

    `make_overcounted_video(name="cut.avi", num_frames=40, keep=20, **make_video_kwargs)`
    writes an MPEG-4 AVI of `num_frames` frames and cuts the file at the start of frame
    `keep`'s chunk: the header still says `num_frames`, `keep` frames decode (a download
    cut short; OpenCV's sample tree.avi claims 444 frames and decodes 68).
    """

    def factory(name: str = "cut.avi", num_frames: int = 40, keep: int = 20,
                **kwargs) -> pathlib.Path:
        path = make_video(name, num_frames=num_frames, codec="mpeg4", **kwargs)
        data = path.read_bytes()
        movi = data.index(b"movi")
        chunks, at = [], movi
        while len(chunks) < num_frames:  # one '00dc' chunk per video frame, in order
            at = data.index(b"00dc", at + 1)
            chunks.append(at)
        path.write_bytes(data[: chunks[keep]])
        return path

    return factory


@pytest.fixture(scope="session")
def damp_batch_norm() -> Callable[..., None]:
    """`damp_batch_norm(model, seed)`: see `tests.helpers.damp_batch_norm`."""
    from tests.helpers import damp_batch_norm

    return damp_batch_norm


def pytest_configure(config):
    # Keep TensorFlow's C++ start-up chatter out of test logs (inherited by subprocesses).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # No network at test time, on any machine: every HTTP(S) request (TensorFlow's
    # cloud-storage client, the TPU resolver, preset downloads) goes to a port where
    # nothing listens and fails at once, here and in subprocesses.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        os.environ[name] = _NOWHERE
    # Except this machine: workers of a multi-worker test talk gRPC over localhost, which
    # honours the proxy variables too.
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "localhost,127.0.0.1,::1"
    os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"
    # TensorFlow's cloud-storage client: no wait for the metadata server, one quick retry.
    os.environ.update(NO_GCE_CHECK="true", GCS_RETRY_CONFIG_MAX_RETRIES="1",
                      GCS_RETRY_CONFIG_INIT_DELAY_TIME_US="1000")


_NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens on it
