"""`squeezetime-convert IN.pth OUT.weights.h5`: an official checkpoint to Keras weights.

A thin wrapper over `keras_squeezetime.checkpoint_conversion.convert_checkpoint`, which
builds the model from the checkpoint's own configuration, maps and checks the weights key
by key and writes them atomically; the builder arguments that load the file are printed
(and written beside it as `<OUT>.json`).
"""

from __future__ import annotations

import sys

from absl import app, flags

from keras_squeezetime.checkpoint_conversion import convert_checkpoint
from keras_squeezetime.cli.entry_point import run_tool

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 224, "Input height and width recorded for the model.")


def main(argv):
    if len(argv) != 3:
        raise app.UsageError("usage: squeezetime-convert IN.pth OUT.weights.h5 [--image_size 224]")
    source, output = argv[1], argv[2]
    try:
        kwargs = convert_checkpoint(source, output, FLAGS.image_size)
    except (FileNotFoundError, ValueError) as error:
        print(f"squeezetime-convert: error: {error}", file=sys.stderr)
        return 2
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    print(f"Wrote {output}. Load it with SqueezeTime({args}, weights={output!r}).")
    return 0


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, quiet_tensorflow=False)


if __name__ == "__main__":
    run()
