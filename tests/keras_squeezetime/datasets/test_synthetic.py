"""Tests of the synthetic temporal-order dataset, on real H.264 files decoded with PyAV."""

from __future__ import annotations

import json
import os

import av
import numpy as np
import pytest

from keras_squeezetime.datasets import synthetic
from keras_squeezetime.datasets.synthetic import (
    CLASS_NAMES,
    TIME_REVERSED_PAIRS,
    clip_rng,
    generate_synthetic_dataset,
    render_clip,
)

FRAMES, HEIGHT, WIDTH = 16, 64, 80


def _decode(path: str) -> tuple[np.ndarray, str]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, stream.codec_context.name


def _object_mask(frames: np.ndarray) -> np.ndarray:
    """Saturated pixels: objects are saturated, the background is nearly grey."""
    frames = frames.astype(np.int16)
    return frames.max(-1) - frames.min(-1) > 80


def _slope(values: np.ndarray) -> float:
    return float(np.polyfit(np.arange(len(values)), values, 1)[0])


def _centroids(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame object area and centroid (x, y) as fractions of the frame."""
    mask = _object_mask(frames)
    area = mask.mean(axis=(1, 2))
    ys, xs = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    count = np.maximum(mask.sum(axis=(1, 2)), 1)
    cx = (mask * xs).sum(axis=(1, 2)) / count / frames.shape[2]
    cy = (mask * ys).sum(axis=(1, 2)) / count / frames.shape[1]
    return area, cx, cy


def _colour_time(frames: np.ndarray, channel: int) -> float:
    """Mean frame index of pixels dominated by `channel` (0 red, 2 blue)."""
    frames = frames.astype(np.int16)
    others = np.delete(frames, channel, axis=-1).max(-1)
    per_frame = ((frames[..., channel] - others > 40) & _object_mask(frames)).sum(axis=(1, 2))
    assert per_frame.sum() > 0
    return float((per_frame * np.arange(len(frames))).sum() / per_frame.sum())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("synthetic")
    return generate_synthetic_dataset(
        out, num_train_per_class=2, num_val_per_class=1, num_frames=FRAMES,
        height=HEIGHT, width=WIDTH, seed=3,
    )


def _entries(list_path: str) -> list[tuple[str, int]]:
    with open(list_path, encoding="utf-8") as handle:
        return [(p, int(label)) for p, label in (line.split() for line in handle)]


def test_pairs_cover_every_class_once():
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES) == 8
    flat = [c for pair in TIME_REVERSED_PAIRS for c in pair]
    assert sorted(flat) == list(range(len(CLASS_NAMES)))
    assert synthetic.pair_of(5) == (4, 5)
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 8\); got 8"):
        render_clip(len(CLASS_NAMES), np.random.default_rng(0), 8, 32, 32)


@pytest.mark.parametrize("pair", TIME_REVERSED_PAIRS)
def test_reversed_class_is_forward_clip_played_backwards(pair):
    # The proof's premise: the paired class has exactly the frames of the forward class,
    # so no per-frame statistic or bag of frames can separate them.
    forward, backward = pair
    for seed in (0, 1):
        clip = render_clip(forward, np.random.default_rng(seed), 12, 32, 48)
        reversed_clip = render_clip(backward, np.random.default_rng(seed), 12, 32, 48)
        assert clip.shape == (12, 32, 48, 3) and clip.dtype == np.uint8
        np.testing.assert_array_equal(reversed_clip, clip[::-1])
        assert not np.array_equal(clip, clip[::-1])


def test_frame_statistics_match_within_pair_but_order_does_not():
    # Independent clips of each class (different seeds): the bag of frames agrees within a
    # pair (mean centroid, mean area), while the temporal slope has opposite signs.
    # Columns: mean cx, mean cy, mean area, then the slopes of cx, cy and area over time.
    stats = {}
    for label in range(6):
        rows = []
        for index in range(24):
            clip = render_clip(label, clip_rng(7, "train", label, index), 10, 48, 48)
            area, cx, cy = _centroids(clip)
            rows.append((cx.mean(), cy.mean(), area.mean(), _slope(cx), _slope(cy),
                         _slope(area)))
        stats[label] = np.asarray(rows)
    for (forward, backward), slope_column in zip(TIME_REVERSED_PAIRS[:3], (3, 4, 5)):
        a, b = stats[forward], stats[backward]
        standard_error = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b)) + 1e-6
        assert np.all(np.abs(a.mean(0) - b.mean(0))[:3] < 4 * standard_error[:3])
        assert np.all(a[:, slope_column] > 0) and np.all(b[:, slope_column] < 0)


def test_files_lists_and_classes_are_consistent(dataset):
    out = dataset["output_dir"]
    with open(dataset["classes_file"], encoding="utf-8") as handle:
        assert handle.read().splitlines() == list(CLASS_NAMES)
    train, val = _entries(dataset["train_list"]), _entries(dataset["val_list"])
    assert len(train) == dataset["num_train"] == 16 and len(val) == dataset["num_val"] == 8
    assert not {p for p, _ in train} & {p for p, _ in val}
    for split, entries in (("train", train), ("val", val)):
        for path, label in entries:
            parts = path.split("/")
            assert parts[:2] == ["videos", split] and parts[2] == CLASS_NAMES[label]
            assert os.path.isfile(os.path.join(out, path))
    with open(dataset["dataset_json"], encoding="utf-8") as handle:
        manifest = json.load(handle)
    assert manifest["complete"] and manifest["seed"] == 3
    assert manifest["num_videos"] == {"train": 16, "val": 8}
    assert (manifest["num_frames"], manifest["height"], manifest["width"]) == (
        FRAMES, HEIGHT, WIDTH)
    # No stray temporary files are left beside the videos.
    leftovers = [n for _, _, names in os.walk(out) for n in names if "partial" in n]
    assert leftovers == []


def test_videos_decode_to_requested_size_and_show_the_labelled_order(dataset):
    out = dataset["output_dir"]
    for path, label in _entries(dataset["train_list"]):
        frames, codec = _decode(os.path.join(out, path))
        assert codec == "h264"
        assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
        name = CLASS_NAMES[label]
        area, cx, cy = _centroids(frames)
        if name.startswith("move_"):
            slope = _slope(cx if "left" in name else cy)
            expected = 1 if name in ("move_left_to_right", "move_top_to_bottom") else -1
            # At least 2% of the frame per frame: 30% of the frame over 15 frames.
            assert expected * slope > 0.02, (path, slope)
        elif name in ("grow", "shrink"):
            assert (1 if name == "grow" else -1) * _slope(area) > 0, path
        else:
            red_first = _colour_time(frames, 0) < _colour_time(frames, 2)
            assert red_first == (name == "red_then_blue"), path


def test_same_seed_same_clips_other_seed_differs(tmp_path):
    def lists(directory, seed):
        generate_synthetic_dataset(directory, 1, 1, num_frames=4, height=16, width=16, seed=seed)
        names = ("train_list.txt", "val_list.txt", "clips.jsonl")
        return [open(os.path.join(directory, n), "rb").read() for n in names]

    first = lists(tmp_path / "a", 11)
    assert first == lists(tmp_path / "b", 11)
    other = lists(tmp_path / "c", 12)
    assert other[2] != first[2]
    assert sorted(other[0].splitlines()) == sorted(first[0].splitlines())


def test_rerun_skips_existing_videos_and_rejects_other_settings(tmp_path):
    kwargs = dict(num_frames=4, height=16, width=16, seed=5)
    first = generate_synthetic_dataset(tmp_path, 1, 0, **kwargs)
    assert (first["written"], first["skipped"]) == (8, 0)
    os.remove(tmp_path / "videos" / "train" / "grow" / "00000.mp4")
    interrupted = tmp_path / "videos" / "train" / "grow" / ".00000.partial-1.mp4"
    interrupted.write_bytes(b"half a video")
    again = generate_synthetic_dataset(tmp_path, 2, 0, **kwargs)
    assert (again["written"], again["skipped"]) == (9, 7)
    assert not interrupted.exists()
    with pytest.raises(ValueError, match="seed"):
        generate_synthetic_dataset(tmp_path, 1, 0, **{**kwargs, "seed": 6})
