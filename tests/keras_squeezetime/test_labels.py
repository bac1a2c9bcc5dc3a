"""Shipped label lists, decode_predictions and preprocess_input."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime import decode_predictions, load_labels, preprocess_input
from keras_squeezetime.labels import rank_classes, top_classes


@pytest.mark.parametrize("name,count", [("kinetics400", 400), ("kinetics600", 600), ("hmdb51", 51)])
def test_shipped_lists_equal_the_reference_lists(parity_dir, name, count):
    reference = (parity_dir.parent / "labels" / f"{name}.txt").read_text("utf-8").splitlines()
    names = load_labels(name)
    assert len(names) == count and names == [line.strip() for line in reference if line.strip()]


def test_custom_label_sources(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("walk\nrun\n\n", encoding="utf-8")
    assert load_labels(str(path)) == ["walk", "run"]
    assert load_labels(["a", "b"]) == ["a", "b"]
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_labels(str(tmp_path / "nope.txt"))
    path.write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repeats"):
        load_labels(str(path))
    with pytest.raises(IsADirectoryError, match=f"{tmp_path.name}.*is a folder"):
        load_labels(str(tmp_path))
    path.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"classes.txt' is not UTF-8 text"):
        load_labels(str(path))


def test_a_blank_line_inside_a_label_file_is_an_error_not_a_shift(tmp_path):
    """Line i names class i: dropping an interior blank line would renumber every class
    after it (b would become class 1 instead of 2)."""
    path = tmp_path / "classes.txt"
    for text, line in (("a\n\nb\n", 2), ("\na\nb\n", 1), ("a\n  \nb\n\n", 2)):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=rf"classes.txt'.*line {line} is blank.*line i "
                                             r"names class i"):
            load_labels(path)
    path.write_text("a\r\nb\r\n\r\n \n", encoding="utf-8")  # trailing blank lines: dropped
    assert load_labels(path) == ["a", "b"]
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no class names"):
        load_labels(path)


def test_names_in_any_sequence_get_the_checks_files_get():
    assert load_labels(np.array(["walk", "run"])) == ["walk", "run"]
    assert load_labels(("walk", "run")) == ["walk", "run"]
    assert all(type(name) is str for name in load_labels(np.array(["walk", "run"])))
    with pytest.raises(ValueError, match=r"label list repeats class names: \['a'\]"):
        load_labels(["a", "b", "a"])
    with pytest.raises(ValueError, match="label list holds no class names"):
        load_labels([])
    with pytest.raises(ValueError, match="Class name 1 of the label list is empty"):
        load_labels(["a", " "])
    with pytest.raises(TypeError, match=r"name 1 is 2 \(int\)"):
        load_labels(["a", 2])
    for bad, kind in (((name for name in "ab"), "generator"), (None, "NoneType"),
                      (np.array([["a", "b"]]), "ndarray")):
        with pytest.raises(TypeError, match=rf"built-in list name .* sequence of class names.* "
                                            rf"got {kind}"):
            load_labels(bad)
    # decode_predictions takes the same names (it raised "expected str, bytes or
    # os.PathLike object, not ndarray").
    decoded = decode_predictions(np.array([[0.2, 0.8]]), labels=np.array(["walk", "run"]))
    assert decoded == [[(1, "run", pytest.approx(0.8)), (0, "walk", pytest.approx(0.2))]]
    with pytest.raises(TypeError, match="got NoneType"):
        decode_predictions(np.zeros((1, 2)), labels=None)


def test_top_classes_is_the_one_ranking():
    scores = np.array([[0.1, 0.4, 0.4, 0.1]])
    # Ties rank the lower index first; top is capped at the class count.
    assert top_classes(scores, 9, ["a", "b", "c", "d"]) == [
        [(1, "b", 0.4), (2, "c", 0.4), (0, "a", 0.1), (3, "d", 0.1)]]
    assert decode_predictions(scores, top=2, labels=["a", "b", "c", "d"]) == top_classes(
        scores, 2, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="top must be >= 1; got 0"):
        top_classes(scores, 0, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="4 classes but 3 names"):
        top_classes(scores, 1, ["a", "b", "c"])


def test_rank_classes_breaks_ties_by_index_and_takes_integer_scores():
    # uint8 scores (integer LiteRT outputs): negating them in uint8 would wrap 0 to 0 and
    # 1 to 255, ranking the lowest score first.
    scores = np.array([[0, 200, 200, 1], [3, 3, 3, 3]], np.uint8)
    np.testing.assert_array_equal(rank_classes(scores), [[1, 2, 3, 0], [0, 1, 2, 3]])
    # One row (a timeline window) ranks along its only axis.
    np.testing.assert_array_equal(rank_classes(np.array([0.2, 0.5, 0.2])), [1, 0, 2])


def test_decode_predictions_orders_and_names_classes():
    scores = np.zeros((2, 400), "float32")
    scores[0, [5, 17, 3]] = [0.2, 0.5, 0.3]
    scores[1, 399] = 1.0
    decoded = decode_predictions(scores, top=3)
    names = load_labels("kinetics400")
    assert decoded[0] == [(17, names[17], 0.5), (3, names[3], pytest.approx(0.3)),
                          (5, names[5], pytest.approx(0.2))]
    assert decoded[1][0] == (399, names[399], 1.0) and len(decoded[1]) == 3


def test_decode_predictions_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="10 classes but the label list hmdb51 has 51"):
        decode_predictions(np.zeros((1, 10)), labels="hmdb51")
    with pytest.raises(ValueError, match=r"\(batch, classes\)"):
        decode_predictions(np.zeros(10))
    for top in (0, -3):
        with pytest.raises(ValueError, match=f"top must be >= 1; got {top}"):
            decode_predictions(np.zeros((1, 51)), top=top, labels="hmdb51")
    assert len(decode_predictions(np.zeros((1, 51)), top=99, labels="hmdb51")[0]) == 51


def test_preprocess_input_values_and_errors():
    pixels = np.array([[[123.675, 116.28, 103.53], [255.0, 0.0, 58.395 + 123.675]]], "float32")
    out = np.asarray(preprocess_input(pixels))
    np.testing.assert_allclose(out[0, 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(
        out[0, 1], [(255 - 123.675) / 58.395, -116.28 / 57.12, (182.07 - 103.53) / 57.375],
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="3 channels"):
        preprocess_input(np.zeros((2, 2, 4)))
    # NumPy (or lists) in, NumPy out; a tensor in, a tensor out, as keras.applications.
    assert isinstance(preprocess_input(pixels), np.ndarray)
    np.testing.assert_allclose(preprocess_input(pixels.tolist()), out, rtol=1e-6)
    tensor = preprocess_input(keras.ops.convert_to_tensor(pixels))
    assert keras.ops.is_tensor(tensor) and not isinstance(tensor, np.ndarray)
