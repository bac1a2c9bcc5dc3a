"""What a trained model carries besides its weights, and the one rule for its clip settings.

A model folder holds `model.keras` (or `model.weights.h5`) and `config.json`. This module
is the only code that reads or writes `config.json`: `ModelConfig` holds the model's
configuration (frames, image size, classes and their names, width, positional-embedding
sizes, whether it normalises its input) and its recipe's evaluation protocols (how
validation and test clips are cut).
`squeezetime-train` writes more (its flags and the resolved recipe): those keys are kept
in `ModelConfig.extra` and written back unchanged.

Clip settings follow one precedence rule (`ModelConfig.clip_settings`): defaults (the
Kinetics recipe) < `config.json` < what the loaded model fixes (its input frames, a
`.tflite`'s size; merged by the loader with `ModelConfig.fixed_by_model`) < explicit
arguments. When only the image size is given, the short side keeps the protocol's
short-side-to-crop ratio (256/224 for validation).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

from keras_squeezetime import file_paths
from keras_squeezetime.architecture import DEFAULT_POS_EMBED_SIZES, DEFAULT_WIDTH_MULTIPLIER

CONFIG_FILE = "config.json"
KERAS_MODEL_FILE = "model.keras"
WEIGHTS_FILE = "model.weights.h5"
# A training run's folder of checkpoints (`best.keras`, `last.keras`), beside its config.json.
CHECKPOINTS_FOLDER = "checkpoints"

# The Kinetics recipe (paper / mmaction config): 16 frames every 4th, short side 256, 224 crop
# for training and validation; the test protocol takes 10 clips x 3 crops at short side 224.
DEFAULT_FRAMES = 16
DEFAULT_FRAME_INTERVAL = 4
DEFAULT_IMAGE_SIZE = 224
DEFAULT_SHORT_SIDE = 256
PROTOCOLS = ("val", "test")


@dataclasses.dataclass(frozen=True)
class ClipSettings:
    """How the evaluation clip of a video is made for a model.

    Attributes:
      frames: frames per clip (fixed by the model: time is squeezed into channels).
      frame_interval: step between sampled frames.
      image_size: side of the square centre crop fed to the model.
      short_side: the frames' short side is resized to this before cropping.
    """

    frames: int = DEFAULT_FRAMES
    frame_interval: int = DEFAULT_FRAME_INTERVAL
    image_size: int = DEFAULT_IMAGE_SIZE
    short_side: int = DEFAULT_SHORT_SIDE

    def __post_init__(self):
        for field in dataclasses.fields(self):
            _check_positive_int(field.name, getattr(self, field.name))
        if self.short_side < self.image_size:
            raise ValueError(
                f"short_side ({self.short_side}) must be at least image_size ({self.image_size}): "
                "the crop is taken inside the resized frame."
            )

    @property
    def span(self) -> int:
        """Source frames one clip covers, first to last sampled frame inclusive."""
        return (self.frames - 1) * self.frame_interval + 1


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A model's configuration and its recipe's evaluation protocols (`config.json`).

    Attributes:
      frames: frames per clip (the model's input).
      frame_interval: step between sampled frames.
      image_size: crop side of training and validation clips (the model's input size).
      short_side: short side frames are resized to before the validation crop.
      num_classes: classes of the head; None for a backbone.
      class_names: one name per class, or None.
      width_multiplier: channel width factor.
      pos_embed_sizes: side of each stage's positional embedding.
      include_preprocessing: the model normalises its input (it takes RGB pixels in
        [0, 255]); False for a model built with `include_preprocessing=False`, which takes
        clips normalised by `preprocess_input`. `config.json` files without the key
        (written before it was recorded) mean True, the builder's default.
      val_views: `(clips, crops)` of the validation protocol.
      test_views: `(clips, crops)` of the test protocol.
      test_short_side: short side of the test protocol.
      test_image_size: crop side of the test protocol.
      extra: every other key of `config.json` (e.g. training's flags), kept as read.
    """

    frames: int = DEFAULT_FRAMES
    frame_interval: int = DEFAULT_FRAME_INTERVAL
    image_size: int = DEFAULT_IMAGE_SIZE
    short_side: int = DEFAULT_SHORT_SIDE
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    width_multiplier: float = DEFAULT_WIDTH_MULTIPLIER
    pos_embed_sizes: tuple[int, ...] = DEFAULT_POS_EMBED_SIZES
    include_preprocessing: bool = True
    val_views: tuple[int, int] = (1, 1)
    test_views: tuple[int, int] = (10, 3)
    test_short_side: int = 224
    test_image_size: int = 224
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        for name in ("frames", "frame_interval", "image_size", "short_side", "test_short_side",
                     "test_image_size"):
            set_(name, _check_positive_int(name, getattr(self, name)))
        if self.num_classes is not None:
            set_("num_classes", _check_positive_int("num_classes", self.num_classes))
        if self.class_names is not None:
            names = tuple(str(name) for name in self.class_names)
            if self.num_classes is not None and len(names) != self.num_classes:
                raise ValueError(f"class_names has {len(names)} names but num_classes is "
                                 f"{self.num_classes}.")
            set_("class_names", names)
        if not isinstance(self.width_multiplier, (int, float)) or self.width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be a positive number; got "
                             f"{self.width_multiplier!r}.")
        set_("width_multiplier", float(self.width_multiplier))
        set_("pos_embed_sizes", tuple(_check_positive_int("pos_embed_sizes", v)
                                      for v in _sequence("pos_embed_sizes", self.pos_embed_sizes)))
        if not isinstance(self.include_preprocessing, bool):
            raise ValueError(f"include_preprocessing must be true or false; got "
                             f"{self.include_preprocessing!r}.")
        for name in ("val_views", "test_views"):
            views = tuple(_check_positive_int(name, v)
                          for v in _sequence(name, getattr(self, name)))
            if len(views) != 2:
                raise ValueError(f"{name} must be (clips, crops); got {getattr(self, name)!r}.")
            set_(name, views)
        if self.test_short_side < self.test_image_size:
            raise ValueError(f"test_short_side ({self.test_short_side}) must be at least "
                             f"test_image_size ({self.test_image_size}).")
        set_("extra", dict(self.extra))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """A config from `config.json`'s object: known keys set fields (null keeps the
        default), the others go to `extra`."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names and v is not None}
        extra = {k: v for k, v in data.items() if k not in names}
        if "test_image_size" not in known and "image_size" in known:
            # Files written before test_image_size existed: the test crop is the model's
            # size, and the recipe's test short side was quoted for its 224 px crop.
            known["test_image_size"] = known["image_size"]
            short = known.get("test_short_side", cls.test_short_side)
            known["test_short_side"] = max(int(known["image_size"]), round(
                short * int(known["image_size"]) / DEFAULT_IMAGE_SIZE))
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `extra` first, then every field (lists for tuples)."""
        data = dict(self.extra)
        for field in dataclasses.fields(self):
            if field.name == "extra":
                continue
            value = getattr(self, field.name)
            data[field.name] = list(value) if isinstance(value, tuple) else value
        return json.loads(json.dumps(data))

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with `changes` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def fixed_by_model(self, frames: int | None = None, image_size: int | None = None
                       ) -> "ModelConfig":
        """A copy holding what a loaded model fixes: its input frames and image size.

        A new image size scales both protocols' crops and short sides by the same factor,
        so each keeps its ratios (HMDB51's 286 px test crop of a 224 px model is 143 px for
        the model run at 112).
        """
        changes: dict[str, Any] = {}
        if frames is not None:
            changes["frames"] = int(frames)
        if image_size is not None and int(image_size) != self.image_size:
            factor = int(image_size) / self.image_size
            short_side, size = scaled_crop(self.short_side, self.image_size, factor)
            test_short_side, test_size = scaled_crop(self.test_short_side,
                                                     self.test_image_size, factor)
            changes.update(image_size=size, short_side=short_side, test_image_size=test_size,
                           test_short_side=test_short_side)
        return self.replace(**changes) if changes else self

    def clip_settings(
        self,
        protocol: str = "val",
        frames: int | None = None,
        frame_interval: int | None = None,
        image_size: int | None = None,
        short_side: int | None = None,
    ) -> ClipSettings:
        """The clip settings of `protocol` ("val" or "test"), explicit arguments winning.

        When `image_size` is given without `short_side`, the short side keeps the
        protocol's ratio (e.g. 112 -> 128 for validation's 224/256).

        Raises:
          ValueError: an unknown protocol or settings no clip can have.
        """
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}.")
        if protocol == "val":
            base_size, base_short = self.image_size, self.short_side
        else:
            base_size, base_short = self.test_image_size, self.test_short_side
        size = base_size if image_size is None else image_size
        if short_side is None:
            short_side = base_short if image_size is None else max(
                int(image_size), round(image_size * base_short / base_size))
        return ClipSettings(
            frames=self.frames if frames is None else frames,
            frame_interval=self.frame_interval if frame_interval is None else frame_interval,
            image_size=size,
            short_side=short_side,
        )

    def builder_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `SqueezeTime` for this model (minus its input shape).

        `include_preprocessing=False` is passed when the model was built so (True is the
        builder's default and is left out).
        """
        kwargs: dict[str, Any] = {"width_multiplier": self.width_multiplier,
                                  "pos_embed_sizes": self.pos_embed_sizes}
        if not self.include_preprocessing:
            kwargs["include_preprocessing"] = False
        if self.num_classes is None:
            kwargs["include_top"] = False
        else:
            kwargs["num_classes"] = self.num_classes
        return kwargs

    def input_shape(self) -> tuple[int, int, int, int]:
        """`(frames, image_size, image_size, 3)`."""
        return (self.frames, self.image_size, self.image_size, 3)


def scaled_crop(short_side: int, crop: int, factor: float) -> tuple[int, int]:
    """`(short_side, crop)` of a protocol scaled by `factor` (a model run at another size).

    Both keep their ratio; the crop is at least 1 px and the short side never below the
    crop (so the crop fits).
    """
    crop = max(1, round(crop * factor))
    return max(crop, round(short_side * factor)), crop


def config_path(path: str | os.PathLike) -> str:
    """Where the `config.json` of `path` lies: `path` itself if it names a `.json`, inside
    it if it is a folder, else beside it (a model file), or for a run's checkpoint
    (`<run>/checkpoints/best.keras`) without one beside it, the run's."""
    path = os.fspath(path)
    if path.endswith(".json"):
        return path
    if file_paths.isdir(path):
        return file_paths.join(path, CONFIG_FILE)
    folder = file_paths.parent(path)
    beside = file_paths.join(folder, CONFIG_FILE)
    if (folder.rstrip("/").rsplit("/", 1)[-1] == CHECKPOINTS_FOLDER
            and not file_paths.exists(beside)):
        return file_paths.join(file_paths.parent(folder), CONFIG_FILE)
    return beside


def read_model_config(path: str | os.PathLike) -> ModelConfig | None:
    """The `ModelConfig` of a `config.json`, a model folder, or a model file beside one.

    Local paths and URLs such as `gs://` both work. Returns None when there is no
    `config.json`.

    Raises:
      ValueError: the file is not a JSON object or holds an invalid value; names the file.
    """
    file = config_path(path)
    if not file_paths.exists(file):
        return None
    try:
        text = file_paths.read_text(file)
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read {file}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{file} must hold a JSON object; got {type(data).__name__}.")
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{file}: {error}") from error


def write_model_config(path_or_folder: str | os.PathLike, config: ModelConfig) -> str:
    """Writes `config` as `config.json` into a folder (or to a `.json` path), atomically.

    Returns the path written. Local paths and URLs such as `gs://` both work.
    """
    target = os.fspath(path_or_folder)
    if not target.endswith(".json"):
        target = file_paths.join(target, CONFIG_FILE)
    file_paths.write_text(target, json.dumps(config.to_dict(), indent=2, ensure_ascii=False)
                          + "\n")
    return target


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not _is_integral(value):
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def _is_integral(value: Any) -> bool:
    # NumPy integers (and floats such as 4.0 read from JSON written by other tools).
    try:
        return float(value) == int(value) and not isinstance(value, str)
    except (TypeError, ValueError):
        return False


def _sequence(name: str, value: Any) -> Sequence:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list; got {value!r}.")
    return value
