"""The official SqueezeTime checkpoints (GitHub release `ckpts` of xinghaochen/SqueezeTime).

`resolve_preset` downloads a checkpoint once into the Keras cache and returns its
local path; `weights.checkpoint.load_state_dict` reads it without PyTorch.
"""

from __future__ import annotations

import os
from typing import Any

RELEASE_URL = "https://github.com/xinghaochen/SqueezeTime/releases/download/ckpts"
# A base URL (e.g. a mirror, or file:///dir for offline use) replacing RELEASE_URL.
URL_PREFIX_ENV = "KERAS_SQUEEZETIME_WEIGHTS_URL_PREFIX"
CACHE_SUBDIR = "squeezetime"

# file_hash is None for every preset: the files could not be downloaded where this
# table was written, so their SHA-256 is unknown and downloads are not verified.
# Accuracies are the paper's (Tables 7-9); the file names carry the exact top-1.
# "protocol": the official configs' validation and test views (clips, crops), the
# validation short side where it is not the default 256 (HMDB51 validates at 224) and the
# test short side and crop: what `squeezetime-evaluate` uses by default for the model, and
# what the dataset's training recipe writes into a run's config.json.
PRESETS: dict[str, dict[str, Any]] = {
    "kinetics400": {
        "file": "SqueezeTime_K400_71.64.pth",
        "url": f"{RELEASE_URL}/SqueezeTime_K400_71.64.pth",
        "description": "Kinetics-400, 16x224x224, initialised from the ImageNet-1K backbone.",
        "num_classes": 400,
        "labels": "kinetics400",
        "frames": 16,
        "width_multiplier": 1.0,
        "pos_embed_sizes": (56, 28, 14, 7),
        "top1": 71.6,
        "top5": 89.3,
        "protocol": {"val_views": (1, 1), "test_views": (10, 3), "test_short_side": 224,
                     "test_image_size": 224},
        "file_hash": None,
    },
    "kinetics600": {
        "file": "SqueezeTime_K600_76.06.pth",
        "url": f"{RELEASE_URL}/SqueezeTime_K600_76.06.pth",
        "description": "Kinetics-600, 16x224x224.",
        "num_classes": 600,
        "labels": "kinetics600",
        "frames": 16,
        "width_multiplier": 1.0,
        "pos_embed_sizes": (56, 28, 14, 7),
        "top1": 76.0,
        "top5": 92.5,
        "protocol": {"val_views": (1, 1), "test_views": (10, 3), "test_short_side": 224,
                     "test_image_size": 224},
        "file_hash": None,
    },
    "hmdb51": {
        "file": "SqueezeTime_HMDB51_65.56.pth",
        "url": f"{RELEASE_URL}/SqueezeTime_HMDB51_65.56.pth",
        "description": "HMDB51 (split 1), 16x224x224, fine-tuned from the Kinetics-400 model.",
        "num_classes": 51,
        "labels": "hmdb51",
        "frames": 16,
        "width_multiplier": 1.0,
        "pos_embed_sizes": (56, 28, 14, 7),
        "top1": 65.6,
        "top5": 90.3,
        "protocol": {"val_views": (2, 3), "short_side": 224, "test_views": (2, 3),
                     "test_short_side": 286, "test_image_size": 286},
        "file_hash": None,
    },
    "imagenet": {
        "file": "SqueezeTime_in1k_pretrain.pth",
        "url": f"{RELEASE_URL}/SqueezeTime_in1k_pretrain.pth",
        "description": (
            "ImageNet-1K pretrained backbone (no video head), the official initialisation "
            "for Kinetics training; the official loader skips keys whose shapes differ."
        ),
        "num_classes": None,
        "labels": None,
        "frames": 16,
        "width_multiplier": 1.0,
        "pos_embed_sizes": (56, 28, 14, 7),
        "top1": None,
        "top5": None,
        "protocol": {},
        "file_hash": None,
    },
}


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
