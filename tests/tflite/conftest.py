"""A tiny SqueezeTime that discriminates and quantises like a trained one, for LiteRT tests.

Every test here that compares runtimes, layouts or quantisations uses it. It is
`tests.helpers`' idea (BN statistics calibrated on clips that differ, a head that splits
the features, `assert_input_dependent` as the guard) made robust to quantisation:
`tests.helpers.discriminating_model` is chaotic under rounding (float16 weights move its
logits by 0.2, dynamic-range int8 agrees with it on half the clips), as random deep
networks with full-strength residual branches are, and a trained one is not. So:

- clips of `CLASSES` kinds (a travelling colour wave whose direction is the class, with
  random colour and noise), so different clips give different features;
- every BN's statistics from a batch of such clips (`calibrate_batch_norm`);
- each block's last BN scaled by 0.3, so the residual branches perturb the identity path
  mildly (float16 weights then move the logits by 0.02, int8 agrees on 100 %);
- a head fitted by ridge regression from pooled features to the classes (logit margins
  of a few units).
"""

from __future__ import annotations

import pathlib
import types

import numpy as np
import pytest

from tests import helpers

FRAMES, SIZE, CLASSES = 4, 64, 5
NAMES = [f"class_{i}" for i in range(CLASSES)]
BRANCH_SCALE = 0.3


def class_clips(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(clips (n, T, S, S, 3) float32 integer pixels, labels (n,))`, classes in turn."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % CLASSES
    yy, xx = np.meshgrid(np.linspace(-1, 1, SIZE), np.linspace(-1, 1, SIZE), indexing="ij")
    clips = np.empty((n, FRAMES, SIZE, SIZE, 3), np.float32)
    for i, label in enumerate(labels):
        angle = 2 * np.pi * label / CLASSES + rng.normal(0, 0.2)
        colour = rng.uniform(60, 200, 3)
        for t in range(FRAMES):
            phase = 2.5 * (xx * np.cos(angle) + yy * np.sin(angle)) - 1.2 * t
            clips[i, t] = colour + 60 * np.sin(phase)[..., None]
    clips += rng.normal(0, 10, clips.shape)
    return np.round(np.clip(clips, 0, 255)).astype(np.float32), labels


def logits_of(model, clips: np.ndarray) -> np.ndarray:
    """The model's logits, float32 (its head's activation bypassed for the call)."""
    return helpers.logits(model, clips).astype(np.float32)


def discriminates(logits: np.ndarray, min_classes: int = 3, min_spread: float = 1.0) -> bool:
    """`tests.helpers.assert_input_dependent`'s criterion on logits already computed: the
    top class takes >= `min_classes` values, per-clip-centred logits spread by O(1)."""
    centred = logits - logits.mean(axis=1, keepdims=True)
    return (len(set(np.argmax(logits, axis=1).tolist())) >= min_classes
            and float(np.ptp(centred, axis=0).mean()) >= min_spread)


def build_discriminating_model(seed: int = 1):
    """The unfolded model described in the module doc."""
    import keras

    from keras_squeezetime.architecture import HEAD

    keras.utils.set_random_seed(seed)
    model = helpers.tiny_squeezetime(input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=CLASSES)
    clips, labels = class_clips(40, seed=100 + seed)
    helpers.calibrate_batch_norm(model, clips)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization) and layer.name == "bn3":
            layer.gamma.assign(np.asarray(layer.gamma) * BRANCH_SCALE)
    head = model.get_layer(HEAD)
    features = np.asarray(keras.Model(model.inputs, head.input)(clips)).mean(axis=(1, 2))
    mean = features.mean(axis=0)
    centred = features - mean
    targets = (np.eye(CLASSES)[labels] - 1.0 / CLASSES) * 6.0
    ridge = 1e-2 * np.trace(centred.T @ centred) / centred.shape[1]
    kernel = np.linalg.solve(centred.T @ centred + ridge * np.eye(centred.shape[1]),
                             centred.T @ targets)
    head.fc.kernel.assign(kernel.astype(np.float32))
    head.fc.bias.assign((-(mean @ kernel)).astype(np.float32))
    return model


@pytest.fixture(scope="session")
def tiny():
    """The discriminating model and its helpers, as attributes.

    `model` (unfolded), `folded` (BNs and normalisation folded, as `squeezetime-export`
    exports it), `clips(n, seed)` -> (clips, labels), `logits(model, clips)`,
    `discriminates(logits)`, and FRAMES, SIZE, CLASSES, NAMES.
    """
    from keras_squeezetime import fold_batch_norm

    model = build_discriminating_model()
    helpers.assert_input_dependent(model, class_clips(20, seed=7)[0])
    return types.SimpleNamespace(
        model=model, folded=fold_batch_norm(model), clips=class_clips, logits=logits_of,
        discriminates=discriminates, FRAMES=FRAMES, SIZE=SIZE, CLASSES=CLASSES, NAMES=NAMES)


@pytest.fixture(scope="session")
def run_dir(tiny, tmp_path_factory):
    """A training run folder of the discriminating model: `model.keras`, the weights alone
    and the `config.json` training writes."""
    from keras_squeezetime.model_config import ModelConfig, write_model_config

    run = tmp_path_factory.mktemp("run")
    tiny.model.save(run / "model.keras")
    tiny.model.save_weights(run / "model.weights.h5")
    write_model_config(run, ModelConfig(
        frames=FRAMES, frame_interval=2, image_size=SIZE, short_side=SIZE, num_classes=CLASSES,
        class_names=tuple(NAMES), width_multiplier=0.25, pos_embed_sizes=(16, 8, 4, 2)))
    return run


@pytest.fixture(scope="session")
def class_videos(tmp_path_factory):
    """`class_videos(n, seed)`: the list of `n` real H.264 videos of the discriminating
    model's classes (`class_clips(n, seed)`, classes in turn), each clip frame shown twice:
    the model's clips, 4 frames every 2. Its decisions on them have margins of a few
    logits, so a runtime that agrees with it on them is a property of the runtime, not of
    near-ties (the synthetic dataset's videos are not of its classes: margins down to 0.05)."""
    from keras_squeezetime.video.writer import write_video

    made: dict[tuple[int, int], pathlib.Path] = {}

    def make(n: int, seed: int) -> pathlib.Path:
        if (n, seed) not in made:
            folder = tmp_path_factory.mktemp(f"class_videos_{n}_{seed}")
            clips, labels = class_clips(n, seed)
            for i, clip in enumerate(clips):
                write_video(folder / f"{i}.mp4", np.repeat(clip.astype(np.uint8), 2, axis=0))
            (folder / "val_list.txt").write_text(
                "".join(f"{i}.mp4 {label}\n" for i, label in enumerate(labels)))
            made[n, seed] = folder / "val_list.txt"
        return made[n, seed]

    return make


@pytest.fixture(scope="session")
def video_dataset(tmp_path_factory):
    """Real encoded videos (8 val clips of 12 frames at 64 px) and their `val_list.txt`."""
    from keras_squeezetime.datasets.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("videos")
    generate_synthetic_dataset(root, 0, 1, num_frames=12, height=SIZE, width=SIZE)
    return root


@pytest.fixture(scope="session")
def prepared_records(video_dataset, tmp_path_factory):
    """`prepared_records(names)`: the glob pattern of `video_dataset`'s val videos written
    by squeezetime-prepare's `prepare_dataset` (shards and the manifest.json naming their
    classes), class i named `names[i]`; videos of classes past `len(names)` left out."""
    import dataclasses

    from keras_squeezetime.training.annotations import parse_video_list
    from keras_squeezetime.training.prepare import prepare_dataset

    made: dict[tuple[str, ...], str] = {}

    def prepare(names) -> str:
        names = tuple(names)
        if names not in made:
            entries = [dataclasses.replace(entry, label_text=names[entry.label_index])
                       for entry in parse_video_list(video_dataset / "val_list.txt",
                                                     video_dataset)
                       if entry.label_index < len(names)]
            folder = tmp_path_factory.mktemp("prepared")
            prepare_dataset(entries, str(folder), short_side=None, prefix="val")
            made[names] = str(folder / "val-*.tfrecord")
        return made[names]

    return prepare
