"""Annotation parsers on files written by the tests."""

from __future__ import annotations

import os

import pytest

from keras_squeezetime.labels import load_labels
from keras_squeezetime.training.annotations import (
    VideoEntry,
    kinetics_filename,
    list_class_folders,
    parse_class_folders,
    parse_hmdb51_splits,
    parse_kinetics_csv,
    parse_video_list,
)


def test_video_list_splits_from_the_right(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text(
        "# comment\n"
        "a/plain.mp4 0\n"
        "\n"
        "dossier été/vidéo  à [tester] (1).mp4 2\n"
        "*weird?[name].webm\t1\n",
        encoding="utf-8",
    )

    entries = parse_video_list(listing, video_root=tmp_path / "root", labels=["x", "y", "z"])

    root = os.fspath(tmp_path / "root")
    assert entries == [
        VideoEntry(os.path.join(root, "a/plain.mp4"), 0, "x", "plain"),
        VideoEntry(
            os.path.join(root, "dossier été/vidéo  à [tester] (1).mp4"), 2, "z",
            "vidéo  à [tester] (1)",
        ),
        VideoEntry(os.path.join(root, "*weird?[name].webm"), 1, "y", "*weird?[name]"),
    ]


def test_video_list_without_labels_leaves_text_empty(tmp_path):
    listing = tmp_path / "l.txt"
    listing.write_text("/abs/v.mp4 7\n", encoding="utf-8")

    entries = parse_video_list(listing, video_root="/ignored")

    assert entries == [VideoEntry("/abs/v.mp4", 7, "", "v")]


@pytest.mark.parametrize(
    "line, message",
    [
        ("lonely.mp4", "expected 'path label'"),
        ("v.mp4 cat", "not a class index"),
        ("v.mp4 3", "outside 0..2"),
    ],
)
def test_video_list_errors_name_file_and_line(tmp_path, line, message):
    listing = tmp_path / "bad.txt"
    listing.write_text(f"ok.mp4 0\n{line}\n", encoding="utf-8")

    with pytest.raises(ValueError, match=f"bad.txt:2: .*{message}"):
        parse_video_list(listing, labels=["a", "b", "c"])


def test_kinetics_filename():
    assert kinetics_filename("--07WQ2iBlw", 1, 11) == "--07WQ2iBlw_000001_000011.mp4"


def test_kinetics_csv_labels_names_and_layouts(tmp_path):
    k400 = load_labels("kinetics400")
    csv_file = tmp_path / "train.csv"
    csv_file.write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,--07WQ2iBlw,1,11,train,0\n"
        '"passing American football (in game)",-4kc_1eT1Tk,20,30,train,0\n'
        "air drumming,zzz,120,130,train,0\n",
        encoding="utf-8",
    )
    root = tmp_path / "videos"
    (root / "air_drumming").mkdir(parents=True)
    (root / "air_drumming" / "zzz_000120_000130.mp4").write_bytes(b"")  # class-folder layout

    entries = parse_kinetics_csv(csv_file, video_root=root)

    assert [e.label_index for e in entries] == [
        k400.index("abseiling"),
        k400.index("passing American football (in game)"),
        k400.index("air drumming"),
    ]
    assert entries[0] == VideoEntry(
        os.path.join(root, "--07WQ2iBlw_000001_000011.mp4"), 0, "abseiling",
        "--07WQ2iBlw_000001_000011",
    )
    assert entries[1].video_id == "-4kc_1eT1Tk_000020_000030"
    assert entries[2].path == os.path.join(root, "air_drumming", "zzz_000120_000130.mp4")


def test_kinetics_test_csv_without_labels(tmp_path):
    csv_file = tmp_path / "test.csv"
    csv_file.write_text("youtube_id,time_start,time_end,split\nabc,0,10,test\n", encoding="utf-8")

    (entry,) = parse_kinetics_csv(csv_file, video_root="/k")

    assert entry == VideoEntry("/k/abc_000000_000010.mp4", -1, "", "abc_000000_000010")


def test_kinetics_unknown_label_and_missing_column(tmp_path):
    bad_label = tmp_path / "a.csv"
    header = "label,youtube_id,time_start,time_end,split\n"
    bad_label.write_text(header + "flying,x,0,10,train\n", encoding="utf-8")
    no_column = tmp_path / "b.csv"
    no_column.write_text("label,youtube_id,split\nabseiling,x,train\n", encoding="utf-8")

    with pytest.raises(ValueError, match=r"a.csv:2: label 'flying' is not in the label list"):
        parse_kinetics_csv(bad_label)
    with pytest.raises(ValueError, match=r"missing columns \['time_end', 'time_start'\]"):
        parse_kinetics_csv(no_column)


def test_kinetics_custom_label_list(tmp_path):
    csv_file = tmp_path / "mini.csv"
    csv_file.write_text(
        "label,youtube_id,time_start,time_end,split\nb,x,3,13,train\n", encoding="utf-8"
    )

    assert parse_kinetics_csv(csv_file, labels=["a", "b"])[0].label_index == 1


def test_hmdb51_split_files(tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "brush_hair_test_split1.txt").write_text(
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"
        "Brushing_Hair_[1]_brush_hair_h_nm_np1_le_goo_0.avi 2 \n"
        "unused_brush_hair_u_nm_np1_ba_goo_1.avi 0 \n",
        encoding="utf-8",
    )
    for split, mark in ((1, 1), (2, 2)):
        (splits / f"sword_exercise_test_split{split}.txt").write_text(
            f"#20_Rhythm_sword_exercise_f_0.avi {mark}\n", encoding="utf-8"
        )
    hmdb = load_labels("hmdb51")

    train = parse_hmdb51_splits(splits, split=1, subset="train", video_root="/hmdb")
    test = parse_hmdb51_splits(splits, split=1, subset="test", video_root="/hmdb")
    test2 = parse_hmdb51_splits(splits, split=2, subset="test", video_root="/hmdb")

    assert train == [
        VideoEntry(
            "/hmdb/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
            hmdb.index("brush_hair"), "brush_hair", "April_09_brush_hair_u_nm_np1_ba_goo_0",
        ),
        VideoEntry(
            "/hmdb/sword_exercise/#20_Rhythm_sword_exercise_f_0.avi",
            hmdb.index("sword_exercise"), "sword_exercise", "#20_Rhythm_sword_exercise_f_0",
        ),
    ]
    assert [e.video_id for e in test] == ["Brushing_Hair_[1]_brush_hair_h_nm_np1_le_goo_0"]
    assert [e.label_text for e in test2] == ["sword_exercise"]


def test_hmdb51_errors(tmp_path):
    (tmp_path / "flying_test_split1.txt").write_text("a.avi 1\n", encoding="utf-8")

    with pytest.raises(ValueError, match="'flying' is not in the label list"):
        parse_hmdb51_splits(tmp_path, split=1)
    with pytest.raises(ValueError, match="No '<class>_test_split3.txt' files"):
        parse_hmdb51_splits(tmp_path, split=3)
    with pytest.raises(ValueError, match="subset"):
        parse_hmdb51_splits(tmp_path, subset="val")


def test_class_folders(tmp_path):
    for relative in ["walk/b.mp4", "walk/a clip é.AVI", "walk/notes.txt", "run/x [1].webm"]:
        (tmp_path / relative).parent.mkdir(exist_ok=True)
        (tmp_path / relative).write_bytes(b"")

    by_folder = parse_class_folders(tmp_path)
    by_list = parse_class_folders(tmp_path, labels=["jump", "run", "walk"])

    assert by_folder == [
        VideoEntry(os.path.join(tmp_path, "run", "x [1].webm"), 0, "run", "x [1]"),
        VideoEntry(os.path.join(tmp_path, "walk", "a clip é.AVI"), 1, "walk", "a clip é"),
        VideoEntry(os.path.join(tmp_path, "walk", "b.mp4"), 1, "walk", "b"),
    ]
    assert [e.label_index for e in by_list] == [1, 2, 2]
    with pytest.raises(ValueError, match="Folder 'walk'"):
        parse_class_folders(tmp_path, labels=["run"])


def test_class_folders_list_broken_links_and_warn_of_empty_classes(tmp_path, caplog):
    """A broken link is listed (prepare fails to decode it and reports it), not dropped; an
    empty class folder keeps its index, with a warning naming it."""
    (tmp_path / "jump").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (tmp_path / "run" / "nested.mp4").mkdir()  # a folder, not a video
    with caplog.at_level("WARNING"):
        entries = parse_class_folders(tmp_path)
    assert entries == [VideoEntry(os.path.join(tmp_path, "run", "gone.mp4"), 1, "run", "gone")]
    warnings = [r.getMessage() for r in caplog.records if "holds no video" in r.getMessage()]
    assert len(warnings) == 1 and "jump" in warnings[0] and "(class 0)" in warnings[0]


def test_class_folders_take_transport_streams_and_report_what_they_skip(tmp_path, caplog):
    """Nothing vanishes unseen: .ts & co. are videos; other files are listed in `skipped` and
    warned about once (notes only listed); hidden files (.DS_Store, macOS's ._x) are ignored."""
    files = ["walk/full.ts", "walk/trunc.TS", "walk/cam.m2ts", "walk/old.wmv", "walk/a.ogv",
             "walk/notes.txt", "walk/b.mp4.part", "walk/._full.ts", "walk/.DS_Store",
             "run/ok.mp4", "run/take 2/x.mp4", "stray.mp4", "README", ".hidden.mp4",
             ".ipynb_checkpoints/x.mp4"]  # a hidden folder takes no class index
    for relative in files:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")

    with caplog.at_level("WARNING"):
        found = list_class_folders(tmp_path)

    walk, run = os.path.join(tmp_path, "walk"), os.path.join(tmp_path, "run")
    assert [(e.path, e.label_index) for e in found.entries] == [
        (os.path.join(run, "ok.mp4"), 0),
        (os.path.join(walk, "a.ogv"), 1), (os.path.join(walk, "cam.m2ts"), 1),
        (os.path.join(walk, "full.ts"), 1), (os.path.join(walk, "old.wmv"), 1),
        (os.path.join(walk, "trunc.TS"), 1),
    ]
    assert found.skipped == sorted([
        os.path.join(tmp_path, "README"), os.path.join(run, "take 2") + os.sep,
        os.path.join(tmp_path, "stray.mp4"), os.path.join(walk, "b.mp4.part"),
        os.path.join(walk, "notes.txt"),
    ])
    (warning,) = [r.getMessage() for r in caplog.records if "Skipping" in r.getMessage()]
    assert warning.startswith(f"Skipping 4 paths under {os.fspath(tmp_path)!r}")
    assert "1 .part" in warning and "1 (folder)" in warning and "stray.mp4" in warning
    assert "notes.txt" not in warning and ".DS_Store" not in warning
    assert parse_class_folders(tmp_path) == found.entries


def test_class_folders_warn_once_with_a_few_examples(tmp_path, caplog):
    (tmp_path / "walk").mkdir()
    (tmp_path / "walk" / "v.mp4").write_bytes(b"")
    for i in range(300):
        (tmp_path / "walk" / f"frame_{i:04d}.jpg").write_bytes(b"")

    with caplog.at_level("WARNING"):
        found = list_class_folders(tmp_path)

    assert len(found.entries) == 1 and len(found.skipped) == 300
    (warning,) = [r.getMessage() for r in caplog.records if "Skipping" in r.getMessage()]
    assert "Skipping 300 paths" in warning and "(300 .jpg)" in warning
    assert "frame_0004.jpg" in warning and "frame_0005.jpg" not in warning
    assert "and 295 more" in warning
