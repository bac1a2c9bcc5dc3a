"""Why a distributed run and one device drift apart in float32, and why nothing per replica does.

Each case trains SqueezeTime (width 0.25, 4 frames of 32 px, 4 classes, `TorchSGD` at lr
0.05 with momentum, coupled decay and clipping: the settings of
`tests/training/test_distribute.py`) for a few steps on the same 8 clips, and prints the
losses. Every case runs in its own process (Grappler and the float type are process-wide).

- `sensitivity`: one training-mode gradient, and the same with the input scaled by
  1 + 1e-7: relative change of the logits and of the gradient, for SqueezeTime and for
  keras.applications.ResNet50 (a plain Conv/BN/ReLU network of the same depth).
- `batch16`: one device on the 8 clips, and on the same 8 clips twice (batch 16): the same
  arithmetic in exact numbers, different batch-norm summation in float.
- `mirrored`: MirroredStrategy on 2 logical CPUs with a global batch of the 8 clips twice
  (each replica gets the 8 clips, the second in another order), against one device on
  the 8 clips at the same absolute learning rate; in float32, float32 with the replicas in
  the same order and Grappler off, and float64.

    python benchmarks/replica_drift.py            # all cases, 5-10 minutes on 2 idle cores
    python benchmarks/replica_drift.py --steps 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

SIZE, FRAMES, CLASSES, LR = 32, 4, 4, 0.05


def _clips():
    import numpy as np

    rng = np.random.default_rng(0)
    tints = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])
    clips = np.stack([rng.integers(0, 90, size=(FRAMES, SIZE, SIZE, 3)) + tints[i % 4] * 0.6
                      for i in range(8)]).astype("float32")
    return clips, (np.arange(8) % CLASSES).astype("int32"), rng.permutation(8)


def _model(strategy):
    import keras

    from keras_squeezetime import SqueezeTime
    from keras_squeezetime.training.optimizer import TorchSGD

    with strategy.scope():
        keras.utils.set_random_seed(3)
        model = SqueezeTime(input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=CLASSES,
                            width_multiplier=0.25, dropout_rate=0.0)
        model.compile(TorchSGD(LR, 0.9, l2_decay=7e-5, global_clipnorm=40.0),
                      keras.losses.SparseCategoricalCrossentropy())
    return model


def _losses(strategy, clips, labels, batch, steps):
    import tensorflow as tf

    model = _model(strategy)
    data = tf.data.Dataset.from_tensor_slices((clips, labels)).batch(batch).repeat()
    return [model.fit(data, steps_per_epoch=1, epochs=1, verbose=0).history["loss"][0]
            for _ in range(steps)]


def case_sensitivity(steps):
    import keras
    import numpy as np
    import tensorflow as tf

    clips, labels, _ = _clips()

    def change(model, inputs):
        def run(x):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            grads = tape.gradient(loss, model.trainable_variables)
            return np.asarray(logits), np.concatenate([np.ravel(g) for g in grads])

        (l0, g0), (l1, g1) = run(inputs), run(inputs * (1 + 1e-7))
        return {"logits": float(np.linalg.norm(l1 - l0) / np.linalg.norm(l0)),
                "gradient": float(np.linalg.norm(g1 - g0) / np.linalg.norm(g0))}

    from keras_squeezetime import SqueezeTime

    keras.utils.set_random_seed(3)
    squeezetime = SqueezeTime(input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=CLASSES,
                              width_multiplier=0.25, dropout_rate=0.0,
                              classifier_activation=None)
    resnet = keras.applications.ResNet50(weights=None, input_shape=(SIZE, SIZE, 3 * FRAMES),
                                         classes=CLASSES, classifier_activation=None)
    stacked = np.concatenate(list(clips.transpose(1, 0, 2, 3, 4)), axis=-1) / 255.0
    return {"squeezetime": change(squeezetime, clips), "resnet50": change(resnet, stacked)}


def case_batch16(steps):
    import numpy as np
    import tensorflow as tf

    clips, labels, _ = _clips()
    one = tf.distribute.get_strategy()
    return {"batch 8": _losses(one, clips, labels, 8, steps),
            "batch 16 (the 8 twice)": _losses(one, np.concatenate([clips, clips]),
                                              np.concatenate([labels, labels]), 16, steps)}


def case_mirrored(steps, same_order=False, grappler=True, float64=False):
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    if not grappler:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    if float64:
        import keras

        keras.config.set_floatx("float64")
    clips, labels, permutation = _clips()
    second = np.arange(8) if same_order else permutation
    single = _losses(tf.distribute.get_strategy(), clips, labels, 8, steps)
    mirrored = _losses(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
                       np.concatenate([clips, clips[second]]),
                       np.concatenate([labels, labels[second]]), 16, steps)
    return {"one device": single, "mirrored": mirrored,
            "relative difference": [abs(a - b) / abs(a) for a, b in zip(single, mirrored)]}


CASES = {
    "sensitivity": case_sensitivity,
    "batch16": case_batch16,
    "mirrored float32": case_mirrored,
    "mirrored float32, same order, Grappler off": lambda steps: case_mirrored(
        steps, same_order=True, grappler=False),
    "mirrored float64": lambda steps: case_mirrored(steps, float64=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print("RESULT " + json.dumps(CASES[args.case](args.steps)))
        return
    results = {}
    for name in CASES:
        run = subprocess.run([sys.executable, __file__, "--case", name, "--steps",
                              str(args.steps)], capture_output=True, text=True, check=True)
        line = next(candidate for candidate in run.stdout.splitlines()
                    if candidate.startswith("RESULT "))
        results[name] = json.loads(line[len("RESULT "):])
        print(f"{name}: {json.dumps(results[name])}", flush=True)


if __name__ == "__main__":
    main()
