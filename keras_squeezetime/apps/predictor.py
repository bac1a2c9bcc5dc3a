"""One `Predictor` over every model kind: a preset name, an official `.pth`, a `.keras` file,
a trained model's folder, a `.weights.h5` with its `config.json`, and a `.tflite` export.

A predictor runs clips and knows how clips must be made for it (`ClipSettings`) and the
class names. Keras kinds are loaded by `model_loading.load_model`; a `.tflite` is run by
the LiteRT runner of `keras_squeezetime.tflite`. Settings follow `ModelConfig`'s one rule:
defaults < `config.json` (and, for a `.tflite`, the settings embedded at export) < what
the model fixes < explicit arguments. Class names come from the model's configuration
(`config.json`, a preset, an official checkpoint's class count), a `<name>.labels.txt`
beside a `.tflite`, or the `labels` argument; a list whose length differs from the
model's classes is an error, never a silent mislabelling. Clips go in as RGB pixels in
[0, 255] whatever the model: one built with `include_preprocessing=False`
(`ModelConfig.include_preprocessing`) gets them through `preprocess_input` first.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import numpy as np

from keras_squeezetime import presets
from keras_squeezetime.labels import load_labels, resolve_class_names  # noqa: F401 (re-exported)
from keras_squeezetime.model_config import ClipSettings, ModelConfig  # noqa: F401 (re-exported)
from keras_squeezetime.model_loading import (
    LoadedModel,
    config_of_model,
    load_model,
    model_kind,
    resized_model,
)
from keras_squeezetime.output_activation import (
    INDEPENDENT, PROBABILITIES, score_kind, to_probabilities)
from keras_squeezetime.preprocessing import preprocess_input

# Clips per Keras model call: bounds memory at full resolution.
BATCH_SIZE = 8


@dataclasses.dataclass
class Predictor:
    """A loaded model of any kind behind one call: clips in, class probabilities out.

    Attributes:
      kind: the source's kind (`model_loading.MODEL_KINDS`); "keras" for an in-memory model.
      source: the path or preset name it was loaded from.
      settings: how clips must be made for it.
      num_classes: classes of its output.
      class_names: one name per class, or None when nothing names them.
      keras_model: the Keras model (None for `.tflite`); gradients-based explanation needs it.
        It takes what it was built for: normalised clips (`model_inputs`) when
        `config.include_preprocessing` is False.
      config: the model's configuration the settings were derived from.
      scores: what the model returns: "probabilities" (a distribution per clip),
        "logits" (turned into one with a softmax) or "independent" (a sigmoid head's
        probability per class).
    """

    kind: str
    source: str
    settings: ClipSettings
    num_classes: int
    class_names: list[str] | None
    keras_model: Any = None
    _run: Callable[[np.ndarray], np.ndarray] | None = dataclasses.field(default=None, repr=False)
    config: ModelConfig = dataclasses.field(default_factory=ModelConfig, repr=False)
    scores: str = PROBABILITIES

    def label(self, index: int) -> str:
        """The name of class `index`, or `"class <index>"` when the model has no names."""
        return self.class_names[index] if self.class_names else f"class {index}"

    def predict_clips(self, clips: np.ndarray) -> np.ndarray:
        """Class probabilities `(N, num_classes)` of float pixel clips `(N, T, S, S, 3)` in
        [0, 255].

        A model that outputs logits (no softmax) is normalised with a softmax, so the
        result is a distribution per clip; probabilities (a softmax head, a `.tflite`
        file's `probabilities` output) and a sigmoid head's independent probabilities are
        returned as the model gives them.
        """
        clips = np.asarray(clips, dtype=np.float32)
        expected = (self.settings.frames, self.settings.image_size, self.settings.image_size, 3)
        if clips.ndim != 5 or clips.shape[1:] != expected:
            raise ValueError(f"Expected clips of shape (N, {', '.join(map(str, expected))}); "
                             f"got {clips.shape}.")
        outputs = np.asarray(self._run(clips), dtype=np.float64)
        if outputs.shape != (len(clips), self.num_classes):
            raise ValueError(f"{self.source} returned shape {outputs.shape}; expected "
                             f"({len(clips)}, {self.num_classes}).")
        return to_probabilities(outputs, self.scores).astype(np.float32)

    def model_inputs(self, clips: np.ndarray) -> np.ndarray:
        """Pixel clips `(N, T, S, S, 3)` in [0, 255] as `keras_model` takes them: normalised
        by `preprocess_input` for a model built with `include_preprocessing=False`, else
        as they are (float32)."""
        clips = np.asarray(clips, dtype=np.float32)
        return clips if self.config.include_preprocessing else preprocess_input(clips)

    @property
    def independent_scores(self) -> bool:
        """Whether the scores are a sigmoid head's, one independent probability per class."""
        return self.scores == INDEPENDENT


def load_predictor(
    model: "str | os.PathLike | Predictor | Any",
    labels: str | os.PathLike | Sequence[str] | None = None,
    frames: int | None = None,
    frame_interval: int | None = None,
    image_size: int | None = None,
    short_side: int | None = None,
) -> Predictor:
    """Loads `model` (path, preset name, in-memory `keras.Model` or `Predictor`) as a `Predictor`.

    Args:
      model: a `.keras` file, a model folder, a `.weights.h5` with `config.json` beside,
        a `.tflite` file, an official `.pth` checkpoint, a preset name, a `keras.Model`,
        what `load_model` returns, or a `Predictor` (returned as is when no other
        argument is given; otherwise it keeps the settings not given).
      labels: class names (built-in list name, text file or sequence); overrides the
        names found with the model.
      frames: frames per clip. A model's frame count is fixed, so this must match it.
      frame_interval: step between sampled frames.
      image_size: crop side. Fixed by a `.tflite`; a Keras model is rebuilt at the new
        size, a preset or `.pth` model is built at it.
      short_side: short side before cropping; defaults to the configuration's ratio
        (`image_size * 256 / 224` for the Kinetics recipe).

    Raises:
      FileNotFoundError: the model or label file does not exist.
      ValueError: unsupported model kind, a setting the model cannot take, or class
        names whose count differs from the model's classes.
      presets.PresetDownloadError: a preset that cannot be downloaded.
    """
    overrides = {"frames": frames, "frame_interval": frame_interval, "image_size": image_size,
                 "short_side": short_side}
    if isinstance(model, Predictor):
        if labels is None and all(v is None for v in overrides.values()):
            return model
        if model.keras_model is None:
            raise ValueError("Re-configuring a .tflite Predictor: load it again from its path.")
        names = model.class_names if labels is None else labels
        # Settings not given stay the predictor's (a new size alone rescales the short side).
        kept = dataclasses.asdict(model.settings)
        if image_size is not None and short_side is None:
            kept.pop("short_side")
        overrides = {k: kept.get(k) if v is None else v for k, v in overrides.items()}
        return _from_keras_model(model.keras_model, model.source, model.kind, model.config,
                                 names, overrides)
    if isinstance(model, LoadedModel):  # what `load_model` returns: its config goes along
        return _from_keras_model(model.model, model.source, model.kind, model.config, labels,
                                 overrides)
    if not isinstance(model, (str, os.PathLike)):
        return _from_keras_model(model, getattr(model, "name", "model"), "keras", None, labels,
                                 overrides)
    source = os.fspath(model)
    kind = model_kind(source)
    if kind == "preset" and presets.PRESETS[source]["num_classes"] is None:
        raise ValueError(f"Preset {source!r} is a backbone without a classifier; it cannot "
                         f"predict. Use one of {presets.list_presets(classifiers_only=True)}.")
    if labels is not None and not isinstance(labels, (list, tuple)):
        load_labels(labels)  # a missing label file is reported before the (slow) model load
    if kind == "tflite":
        return _from_tflite(source, labels, overrides)
    loaded = load_model(source, image_size=image_size, frames=frames)
    if loaded.config.num_classes is None:
        raise ValueError(f"{source} has no classification head (a backbone); it cannot "
                         "predict classes.")
    return _wrap_keras(loaded.model, source, loaded.kind, loaded.config, labels, overrides)


def _from_keras_model(keras_model, source: str, kind: str, config: ModelConfig | None, labels,
                      overrides: dict) -> Predictor:
    """An in-memory Keras model, rebuilt at `image_size` when that differs from its input."""
    if overrides.get("image_size") is not None:
        keras_model = resized_model(keras_model, int(overrides["image_size"]), source)
    config = config_of_model(keras_model, config)
    if overrides.get("frames") is not None and int(overrides["frames"]) != config.frames:
        raise ValueError(f"{source} takes {config.frames}-frame clips (frames are squeezed into "
                         f"channels); cannot use frames={overrides['frames']}.")
    return _wrap_keras(keras_model, source, kind, config, labels, overrides)


def _wrap_keras(keras_model, source: str, kind: str, config: ModelConfig, labels,
                overrides: dict) -> Predictor:
    try:
        settings = config.clip_settings("val", **overrides)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    if len(keras_model.output_shape) != 2:
        raise ValueError(f"{source}: expected class scores (batch, classes); its output is "
                         f"{tuple(keras_model.output_shape)} (a model without its head?).")
    try:
        scores = score_kind(keras_model)
    except ValueError as error:  # it names the model: once is enough when that is the source
        said = str(error)
        raise ValueError(said if said.startswith(f"{source}: ") else f"{source}: {said}"
                         ) from error
    if config.num_classes is None:  # e.g. a backbone wrapped in a model of its own
        raise ValueError(f"{source} has no classification head (a backbone: its output "
                         f"{tuple(keras_model.output_shape)} is features); it cannot predict "
                         "classes.")
    num_classes = config.num_classes
    names = resolve_class_names(labels, num_classes, config.class_names, source)

    def run(clips: np.ndarray) -> np.ndarray:
        # Calling the model directly (training=False) avoids predict()'s per-call tracing.
        return np.concatenate([
            np.asarray(keras_model(predictor.model_inputs(clips[i:i + BATCH_SIZE]),
                                   training=False))
            for i in range(0, len(clips), BATCH_SIZE)])

    predictor = Predictor(kind, source, settings, num_classes, names, keras_model, run, config,
                          scores=scores)
    return predictor


def _from_tflite(path: str, labels, overrides: dict) -> Predictor:
    """Runs a `.tflite` through the LiteRT runner of `keras_squeezetime.tflite`, with the
    settings and class names its `model_config()` gives (the harness reads them there too)."""
    # The one place the application floor reaches into the LiteRT package.
    from keras_squeezetime.tflite import interpreter as litert
    from keras_squeezetime.tflite.metadata import labels_path_for
    from keras_squeezetime.tflite.signature import OUTPUT_NAME

    try:
        runner = litert.LiteRTModel(path)
        config = runner.model_config()
        settings = config.clip_settings("val", **overrides)
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"Cannot use LiteRT model {path!r}: {error}") from error
    frames, size = runner.clip_shape[0], runner.clip_shape[1]
    if (settings.frames, settings.image_size) != (frames, size):
        raise ValueError(f"{path} takes {frames} frames of {size}x{size} (fixed by the export); "
                         f"cannot use frames={settings.frames}, image_size={settings.image_size}.")
    fallback = config.class_names
    if fallback is None and os.path.isfile(labels_path_for(path)):
        fallback = labels_path_for(path)
    names = resolve_class_names(labels, runner.num_classes, fallback, path)

    def run(clips: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(runner.run(clip)[OUTPUT_NAME]).reshape(-1) for clip in clips])

    # The file's `probabilities` output is the head's activation of its logits (softmax
    # for a logits head): used as it is, int8 rounding included (its rows may sum to 0.996).
    scores = INDEPENDENT if runner.independent_scores else PROBABILITIES
    return Predictor("tflite", path, settings, runner.num_classes, names, None, run, config,
                     scores=scores)
