"""A tiny SqueezeTime that discriminates, for tests that compare runtimes or quantisations.

A model whose outputs do not depend on its input passes any comparison (issue: the damped
model of the older LiteRT tests varied its logits by 1e-5 across clips). This one is
built, not trained, in a few seconds:

- clips of `CLASSES` kinds (a travelling colour wave whose direction is the class, with
  random colour and noise), so different clips give different features;
- every BN's statistics from a batch of such clips (activations normalised, as trained);
- each block's last BN scaled by 0.3, so the residual branches perturb the identity path
  mildly: a random deep network with full-strength branches is chaotic (float16 weights
  moved its logits by 3, folding the BNs by 5e-3), a trained one is not;
- a head fitted by ridge regression from pooled features to the classes (logit margins
  of a few units).

`discriminates` is the guard every user asserts: over random clips the argmax takes
several values and the logits vary by O(1).
"""

from __future__ import annotations

import types

import numpy as np
import pytest

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
    """The model's logits (its head's activation bypassed for the call)."""
    import keras

    head = model.get_layer("head")
    activation = head.activation
    head.activation = keras.activations.linear
    try:
        return np.asarray(model(clips, training=False))
    finally:
        head.activation = activation


def discriminates(logits: np.ndarray, min_classes: int = 3, min_std: float = 0.5) -> bool:
    """True when the argmax over clips takes >= `min_classes` values and the logits vary by
    at least `min_std` (mean over classes of the std across clips)."""
    return (len(set(np.argmax(logits, axis=1).tolist())) >= min_classes
            and float(np.std(logits, axis=0).mean()) >= min_std)


def build_discriminating_model(seed: int = 1):
    """The unfolded model described in the module doc."""
    import keras

    from keras_squeezetime import SqueezeTime

    keras.utils.set_random_seed(seed)
    model = SqueezeTime(input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=CLASSES,
                        width_multiplier=0.25, pos_embed_sizes=(16, 8, 4, 2))
    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    clips, labels = class_clips(40, seed=100 + seed)
    model(clips, training=True)  # moving statistics := this batch's statistics
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum
        if layer.name == "bn3":
            layer.gamma.assign(np.asarray(layer.gamma) * BRANCH_SCALE)
    head = model.get_layer("head")
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
    clips, _ = class_clips(20, seed=7)
    assert discriminates(logits_of(model, clips)), "the test model ignores its input"
    return types.SimpleNamespace(
        model=model, folded=fold_batch_norm(model), clips=class_clips, logits=logits_of,
        discriminates=discriminates, FRAMES=FRAMES, SIZE=SIZE, CLASSES=CLASSES, NAMES=NAMES)


@pytest.fixture(scope="session")
def run_dir(tiny, tmp_path_factory):
    """A training run folder of the discriminating model: `model.keras`, the weights alone
    and the `config.json` training writes."""
    import json

    run = tmp_path_factory.mktemp("run")
    tiny.model.save(run / "model.keras")
    tiny.model.save_weights(run / "model.weights.h5")
    (run / "config.json").write_text(json.dumps({
        "frames": FRAMES, "frame_interval": 2, "image_size": SIZE, "short_side": SIZE,
        "num_classes": CLASSES, "width_multiplier": 0.25, "pos_embed_sizes": [16, 8, 4, 2],
        "class_names": NAMES}))
    return run


@pytest.fixture(scope="session")
def video_dataset(tmp_path_factory):
    """Real encoded videos (8 val clips of 12 frames at 64 px) and their `val_list.txt`."""
    from keras_squeezetime.datasets.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("videos")
    generate_synthetic_dataset(root, 0, 1, num_frames=12, height=SIZE, width=SIZE)
    return root
