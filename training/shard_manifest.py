"""The manifest `prepare_dataset` writes beside its shards: its name and how training reads it.

The manifest is JSON with, among others, `shards` (`name`, `records`) and `classes`
(`index`, `name`, `videos`); `training/prepare.py` writes it, `training/train_data.py`
reads record counts and class names from it.
"""

from __future__ import annotations

import json

MANIFEST_NAME = "manifest.json"


def read_shard_index(files: list[str]) -> tuple[dict[str, int], dict[int, str]] | None:
    """`({file: records}, {class index: name})` from the manifests beside `files`.

    Each folder's manifest is read once. None unless a manifest lists every file (a
    folder without one, or a file it does not name).
    """
    import tensorflow as tf  # lazily: prepare's spawned video workers import this module

    shards_by_folder: dict[str, dict[str, int]] = {}
    counts: dict[str, int] = {}
    texts: dict[int, str] = {}
    for path in files:
        folder, name = path.rsplit("/", 1) if "/" in path else (".", path)
        if folder not in shards_by_folder:
            manifest_path = f"{folder}/{MANIFEST_NAME}"
            if not tf.io.gfile.exists(manifest_path):
                return None
            with tf.io.gfile.GFile(manifest_path) as handle:
                manifest = json.load(handle)
            shards_by_folder[folder] = {
                shard["name"]: shard["records"] for shard in manifest.get("shards", [])}
            texts.update({int(c["index"]): c["name"] for c in manifest.get("classes", [])
                          if c.get("name")})
        if name not in shards_by_folder[folder]:
            return None
        counts[path] = shards_by_folder[folder][name]
    return counts, texts
