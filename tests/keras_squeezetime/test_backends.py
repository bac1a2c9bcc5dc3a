"""Every Keras backend kept: under JAX and PyTorch the model (written with keras.ops only)
reproduces the official fixture, `model.fit` lowers the loss, and neither importing the
package nor building, loading, running or training a model imports TensorFlow.

One subprocess per backend runs all three checks (a backend is chosen before Keras loads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.parity import FEATURES_TOLERANCE, LOGITS_TOLERANCE

SCRIPT = r'''
import json, sys, time
started = time.time()
import numpy as np
import keras
import keras_squeezetime
from keras_squeezetime import SqueezeTime

report = {"backend": keras.backend.backend()}
stem = sys.argv[1]
config = json.load(open(stem + ".json"))
data = np.load(stem + ".npz")
video = np.transpose(data["video_ncthw"], (0, 2, 3, 4, 1))
model = SqueezeTime(input_shape=(config["frames"], *config["input_hw"], 3),
                    width_multiplier=config["widen_factor"], include_preprocessing=False,
                    num_classes=config["num_classes"], classifier_activation=None,
                    weights=stem + ".pth")
report["tensorflow_after_build"] = "tensorflow" in sys.modules  # built and .pth loaded
features = keras.Model(model.input, [model.get_layer("stage4_block3").output, model.output])
feature_map, logits = (keras.ops.convert_to_numpy(t) for t in features(video, training=False))
reference = np.transpose(data["features_nchw"], (0, 2, 3, 1))
relative = lambda a, e: float(np.abs(a - e).max() / np.abs(e).max())
report["logits"] = relative(logits, data["logits"])
report["features"] = relative(feature_map, reference)

# model.fit on a tiny model and two classes of clips (bright, dark): the loss falls.
tiny = SqueezeTime(input_shape=(4, 32, 32, 3), width_multiplier=0.25, num_classes=2,
                   pos_embed_sizes=(8, 4, 2, 1), dropout_rate=0.0)
rng = np.random.default_rng(0)
clips = rng.uniform(0, 255, (8, 4, 32, 32, 3)).astype("float32")
clips[4:] *= 0.25
labels = np.array([0] * 4 + [1] * 4)
tiny.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
history = tiny.fit(clips, labels, batch_size=8, epochs=10, verbose=0, shuffle=False)
report["losses"] = [round(float(v), 4) for v in history.history["loss"]]
report["tensorflow_imported"] = "tensorflow" in sys.modules
report["seconds"] = round(time.time() - started, 1)
print(json.dumps(report))
'''


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_reproduces_the_official_model_and_trains_without_tensorflow(
        backend, parity_dir):
    # jax and torch are in the [test] extra: a missing one fails the run, not a skip.
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    stem = str(parity_dir / "squeezetime_w0.25_f16_112px")
    result = subprocess.run([sys.executable, "-c", SCRIPT, stem], env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == backend
    assert not report["tensorflow_after_build"], "building or loading the .pth loaded TF"
    assert not report["tensorflow_imported"], "loading, predicting or fitting loaded TF"
    assert report["logits"] <= LOGITS_TOLERANCE and report["features"] <= FEATURES_TOLERANCE, report
    losses = report["losses"]
    assert min(losses[-3:]) < 0.7 * losses[0], losses
