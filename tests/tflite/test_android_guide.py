"""The JVM helpers of docs/android.md, compiled and run: they read the labels embedded in an
export and pack frames byte for byte as the runner does (`input_layout.pack`).

Needs `kotlinc` and `java` (Debian: `apt-get install kotlin`); skipped without them.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

GUIDE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "android.md"
FRAMES, SIZE = 4, 8

# Drives the guide's helpers: labels and a missing entry from a model file, and a clip of
# known pixels packed in both layouts to two files.
MAIN = """
import java.io.File
import java.nio.ByteBuffer

fun main(args: Array<String>) {
    val model = ByteBuffer.wrap(File(args[0]).readBytes())
    val labels = tfliteMetadata(model, "squeezetime.labels")
    println("LABELS " + (if (labels == null) "null" else String(labels, Charsets.UTF_8)))
    println("MISSING " + (tfliteMetadata(model, "no.such.entry") == null))
    val frames = args[2].toInt()
    val size = args[3].toInt()
    val stacked = ByteArray(size * size * 3 * frames)
    val plain = ByteArray(size * size * 3 * frames)
    for (t in 0 until frames) {
        val argb = IntArray(size * size) { i ->
            (0xFF shl 24) or (((7 * i + 3 * t) and 0xFF) shl 16) or
                (((5 * i + 11 * t + 1) and 0xFF) shl 8) or ((i * t + 2) and 0xFF)
        }
        putFrameStacked(argb, t, frames, stacked)
        putFrame(argb, t, plain)
    }
    File(args[1] + ".stacked").writeBytes(stacked)
    File(args[1] + ".frames").writeBytes(plain)
}
"""


def _helpers() -> str:
    blocks = re.findall(r"```kotlin\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    found = [block for block in blocks if "fun tfliteMetadata" in block]
    assert len(found) == 1, "docs/android.md lost its JVM helper block"
    return found[0]


def _expected_clip() -> np.ndarray:
    i = np.arange(SIZE * SIZE)
    clip = np.zeros((FRAMES, SIZE * SIZE, 3), np.int64)
    for t in range(FRAMES):
        clip[t, :, 0] = (7 * i + 3 * t) & 255
        clip[t, :, 1] = (5 * i + 11 * t + 1) & 255
        clip[t, :, 2] = (i * t + 2) & 255
    return clip.reshape(FRAMES, SIZE, SIZE, 3).astype(np.uint8)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("kotlinc") and shutil.which("java")),
                    reason="kotlinc/java not installed (Debian: apt-get install kotlin)")
def test_guide_helpers_read_labels_and_pack_frames(tmp_path):
    from keras_squeezetime.tflite import metadata
    from keras_squeezetime.tflite.input_layout import pack

    (tmp_path / "Helpers.kt").write_text(_helpers())
    (tmp_path / "Main.kt").write_text(MAIN)
    jar = tmp_path / "guide.jar"
    compiled = subprocess.run(["kotlinc", "Helpers.kt", "Main.kt", "-include-runtime", "-d",
                               str(jar)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=900)
    assert compiled.returncode == 0, compiled.stderr[-3000:]

    # A real flatbuffer with the metadata an export embeds (the guide reads the file).
    names = ["walk", "run", "jump"]
    model_bytes = _one_op_model()
    (tmp_path / "m.tflite").write_bytes(metadata.embed(model_bytes, names, {"a": 1}))
    (tmp_path / "bare.tflite").write_bytes(model_bytes)
    out = tmp_path / "packed"
    ran = subprocess.run(["java", "-jar", str(jar), str(tmp_path / "m.tflite"), str(out),
                          str(FRAMES), str(SIZE)], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "LABELS walk\nrun\njump" in ran.stdout and "MISSING true" in ran.stdout
    clip = _expected_clip()
    assert (tmp_path / "packed.frames").read_bytes() == clip.tobytes()
    assert (tmp_path / "packed.stacked").read_bytes() == pack(clip, "stacked").tobytes()
    bare = subprocess.run(["java", "-jar", str(jar), str(tmp_path / "bare.tflite"), str(out),
                           "1", "1"], capture_output=True, text=True, timeout=300)
    assert "LABELS null" in bare.stdout


def _one_op_model() -> bytes:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 4), tf.float32)])
    def serve(x):
        return tf.nn.relu(x)

    return tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()]).convert()
