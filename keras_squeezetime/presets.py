"""The official SqueezeTime checkpoints (GitHub release `ckpts` of xinghaochen/SqueezeTime).

`list_presets()` (also `keras_squeezetime.list_presets()`) names them and `PRESETS`
describes each; `resolve_preset` downloads a checkpoint once into the Keras cache and
returns its local path; `weights.checkpoint.load_state_dict` reads it without PyTorch.
"""

from __future__ import annotations

import os
from typing import Any

from keras_squeezetime.architecture import DEFAULT_POS_EMBED_SIZES, DEFAULT_WIDTH_MULTIPLIER
from keras_squeezetime.model_config import DEFAULT_FRAMES

RELEASE_URL = "https://github.com/xinghaochen/SqueezeTime/releases/download/ckpts"
# A base URL (e.g. a mirror, or file:///dir for offline use) replacing RELEASE_URL.
URL_PREFIX_ENV = "KERAS_SQUEEZETIME_WEIGHTS_URL_PREFIX"
CACHE_SUBDIR = "squeezetime"

# What every official checkpoint shares: the paper's 16-frame model of width 1 with the
# official positional-embedding sizes (the defaults of `ModelConfig` and the builder).
_OFFICIAL_MODEL: dict[str, Any] = {
    "frames": DEFAULT_FRAMES,
    "width_multiplier": DEFAULT_WIDTH_MULTIPLIER,
    "pos_embed_sizes": DEFAULT_POS_EMBED_SIZES,
}


def _preset(file: str, description: str, num_classes: int | None, labels: str | None,
            top1: float | None, top5: float | None, protocol: dict[str, Any]) -> dict[str, Any]:
    return {"file": file, "url": f"{RELEASE_URL}/{file}", "description": description,
            "num_classes": num_classes, "labels": labels, **_OFFICIAL_MODEL, "top1": top1,
            "top5": top5, "protocol": protocol, "file_hash": None}


# file_hash is None for every preset: the files could not be downloaded where this
# table was written, so their SHA-256 is unknown and downloads are not verified.
# Accuracies are the paper's (Tables 7-9); the file names carry the exact top-1.
# "protocol": where the official configs' evaluation differs from `ModelConfig`'s
# defaults (the Kinetics protocol: validation 1x1 at short side 256, test 10 clips x 3
# crops of 224 at short side 224), as `ModelConfig` fields (`short_side` is validation's):
# what `squeezetime-evaluate` uses by default for the model, and what the dataset's
# training recipe writes into a run's config.json.
PRESETS: dict[str, dict[str, Any]] = {
    "kinetics400": _preset(
        "SqueezeTime_K400_71.64.pth",
        "Kinetics-400, 16x224x224, initialised from the ImageNet-1K backbone.",
        num_classes=400, labels="kinetics400", top1=71.6, top5=89.3, protocol={}),
    "kinetics600": _preset(
        "SqueezeTime_K600_76.06.pth", "Kinetics-600, 16x224x224.",
        num_classes=600, labels="kinetics600", top1=76.0, top5=92.5, protocol={}),
    "hmdb51": _preset(
        "SqueezeTime_HMDB51_65.56.pth",
        "HMDB51 (split 1), 16x224x224, fine-tuned from the Kinetics-400 model.",
        num_classes=51, labels="hmdb51", top1=65.6, top5=90.3,
        protocol={"val_views": (2, 3), "short_side": 224, "test_views": (2, 3),
                  "test_short_side": 286, "test_image_size": 286}),
    "imagenet": _preset(
        "SqueezeTime_in1k_pretrain.pth",
        "ImageNet-1K pretrained backbone (no video head), the official initialisation "
        "for Kinetics training; the official loader skips keys whose shapes differ.",
        num_classes=None, labels=None, top1=None, top5=None, protocol={}),
}


def list_presets(classifiers_only: bool = False) -> list[str]:
    """The preset names, sorted: what `SqueezeTime(weights=...)`, `load_model` and the
    tools' `--model` take. `classifiers_only` leaves out the backbone (`"imagenet"`),
    which cannot predict classes. `PRESETS[name]` describes each."""
    return sorted(name for name, meta in PRESETS.items()
                  if meta["num_classes"] or not classifiers_only)


class PresetDownloadError(OSError):
    """A preset's checkpoint is not cached and cannot be downloaded (e.g. an offline machine)."""


def preset_url(name: str, url_override: str | None = None) -> str:
    """The URL `resolve_preset` downloads `name` from.

    Precedence: `url_override` (the file's full URL), then the base URL in the
    `KERAS_SQUEEZETIME_WEIGHTS_URL_PREFIX` environment variable followed by the
    release file name, then the official GitHub release.
    """
    preset = _get(name)
    if url_override:
        return url_override
    prefix = os.environ.get(URL_PREFIX_ENV)
    if prefix:
        return f"{prefix.rstrip('/')}/{preset['file']}"
    return preset["url"]


def resolve_preset(
    name: str, cache_dir: str | os.PathLike | None = None, url_override: str | None = None
) -> str:
    """Returns the local path of a preset's official `.pth`, downloading it once.

    Files go to `<cache_dir>/squeezetime/<release file name>` through
    `keras.utils.get_file` (`cache_dir` defaults to `$KERAS_HOME` or `~/.keras`);
    a cached file is reused without contacting the server.

    Args:
      name: one of `PRESETS`.
      cache_dir: the cache root.
      url_override: full URL to fetch the file from instead (see `preset_url`);
        `file://` URLs work, for offline copies.

    Raises:
      ValueError: `name` is not a preset.
      PresetDownloadError: the file is not cached and the download fails; the message
        names the preset, the URL and `KERAS_SQUEEZETIME_WEIGHTS_URL_PREFIX`.
    """
    import keras  # Deferred: reading PRESETS should not need the backend.

    preset = _get(name)
    if cache_dir is not None:
        cache_dir = os.fspath(cache_dir)
        # get_file silently falls back to /tmp/.keras when cache_dir does not exist yet.
        os.makedirs(cache_dir, exist_ok=True)
    url = preset_url(name, url_override)
    try:
        return keras.utils.get_file(
            fname=preset["file"],
            origin=url,
            file_hash=preset["file_hash"],
            cache_subdir=CACHE_SUBDIR,
            cache_dir=cache_dir,
        )
    except Exception as error:  # get_file raises a bare Exception ("URL fetch failure ...").
        cause = str(error).strip().splitlines()
        raise PresetDownloadError(
            f"Cannot download preset {name!r} from {url} "
            f"({type(error).__name__}: {cause[0] if cause else 'no message'}). On a machine "
            f"without network access, put {preset['file']} in a folder and set "
            f"{URL_PREFIX_ENV}=file:///path/to/that/folder (or a mirror's base URL), or pass "
            "a local .pth path instead of the preset name."
        ) from error


def _get(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}.")
    return PRESETS[name]
