"""The one way to load a model: presets, official `.pth`, `.keras`, model folders, `.weights.h5`.

`load_model(source)` returns the Keras model with its `ModelConfig` (what `config.json`
says, merged with what the model itself fixes: its input frames and size, its classes).
Prediction, explanation, evaluation, export, the LiteRT harness and training's
initialisation all load through it. `.tflite` files are not Keras models: the LiteRT
runner in `keras_squeezetime.tflite` opens those.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import keras

from keras_squeezetime import presets
from keras_squeezetime.architecture import (
    AVG_POOL,
    LAST_BLOCK,
    LAST_STAGE_FIRST_BLOCK,
    MAX_POOL,
    POS_EMBED_STRIDE,
    STAGE_BLOCKS,
    STEM_CONV,
    stage_block_names,
    width_multiplier_of,
)
from keras_squeezetime.builder import SqueezeTime
from keras_squeezetime.labels import load_labels
from keras_squeezetime.preprocessing import takes_pixels
from keras_squeezetime.model_kinds import (
    MODEL_KINDS,
    WEIGHTS_SUFFIX,
    folder_model_file,
    model_kind,
)
from keras_squeezetime.model_config import (
    ModelConfig,
    read_model_config,
)
from keras_squeezetime.weights.checkpoint import (
    CheckpointConfig,
    inspect_checkpoint,
    load_state_dict,
)
from keras_squeezetime.weights.initialise import initialise_weights, load_keras_file
from keras_squeezetime.weights.official_mapping import apply_official_state_dict
from keras_squeezetime.weights.variables import copy_weights

__all__ = ["MODEL_KINDS", "LoadedModel", "checkpoint_model_config", "config_of_model",
           "copy_weights", "float32_compute", "load_model", "load_weights_into", "model_kind",
           "resized_model"]


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A loaded Keras model and what it carries besides its weights.

    Attributes:
      model: the Keras model.
      config: its configuration: `config.json` merged with what the model fixes.
      kind: one of `MODEL_KINDS` (never "tflite").
      source: the preset name or path it was loaded from.
    """

    model: keras.Model
    config: ModelConfig
    kind: str
    source: str


def load_model(
    source: str | os.PathLike, *, image_size: int | None = None, frames: int | None = None
) -> LoadedModel:
    """Loads a preset, an official `.pth`, a `.keras`, a model folder or a `.weights.h5`.

    A `.keras` model trained with mixed precision is loaded computing in float32
    (`float32_compute`): the apps, the evaluation and the LiteRT export all infer in float32.

    Args:
      source: a preset name; an official `.pth` checkpoint (the model is built from what
        it implies: width, frames, classes, positional sizes); a `.keras` file; a folder
        holding `model.keras` (or `model.weights.h5`) and `config.json`; a `.weights.h5`
        with the `config.json` training wrote beside it.
      image_size: input height and width. Presets and `.pth` files are built at it
        (default: the size their positional embeddings were made for, 224 for the
        official ones); a Keras model of another size is rebuilt with the same weights
        (every weight is size-independent). The apps and tools cut square clips: a
        `.keras` model built for a non-square input (height != width) loads only with
        `image_size`, which rebuilds it square.
      frames: the clip length the caller expects; a model's frame count is fixed, so a
        different one is an error.

    Raises:
      FileNotFoundError: the path does not exist.
      ValueError: an unsupported kind (a `.tflite` included), weights that do not fit,
        a frame count the model cannot take, or a non-square `.keras` model without
        `image_size`; names the source.
      presets.PresetDownloadError: a preset that is not cached and cannot be downloaded.
    """
    source = os.fspath(source)
    kind = model_kind(source)
    if kind == "tflite":
        raise ValueError(
            f"{source} is a LiteRT model, not a Keras model: open it with "
            "keras_squeezetime.tflite (squeezetime-predict and squeezetime-eval-tflite do)."
        )
    if kind in ("preset", "pth"):
        model, config = _load_official(source, kind, image_size)
    else:
        path = source
        if kind == "folder":
            path = folder_model_file(source)
        if path.lower().endswith(WEIGHTS_SUFFIX):
            model, config = _load_weights_file(path, image_size)
        else:
            model, config = _load_keras_file(path, image_size)
    if frames is not None and int(frames) != config.frames:
        raise ValueError(f"{source} takes {config.frames}-frame clips (frames are squeezed into "
                         f"channels); cannot use frames={frames}.")
    return LoadedModel(model, config, kind, source)


def load_weights_into(model: keras.Model, source: str | os.PathLike) -> dict[str, list[str]]:
    """Initialises a built `SqueezeTime` model from a preset, `.pth`, `.keras`, model folder
    or `.weights.h5` (what the builder's `weights=` does).

    A source head of another class count is left fresh with a warning (fine-tuning); any
    other mismatch is a ValueError naming it. Returns `{"loaded": [...], "skipped": [...]}`.
    """
    return initialise_weights(model, source, build_model=SqueezeTime)


def config_of_model(model: keras.Model, base: ModelConfig | None = None) -> ModelConfig:
    """`base` (default: the defaults) with what `model` fixes.

    Every model fixes its input frames and size. A SqueezeTime model, or a model holding
    one (a backbone inside your own model, found by its stem layer, at any depth), also
    fixes its width multiplier (from its last stage's planes, see
    `architecture.width_multiplier_of`), its positional-embedding sizes and whether it
    normalises its input (`include_preprocessing`: a `VideoNormalization` layer). The
    class count comes from a classifier's output: `None` when the output is SqueezeTime's
    features (a backbone, with or without pooling); for a model without SqueezeTime
    layers, any `(batch, classes)` output.

    Raises:
      ValueError: the model does not take a static video input, takes a non-square one
        (the message says how to load it square), holds more than one SqueezeTime model,
        has SqueezeTime's stem without its blocks, or predicts another number of classes
        than `base` names.
    """
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 5 or shape[-1] != 3 or None in shape[1:4]:
        raise ValueError(f"{model.name}: expected a video model with one static input "
                         f"(batch, frames, height, width, 3); its input is "
                         f"{model.input_shape}.")
    if shape[2] != shape[3]:
        raise ValueError(
            f"{model.name}: its input is {shape[2]}x{shape[3]} px (height x width). The builder "
            f"takes any height and width, but load_model, the apps and the tools cut square "
            f"clips (config.json's image_size); pass image_size=N (e.g. "
            f"image_size={min(shape[2:4])}) to rebuild it square with the same weights "
            f"(every SqueezeTime weight is size-independent).")
    config = (base or ModelConfig()).fixed_by_model(frames=int(shape[1]),
                                                    image_size=int(shape[2]))
    backbone = _squeezetime_in(model)
    output = model.output_shape
    is_scores = (not isinstance(output, list) and len(output) == 2
                 and output[-1] is not None)
    num_classes = int(output[-1]) if is_scores else None
    changes: dict[str, Any] = {}
    if backbone is not None:
        if _outputs_features(model):
            num_classes = None
        names = {layer.name for layer in backbone.layers}
        first_blocks = [stage_block_names(stage)[0] for stage in range(1, len(STAGE_BLOCKS) + 1)]
        missing = [name for name in first_blocks if name not in names]
        if missing:
            raise ValueError(f"{model.name}: {backbone.name} has SqueezeTime's stem "
                             f"({STEM_CONV!r}) but not its blocks {missing}: cannot tell its "
                             "width multiplier and positional-embedding sizes.")
        changes["width_multiplier"] = width_multiplier_of(
            int(backbone.get_layer(LAST_STAGE_FIRST_BLOCK).planes))
        changes["pos_embed_sizes"] = tuple(
            int(backbone.get_layer(name).pos_embed_size) for name in first_blocks)
        changes["include_preprocessing"] = takes_pixels(model)
    changes["num_classes"] = num_classes
    if num_classes is None:
        changes["class_names"] = None  # a backbone: whatever the file named, it scores no class
    elif config.class_names is not None and num_classes != len(config.class_names):
        raise ValueError(f"{model.name} predicts {num_classes} classes but its configuration "
                         f"names {len(config.class_names)}.")
    changes = {k: v for k, v in changes.items() if getattr(config, k) != v}
    return config.replace(**changes) if changes else config


def _all_layers(model: keras.Model) -> list:
    """Every layer of `model` and of the models nested in it, depth first."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found += _all_layers(layer)
    return found


def _is_squeezetime(model: keras.Model) -> bool:
    return any(layer.name == STEM_CONV for layer in model.layers)


def _squeezetime_in(model: keras.Model) -> keras.Model | None:
    """The SqueezeTime model `model` is or holds (found by its stem layer), or None.

    Raises:
      ValueError: it holds more than one (which fixes the settings is ambiguous).
    """
    if _is_squeezetime(model):
        return model
    found = [layer for layer in _all_layers(model)
             if isinstance(layer, keras.Model) and _is_squeezetime(layer)]
    if len(found) > 1:
        raise ValueError(f"{model.name} holds {len(found)} SqueezeTime models "
                         f"({', '.join(m.name for m in found)}); load_model and the apps take "
                         "a model holding one.")
    return found[0] if found else None


def _output_layer(model: keras.Model):
    """The layer computing a single-output model's output (None when it cannot be told)."""
    history = getattr(model.outputs[0], "_keras_history", None) if len(model.outputs) == 1 else None
    if history is not None:
        return history[0]
    return model.layers[-1] if model.layers else None


def _outputs_features(model: keras.Model) -> bool:
    """Whether the model's output is SqueezeTime's features (its last block, or its
    pooling) rather than a classifier's scores, looking through nested models."""
    layer = _output_layer(model)
    if isinstance(layer, keras.Model):
        return _outputs_features(layer)
    return layer is not None and layer.name in (LAST_BLOCK, AVG_POOL, MAX_POOL)


def _load_official(source: str, kind: str, image_size: int | None):
    if kind == "preset":
        meta = presets.PRESETS[source]
        state = None
        config = ModelConfig(
            frames=meta["frames"], num_classes=meta["num_classes"],
            class_names=load_labels(meta["labels"]) if meta["labels"] else None,
            width_multiplier=meta["width_multiplier"], pos_embed_sizes=meta["pos_embed_sizes"],
            **meta["protocol"],
        )
    else:
        state = load_state_dict(source)
        config = checkpoint_model_config(inspect_checkpoint(state))
    config = _at_image_size(config, image_size)
    if state is None:
        model = SqueezeTime(input_shape=config.input_shape(), weights=source,
                            **config.builder_kwargs())
    else:
        model = SqueezeTime(input_shape=config.input_shape(), **config.builder_kwargs())
        apply_official_state_dict(model, state, source=source)
    return model, config


def checkpoint_model_config(checkpoint: CheckpointConfig, image_size: int | None = None
                            ) -> ModelConfig:
    """The `ModelConfig` of an official checkpoint, from what `inspect_checkpoint` found.

    A checkpoint with the class count of an official dataset (400, 600, 51) gets that
    dataset's class names and evaluation protocol. The input size is `image_size`, by
    default the one its positional embeddings were made for (224 px for the official ones).
    """
    # An official checkpoint's class count names the dataset it was trained on.
    preset = _OFFICIAL_PRESETS.get(checkpoint.num_classes)
    labels = preset["labels"] if preset else None
    config = ModelConfig(
        frames=checkpoint.frames, num_classes=checkpoint.num_classes,
        class_names=load_labels(labels) if labels else None,
        width_multiplier=checkpoint.width_multiplier,
        pos_embed_sizes=checkpoint.pos_embed_sizes,
        **(preset["protocol"] if preset else {}),
    )
    return _at_image_size(config, image_size)


def _at_image_size(config: ModelConfig, image_size: int | None) -> ModelConfig:
    """`config` at `image_size`, by default the size its embeddings were made for."""
    # The embeddings' own size is the input they were made for (56 -> 224 px).
    return config.fixed_by_model(
        image_size=config.pos_embed_sizes[0] * POS_EMBED_STRIDE).fixed_by_model(
        image_size=image_size)


def _load_keras_file(path: str, image_size: int | None):
    model = float32_compute(load_keras_file(path), path)
    saved = read_model_config(path)
    if image_size is not None:  # itself when already that size (square)
        model = resized_model(model, int(image_size), path)
    try:
        config = config_of_model(model, saved)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    return model, config


def _load_weights_file(path: str, image_size: int | None):
    config = read_model_config(path)
    if config is None:
        raise ValueError(f"{path}: a .weights.h5 needs the config.json training wrote beside it "
                         "(frames, image_size, num_classes, width_multiplier).")
    config = config.fixed_by_model(image_size=image_size)
    model = SqueezeTime(input_shape=config.input_shape(), **config.builder_kwargs())
    initialise_weights(model, path, build_model=SqueezeTime)
    return model, config


def resized_model(model: keras.Model, image_size: int, source: str | None = None
                  ) -> keras.Model:
    """The same functional model and weights at input size `image_size` (itself if equal).

    Every SqueezeTime weight is size-independent (the positional embeddings are resized
    in the graph).

    Raises:
      ValueError: the model cannot be rebuilt at that size; names `source`.
    """
    source = source or model.name
    if tuple(model.input_shape[2:4]) == (image_size, image_size):
        return model
    config = model.get_config()
    inputs = [layer for layer in config.get("layers", []) if layer["class_name"] == "InputLayer"]
    if len(inputs) != 1:
        raise ValueError(f"{source}: cannot change the input size of this model; use "
                         f"image_size={model.input_shape[2]}.")
    batch_shape = list(inputs[0]["config"]["batch_shape"])
    batch_shape[2:4] = [image_size, image_size]
    inputs[0]["config"]["batch_shape"] = batch_shape
    # Saved build shapes would build size-dependent state (the embedding resize) for the
    # old size; without them every layer is built when the graph is traced at the new one.
    _drop_build_configs(config)
    try:
        resized = model.__class__.from_config(config)
    except ValueError as error:
        text = str(error).strip().splitlines()
        raise ValueError(f"{source}: cannot run at image_size={image_size}: "
                         f"{text[0] if text else type(error).__name__}") from error
    copy_weights(model, resized, allow_new_head=False, source=source)
    return resized


def float32_compute(model: keras.Model, source: str | None = None) -> keras.Model:
    """The model computing in float32: itself, or, saved under a mixed precision policy
    (`squeezetime-train --mixed-precision`), rebuilt with float32 policies and its weights
    (float32 variables already).

    Inference wants float32: bfloat16 moved a test model's logits by 0.5, CPUs without
    bfloat16 units emulate it, and LiteRT has no bfloat16 kernels (the export would fail
    on every op). `keras.saving.load_model` keeps the training policy, if you want it.
    """
    config = model.get_config()
    if not _replace_mixed_policies(config):
        return model
    rebuilt = model.__class__.from_config(config)
    copy_weights(model, rebuilt, allow_new_head=False, source=source or model.name)
    return rebuilt


def _replace_mixed_policies(config: Any) -> bool:
    """Replaces, in place, every mixed precision dtype policy in a serialised config by
    float32; True when there was one."""
    found = False
    if isinstance(config, dict):
        if (config.get("class_name") == "DTypePolicy"
                and str(config.get("config", {}).get("name", "")).startswith("mixed_")):
            config["config"]["name"] = "float32"
            return True
        for value in config.values():
            found = _replace_mixed_policies(value) or found
    elif isinstance(config, list):
        for value in config:
            found = _replace_mixed_policies(value) or found
    return found


def _drop_build_configs(config: Any) -> None:
    if isinstance(config, dict):
        config.pop("build_config", None)
        for value in config.values():
            _drop_build_configs(value)
    elif isinstance(config, list):
        for value in config:
            _drop_build_configs(value)


# Class count of each official classifier checkpoint -> the preset it matches (its built-in
# class list and its dataset's evaluation protocol).
_OFFICIAL_PRESETS = {meta["num_classes"]: meta for meta in presets.PRESETS.values()
                     if meta["num_classes"]}
