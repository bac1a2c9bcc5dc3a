"""`shard_manifest`: record counts and class names from manifests beside the shards."""

from __future__ import annotations

import json

from keras_squeezetime.training.shard_manifest import MANIFEST_NAME, read_shard_index


def _manifest(folder, counts: dict[str, int], classes: list[tuple[int, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).write_text(json.dumps({
        "shards": [{"name": name, "records": records} for name, records in counts.items()],
        "classes": [{"index": index, "name": name, "videos": 1} for index, name in classes],
    }))


def test_shards_of_two_folders_with_their_class_names(tmp_path):
    _manifest(tmp_path / "train", {"a.tfrecord": 3, "b.tfrecord": 2}, [(0, "walk"), (1, "run")])
    _manifest(tmp_path / "extra", {"c.tfrecord": 4}, [(2, "jump"), (3, "")])
    files = [str(tmp_path / "train" / "b.tfrecord"), str(tmp_path / "extra" / "c.tfrecord")]
    assert read_shard_index(files) == ({files[0]: 2, files[1]: 4},
                                       {0: "walk", 1: "run", 2: "jump"})


def test_none_unless_every_file_is_listed(tmp_path, monkeypatch):
    _manifest(tmp_path / "train", {"a.tfrecord": 3}, [(0, "walk")])
    listed = str(tmp_path / "train" / "a.tfrecord")
    assert read_shard_index([listed, str(tmp_path / "train" / "z.tfrecord")]) is None
    assert read_shard_index([listed, str(tmp_path / "elsewhere" / "a.tfrecord")]) is None
    monkeypatch.chdir(tmp_path / "train")  # a bare file name is looked up in the working folder
    assert read_shard_index(["a.tfrecord"]) == ({"a.tfrecord": 3}, {0: "walk"})
