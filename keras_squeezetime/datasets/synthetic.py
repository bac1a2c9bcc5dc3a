"""A synthetic video dataset whose classes are only visible through temporal order.

Classes come in time-reversed pairs (`TIME_REVERSED_PAIRS`): the second class of a pair is
rendered exactly as the first one with its frames played backwards (same parameter sampler,
same noise). So every single frame, and the bag of all frames of a clip, has the same
distribution under both classes of a pair; only the order of the frames tells them apart.
A model fed frames shuffled within each clip can tell which pair a clip belongs to
(horizontal motion, vertical motion, scaling, flashes) but is at chance within each pair.

Design for learnability and for mmaction-style frame sampling (16 frames every 2 or 4):
- motion and scaling are linear over the whole clip, so any sampled window shows them;
- the two flashes lie in the central half of the clip and each lasts >= 14% of it, so
  sampling every 4th frame of a 64-frame clip hits each at least twice. A window of
  W = frames x interval consecutive frames sees both flashes when centred (as at test time)
  if W >= T/2, and wherever it starts (random training crops) if T <= 4 (W - 1) / 3:
  T = 64 suits 16x4 sampling, T = 40 suits 16x2 or 8x4;
- objects are saturated colours on a low-saturation textured background, at least 5% of
  the frame size in radius, so they survive downscaling to 112 px and 4:2:0 H.264;
- background level, tint and texture, noise, object shape, colour, size, position, speed
  and timing are all randomised per clip so that nothing static carries the class.

Clip parameters are pure functions of (seed, split, class, index) via `numpy.random.SeedSequence`
and are expressed as fractions of the frame size and clip length, so the same seed gives the
same parameter list for any worker count, and a clip can be re-rendered at any resolution.
"""

from __future__ import annotations

import colorsys
import json
import logging
import math
import os
import time
from typing import Any

import numpy as np

from keras_squeezetime import file_paths
from keras_squeezetime.video.writer import write_video
from keras_squeezetime.worker_pool import Progress, TaskFailure, run_tasks

logger = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = (
    "move_left_to_right",
    "move_right_to_left",
    "move_top_to_bottom",
    "move_bottom_to_top",
    "grow",
    "shrink",
    "red_then_blue",
    "blue_then_red",
)
# (forward, reversed) class indices: the reversed class is the forward one played backwards.
TIME_REVERSED_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7))
# What each pair shows, in the order of TIME_REVERSED_PAIRS.
_PAIR_KINDS = ("horizontal", "vertical", "scale", "flashes")
SHAPES = ("disk", "square", "triangle", "cross")
_TEXTURES = ("flat", "gradient", "blobs", "stripes")

SPLITS = ("train", "val")
FORMAT_VERSION = 1
CODEC = "h264"
# Spawn-key namespaces of the dataset seed: one per split, one for shuffling the lists.
_SPLIT_KEYS = {"train": 0, "val": 1}
_LIST_ORDER_KEY = 2


def pair_of(class_index: int) -> tuple[int, int]:
    """Returns the `(forward, reversed)` pair of class indices that `class_index` belongs to."""
    _check_class_index(class_index)
    return TIME_REVERSED_PAIRS[class_index // 2]


def sample_clip_params(class_index: int, rng: np.random.Generator) -> dict[str, Any]:
    """Draws the JSON-serialisable parameters of one clip of `class_index`.

    Both classes of a time-reversed pair consume `rng` identically and differ only in
    `"reverse"`, so equal generator states give clips that are exact time reversals.
    Positions are fractions of the frame width/height, radii fractions of min(height, width),
    times fractions of the clip length.
    """
    _check_class_index(class_index)
    pair, reverse = divmod(class_index, 2)
    kind = _PAIR_KINDS[pair]
    return {
        "class_index": int(class_index),
        "kind": kind,
        "reverse": bool(reverse),
        "background": _sample_background(rng),
        "objects": _OBJECT_SAMPLERS[kind](rng),
        "noise_sigma": float(rng.uniform(0.0, 6.0)),
        "noise_seed": int(rng.integers(2**63)),
    }


def render_params(
    params: dict[str, Any], num_frames: int, height: int, width: int
) -> np.ndarray:
    """Renders clip parameters from `sample_clip_params` to uint8 RGB frames `(T, H, W, 3)`."""
    _check_size(num_frames, height, width)
    background = _render_background(params["background"], height, width)
    # Pixel centres, so that shapes are symmetric about the frame centre.
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    unit = float(min(height, width))
    frames = np.empty((num_frames, height, width, 3), np.float32)
    for t in range(num_frames):
        progress = t / (num_frames - 1)
        frame = background.copy()
        for obj in params["objects"]:
            first, stop = _visible_frames(obj["visible"], num_frames)
            if not first <= t < stop:
                continue
            start, end = obj["start"], obj["end"]
            alpha = _shape_alpha(
                obj["shape"],
                xs,
                ys,
                cx=_lerp(start["x"], end["x"], progress) * width,
                cy=_lerp(start["y"], end["y"], progress) * height,
                radius=_lerp(start["radius"], end["radius"], progress) * unit,
                angle=obj["angle"],
            )[..., None]
            frame += alpha * (np.asarray(obj["colour"], np.float32) - frame)
        frames[t] = frame
    if params["noise_sigma"] > 0:
        noise_rng = np.random.default_rng(params["noise_seed"])
        frames += noise_rng.normal(0.0, params["noise_sigma"], frames.shape).astype(np.float32)
    clip = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    if params["reverse"]:
        clip = np.ascontiguousarray(clip[::-1])
    return clip


def render_clip(
    class_index: int,
    rng: np.random.Generator,
    num_frames: int = 64,
    height: int = 128,
    width: int = 128,
) -> np.ndarray:
    """Samples and renders one clip of `class_index`: uint8 RGB frames `(T, H, W, 3)`."""
    return render_params(sample_clip_params(class_index, rng), num_frames, height, width)


def clip_rng(seed: int, split: str, class_index: int, index: int) -> np.random.Generator:
    """The generator of clip `index` of `class_index` in `split`; independent of dataset size."""
    if split not in _SPLIT_KEYS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    sequence = np.random.SeedSequence(seed, spawn_key=(_SPLIT_KEYS[split], class_index, index))
    return np.random.default_rng(sequence)


def generate_synthetic_dataset(
    output_dir: str | os.PathLike,
    num_train_per_class: int,
    num_val_per_class: int,
    num_frames: int = 64,
    height: int = 128,
    width: int = 128,
    fps: float = 25,
    seed: int = 0,
    workers: int = 1,
) -> dict[str, Any]:
    """Writes the dataset as H.264 videos with mmaction-style lists and returns a summary.

    Layout under `output_dir`: `videos/<split>/<class>/<index>.mp4`; `train_list.txt` and
    `val_list.txt` with `relative/path label_index` per line (shuffled with the seed);
    `classes.txt`, one class name per line; `clips.jsonl`, the parameters of every clip;
    `dataset.json`, the generation settings and counts (`"complete": true` once done).

    Rerunning with the same settings skips videos already written (each is encoded to a
    temporary file and renamed); more clips per class extend the dataset, since a clip's
    parameters depend only on (seed, split, class, index). Different settings in an existing
    `output_dir` raise `ValueError`.

    Args:
      output_dir: directory to write into (created if missing).
      num_train_per_class: training clips per class.
      num_val_per_class: validation clips per class.
      num_frames: frames per video; 64 covers 16 frames sampled every 4.
      height: frame height in pixels.
      width: frame width in pixels.
      fps: frame rate stored in the videos.
      seed: dataset seed.
      workers: encoding processes; 1 renders in this process.
    """
    if num_train_per_class < 0 or num_val_per_class < 0:
        raise ValueError("Clip counts per class must be >= 0.")
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}.")
    output_dir = os.path.abspath(os.fspath(output_dir))
    settings = {
        "generator": __name__,
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "num_frames": int(num_frames),
        "height": int(height),
        "width": int(width),
        "fps": float(fps),
        "codec": CODEC,
        "classes": list(CLASS_NAMES),
        "time_reversed_pairs": [list(pair) for pair in TIME_REVERSED_PAIRS],
    }
    _check_size(num_frames, height, width)
    manifest_path = os.path.join(output_dir, "dataset.json")
    _check_existing_settings(manifest_path, settings)
    os.makedirs(output_dir, exist_ok=True)
    counts = {"train": int(num_train_per_class), "val": int(num_val_per_class)}
    _write_json(manifest_path, {**settings, "per_class": counts, "complete": False})

    _remove_partials(os.path.join(output_dir, "videos"))
    clips = _plan_clips(seed, counts)
    todo = [c for c in clips if not os.path.exists(os.path.join(output_dir, c["path"]))]
    _log_start(len(clips), len(todo))
    started = time.monotonic()
    _encode_all(output_dir, todo, num_frames, height, width, fps, workers)
    seconds = time.monotonic() - started

    order_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_LIST_ORDER_KEY,)))
    lists = {}
    for split in SPLITS:
        entries = [c for c in clips if c["split"] == split]
        entries = [entries[i] for i in order_rng.permutation(len(entries))]
        lists[split] = os.path.join(output_dir, f"{split}_list.txt")
        file_paths.write_text(lists[split],
                              "".join(f"{c['path']} {c['label']}\n" for c in entries))
    classes_path = os.path.join(output_dir, "classes.txt")
    file_paths.write_text(classes_path, "".join(f"{name}\n" for name in CLASS_NAMES))
    file_paths.write_text(
        os.path.join(output_dir, "clips.jsonl"),
        "".join(json.dumps(c, sort_keys=True) + "\n" for c in clips),
    )
    totals = {split: counts[split] * len(CLASS_NAMES) for split in SPLITS}
    _write_json(
        manifest_path, {**settings, "per_class": counts, "num_videos": totals, "complete": True}
    )
    return {
        "output_dir": output_dir,
        "train_list": lists["train"],
        "val_list": lists["val"],
        "classes_file": classes_path,
        "dataset_json": manifest_path,
        "num_classes": len(CLASS_NAMES),
        "num_train": totals["train"],
        "num_val": totals["val"],
        "written": len(todo),
        "skipped": len(clips) - len(todo),
        "seconds": round(seconds, 2),
    }


# --- parameter samplers -------------------------------------------------------------------


def _sample_background(rng: np.random.Generator) -> dict[str, Any]:
    # Low saturation (tint <= 12 per channel, grey texture) keeps the saturated objects salient.
    return {
        "level": float(rng.uniform(70.0, 185.0)),
        "tint": [float(v) for v in rng.uniform(-12.0, 12.0, 3)],
        "texture": _TEXTURES[int(rng.integers(len(_TEXTURES)))],
        "amplitude": float(rng.uniform(10.0, 35.0)),
        "angle": float(rng.uniform(0.0, 2 * math.pi)),
        "frequency": float(rng.uniform(1.5, 5.0)),
        "grid": int(rng.integers(3, 7)),
        "texture_seed": int(rng.integers(2**63)),
    }


def _sample_look(rng: np.random.Generator, hue: float | None = None) -> dict[str, Any]:
    if hue is None:
        hue = rng.uniform(0.0, 1.0)
    rgb = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0))
    return {
        "shape": SHAPES[int(rng.integers(len(SHAPES)))],
        "colour": [round(255.0 * c, 3) for c in rgb],
        "angle": float(rng.uniform(0.0, 2 * math.pi)),
    }


def _sample_linear_motion(rng: np.random.Generator, axis: str) -> list[dict[str, Any]]:
    # Travel >= 40% of the frame so that even half the clip moves the object visibly.
    along = rng.uniform(0.15, 0.3), rng.uniform(0.7, 0.85)
    across = rng.uniform(0.25, 0.75)
    across = across, float(np.clip(across + rng.uniform(-0.08, 0.08), 0.2, 0.8))
    radius = float(rng.uniform(0.08, 0.13))
    other = "y" if axis == "x" else "x"
    start = {axis: float(along[0]), other: float(across[0]), "radius": radius}
    end = {axis: float(along[1]), other: float(across[1]), "radius": radius}
    return [{**_sample_look(rng), "start": start, "end": end, "visible": [0.0, 1.0]}]


def _sample_horizontal(rng: np.random.Generator) -> list[dict[str, Any]]:
    return _sample_linear_motion(rng, "x")


def _sample_vertical(rng: np.random.Generator) -> list[dict[str, Any]]:
    return _sample_linear_motion(rng, "y")


def _sample_scale(rng: np.random.Generator) -> list[dict[str, Any]]:
    x, y = (float(v) for v in rng.uniform(0.35, 0.65, 2))
    start = {"x": x, "y": y, "radius": float(rng.uniform(0.05, 0.08))}
    end = {"x": x, "y": y, "radius": float(rng.uniform(0.22, 0.3))}
    return [{**_sample_look(rng), "start": start, "end": end, "visible": [0.0, 1.0]}]


def _sample_flashes(rng: np.random.Generator) -> list[dict[str, Any]]:
    # A red flash, then a blue one, both inside the central half of the clip.
    first, second = rng.uniform(0.14, 0.2, 2)
    gap = rng.uniform(0.0, 0.06)
    begin = 0.25 + rng.uniform(0.0, 0.5 - (first + gap + second))
    windows = [(begin, begin + first), (begin + first + gap, begin + first + gap + second)]
    objects = []
    for hue, (t0, t1) in zip((rng.uniform(-0.03, 0.03), rng.uniform(0.6, 0.68)), windows):
        where = {
            "x": float(rng.uniform(0.25, 0.75)),
            "y": float(rng.uniform(0.25, 0.75)),
            "radius": float(rng.uniform(0.12, 0.18)),
        }
        objects.append(
            {**_sample_look(rng, hue), "start": where, "end": where, "visible": [t0, t1]}
        )
    return objects


_OBJECT_SAMPLERS = {
    "horizontal": _sample_horizontal,
    "vertical": _sample_vertical,
    "scale": _sample_scale,
    "flashes": _sample_flashes,
}


# --- rendering ------------------------------------------------------------------------------


def _lerp(a: float, b: float, progress: float) -> float:
    return a + (b - a) * progress


def _visible_frames(window: list[float], num_frames: int) -> tuple[int, int]:
    first = int(round(window[0] * num_frames))
    return first, max(first + 1, int(round(window[1] * num_frames)))


def _render_background(spec: dict[str, Any], height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    # Coordinate along the texture direction, in units of the frame width.
    along = (xs * math.cos(spec["angle"]) + ys * math.sin(spec["angle"])) / width
    kind = spec["texture"]
    if kind == "flat":
        texture = np.zeros((height, width), np.float32)
    elif kind == "gradient":
        texture = 2.0 * (along - along.min()) / max(float(np.ptp(along)), 1e-6) - 1.0
    elif kind == "stripes":
        texture = np.sin(2 * math.pi * spec["frequency"] * along)
    else:  # blobs: a coarse random grid, bilinearly upsampled.
        grid = np.random.default_rng(spec["texture_seed"]).uniform(
            -1.0, 1.0, (spec["grid"], spec["grid"])
        )
        texture = _upsample_bilinear(grid, height, width)
    grey = spec["level"] + spec["amplitude"] * texture.astype(np.float32)
    return grey[..., None] + np.asarray(spec["tint"], np.float32)


def _upsample_bilinear(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.linspace(0, grid.shape[0] - 1, height)
    cols = np.linspace(0, grid.shape[1] - 1, width)
    by_rows = np.stack([np.interp(rows, np.arange(grid.shape[0]), c) for c in grid.T], axis=1)
    return np.stack([np.interp(cols, np.arange(grid.shape[1]), r) for r in by_rows], axis=0)


def _shape_alpha(
    shape: str, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, radius: float, angle: float
) -> np.ndarray:
    """Coverage in [0, 1] of a shape, anti-aliased over one pixel via a signed distance."""
    cos, sin = math.cos(angle), math.sin(angle)
    u = (xs - cx) * cos + (ys - cy) * sin
    v = (ys - cy) * cos - (xs - cx) * sin
    if shape == "disk":
        distance = np.hypot(u, v) - radius
    elif shape == "square":
        # Half side 0.85 r: about the area of the disk of radius r.
        distance = np.maximum(np.abs(u), np.abs(v)) - 0.85 * radius
    elif shape == "triangle":
        # Equilateral, circumradius 1.3 r: distance to the farthest of its three edges.
        edges = [u * math.cos(a) + v * math.sin(a)
                 for a in (0.5 * math.pi, 7 / 6 * math.pi, 11 / 6 * math.pi)]
        distance = np.maximum.reduce(edges) - 0.65 * radius
    elif shape == "cross":
        half_width, half_length = 0.4 * radius, 1.1 * radius
        distance = np.minimum(
            np.maximum(np.abs(u) - half_length, np.abs(v) - half_width),
            np.maximum(np.abs(u) - half_width, np.abs(v) - half_length),
        )
    else:
        raise ValueError(f"Unknown shape {shape!r}; expected one of {SHAPES}.")
    return np.clip(0.5 - distance, 0.0, 1.0)


# --- writing --------------------------------------------------------------------------------


def _plan_clips(seed: int, counts: dict[str, int]) -> list[dict[str, Any]]:
    clips = []
    for split in SPLITS:
        for label, name in enumerate(CLASS_NAMES):
            for index in range(counts[split]):
                params = sample_clip_params(label, clip_rng(seed, split, label, index))
                clips.append(
                    {
                        "path": f"videos/{split}/{name}/{index:05d}.mp4",
                        "split": split,
                        "label": label,
                        "params": params,
                    }
                )
    return clips


def _remove_partials(videos_dir: str) -> None:
    # Left by an interrupted run; their names carry the writer's pid, so nothing reuses them.
    for directory, _, names in os.walk(videos_dir):
        for name in names:
            if name.startswith(".") and ".partial-" in name:
                os.remove(os.path.join(directory, name))


def _encode_clip(job: tuple[str, dict[str, Any], int, int, int, float]) -> None:
    path, params, num_frames, height, width, fps = job
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    # Same extension so that PyAV picks the mp4 container; renamed only once complete.
    partial = os.path.join(directory, f".{name[:-4]}.partial-{os.getpid()}.mp4")
    write_video(partial, render_params(params, num_frames, height, width), fps=fps, codec=CODEC)
    os.replace(partial, path)


def _encode_all(
    output_dir: str,
    clips: list[dict[str, Any]],
    num_frames: int,
    height: int,
    width: int,
    fps: float,
    workers: int,
) -> None:
    progress = Progress(len(clips), "Synthetic videos", unit="clips", verb="written",
                        every_seconds=5.0, log=logger.info)
    jobs = [
        (os.path.join(output_dir, c["path"]), c["params"], num_frames, height, width, fps)
        for c in clips
    ]
    results = run_tasks(_encode_clip, jobs, workers=min(workers, max(1, len(jobs))))
    for job, result in zip(jobs, results):
        if isinstance(result, TaskFailure):  # rendering our own parameters failed: a bug
            raise RuntimeError(f"Could not write {job[0]}: {result.reason}")
        progress.step()


def _log_start(total: int, todo: int) -> None:
    if todo < total:
        logger.info("Synthetic videos: %d of %d already exist; writing %d.", total - todo,
                    total, todo)
    else:
        logger.info("Synthetic videos: writing %d clips.", total)


def _check_existing_settings(manifest_path: str, settings: dict[str, Any]) -> None:
    if not os.path.exists(manifest_path):
        return
    with open(manifest_path, encoding="utf-8") as handle:
        existing = json.load(handle)
    changed = sorted(k for k in settings if existing.get(k) != settings[k])
    if changed:
        raise ValueError(
            f"{os.path.dirname(manifest_path)} holds a synthetic dataset generated with other "
            f"settings ({', '.join(changed)}); use a new output directory."
        )


def _write_json(path: str, value: dict[str, Any]) -> None:
    file_paths.write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def _check_size(num_frames: int, height: int, width: int) -> None:
    if num_frames < 2 or height < 16 or width < 16:
        raise ValueError(
            f"Need at least 2 frames of 16x16 pixels; got {num_frames} frames of {height}x{width}."
        )


def _check_class_index(class_index: int) -> None:
    if not 0 <= class_index < len(CLASS_NAMES):
        raise ValueError(f"class_index must be in [0, {len(CLASS_NAMES)}); got {class_index}.")
