"""Tiny SqueezeTime models for tests, and a guard that a model's answers depend on its input.

A test that compares two runtimes, two quantisations or a predictor against its model
proves nothing with a model whose output is the same for every clip (a random untrained
SqueezeTime with damped BN statistics is one: its logits move by ~1e-5 from clip to clip,
its features by 4e-5 of their size). `discriminating_model`
gives one whose top class changes from clip to clip with O(1) logit differences;
`assert_input_dependent` checks that, so a test can guard its own model.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_squeezetime import SqueezeTime
from keras_squeezetime.architecture import HEAD, LAST_BLOCK

# The configuration of the tests' tiny models: width 0.25, 8 frames of 64 px.
TINY = dict(input_shape=(8, 64, 64, 3), width_multiplier=0.25, pos_embed_sizes=(16, 8, 4, 2))


def tiny_squeezetime(**overrides) -> keras.Model:
    """A small SqueezeTime (`TINY`, 3 classes, no dropout); keyword arguments override."""
    kwargs = {**TINY, "num_classes": 3, "dropout_rate": 0.0, **overrides}
    return SqueezeTime(**kwargs)


def damp_batch_norm(model: keras.Model, seed: int) -> None:
    """Random BN statistics with damped scales (gamma 0.2-0.5) on every BN of `model`.

    Fresh statistics (mean 0, variance 1) normalise nothing: an untrained 16-block stack
    grows activations to ~1e3, where float32 summation order alone moves outputs by
    1e-4-1e-3 between runtimes. Damped scales keep a random model well conditioned.
    """
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(rng.uniform(0.2, 0.5, layer.gamma.shape))
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))


def varied_clips(count: int, frames: int = 8, size: int = 64, seed: int = 0) -> np.ndarray:
    """Float32 pixel clips `(count, frames, size, size, 3)` in [0, 255] that differ as videos do.

    Each clip has its own colour, brightness, a gradient moving in its own direction and
    speed, a bright square at its own place and some noise; uniform noise clips would all
    look alike to a network that averages over space.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    clips = np.empty((count, frames, size, size, 3), np.float32)
    for n in range(count):
        base = rng.uniform(30, 220, 3)
        angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(-0.2, 0.2)
        amplitude = rng.uniform(10, 70, 3)
        top, left = rng.integers(0, size - size // 4, 2)
        square = rng.uniform(-90, 90, 3)
        for t in range(frames):
            phase = np.cos(angle) * x + np.sin(angle) * y + speed * t
            frame = base + amplitude * np.sin(2 * np.pi * phase)[..., None]
            frame[top:top + size // 4, left:left + size // 4] += square
            clips[n, t] = frame
    clips += rng.normal(0, 4, clips.shape)
    return np.clip(clips, 0, 255).astype(np.float32)


def logits(model: keras.Model, clips: np.ndarray) -> np.ndarray:
    """The model's scores before its head's activation (its output for other models)."""
    names = {layer.name for layer in model.layers}
    head = model.get_layer(HEAD) if HEAD in names else None
    activation = getattr(head, "activation", None)
    if head is not None:
        head.activation = keras.activations.linear
    try:  # a direct call: predict() would cache a function traced with the linear head
        return np.asarray(model(np.asarray(clips, np.float32), training=False), np.float64)
    finally:
        if head is not None:
            head.activation = activation


def calibrate_batch_norm(model: keras.Model, clips: np.ndarray) -> None:
    """Sets every BN's moving statistics to its batch statistics on `clips` (one pass).

    A random model so calibrated normalises its real activations at every layer, as a
    trained one does: its features vary with the input by O(1) relative to their size.
    """
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0  # moving statistics := this batch's
    try:
        model(np.asarray(clips, np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def discriminating_model(
    frames: int = 8, size: int = 64, num_classes: int = 4, seed: int = 0, **overrides
) -> keras.Model:
    """A tiny SqueezeTime (softmax head) whose top class depends strongly on the clip.

    Its BN statistics are calibrated on 48 `varied_clips` (seed `seed + 1000`), so its
    features vary with the clip by O(1) relative to their size (well conditioned: no
    cancellation amplifies float rounding); the head cuts the features' main direction of
    variation into `num_classes` intervals holding equal shares of those clips, with
    logits spread by about 2 across clips. Other clips (other seeds) then land in several
    classes with O(1) logit differences; `assert_input_dependent` checks it.
    """
    keras.utils.set_random_seed(seed)
    model = tiny_squeezetime(input_shape=(frames, size, size, 3), num_classes=num_classes,
                             **overrides)
    reference = varied_clips(48, frames, size, seed=seed + 1000)
    calibrate_batch_norm(model, reference)
    features = keras.Model(model.input, model.get_layer(LAST_BLOCK).output)
    pooled = np.concatenate([np.asarray(features(reference[i:i + 16], training=False))
                             for i in range(0, len(reference), 16)]).mean(axis=(1, 2))
    # The head cuts the features' main direction of variation into `num_classes` intervals
    # holding equal shares of the reference clips: standardised features z, projection
    # x = z . d on the first principal direction, centres q_c at the quantiles (c + 0.5) / C
    # of x, and logit_c = (2 q_c x - q_c^2) / t, linear in the features, largest for the
    # nearest centre.
    mean, std = pooled.mean(axis=0), pooled.std(axis=0) + 1e-6
    standardised = (pooled - mean) / std
    _, _, principal = np.linalg.svd(standardised, full_matrices=False)
    direction = principal[0]
    position = standardised @ direction
    centres = np.quantile(position, (np.arange(num_classes) + 0.5) / num_classes)
    scores = 2 * position[:, None] * centres[None] - centres[None] ** 2
    temperature = scores.std(axis=0).mean() / 2.0  # logits spread by ~2 across clips
    # In terms of the pooled features f: x = (f - mean) / std . d.
    weights = direction / std
    kernel = (2 * weights[:, None] * centres[None] / temperature).astype(np.float32)
    bias = ((-2 * (mean @ weights) * centres - centres ** 2) / temperature).astype(np.float32)
    head = model.get_layer(HEAD).fc
    head.kernel.assign(kernel)
    head.bias.assign(bias)
    return model


def assert_input_dependent(model: keras.Model, clips: np.ndarray, min_classes: int = 3,
                           min_spread: float = 1.0) -> np.ndarray:
    """Asserts the model's answers depend on the clip; returns its logits `(N, classes)`.

    Its top class must take at least `min_classes` values over `clips` (fewer if it has
    fewer classes), and its logits, centred per clip, must spread by `min_spread` or more
    across clips on average over classes (O(1), far above float rounding).
    """
    scores = logits(model, clips)
    classes = len(set(scores.argmax(axis=1).tolist()))
    wanted = min(min_classes, scores.shape[1])
    assert classes >= wanted, (f"the model's top class takes {classes} value(s) over "
                               f"{len(clips)} clips; a test model must discriminate")
    centred = scores - scores.mean(axis=1, keepdims=True)
    spread = float(np.ptp(centred, axis=0).mean())
    assert spread >= min_spread, (f"the model's logits spread by {spread:.2e} across clips; "
                                  f"a test model must vary by O(1)")
    return scores
