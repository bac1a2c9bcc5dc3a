"""`squeezetime-convert IN.pth OUT.weights.h5`: an official checkpoint to Keras weights.

A thin wrapper over `keras_squeezetime.checkpoint_conversion.convert_checkpoint`, which
builds the model from the checkpoint's own configuration, maps and checks the weights key
by key and writes them atomically, with the model's `config.json` beside them; the builder
arguments that load the file are printed.
"""

from __future__ import annotations

import sys

from absl import app, flags

from keras_squeezetime.checkpoint_conversion import convert_checkpoint
from keras_squeezetime.cli.entry_point import run_tool

FLAGS = flags.FLAGS
flags.DEFINE_integer("image-size", None, "Input height and width recorded for the model "
                     "(default: the size its positional embeddings were made for, 224 for "
                     "the official checkpoints).", lower_bound=16)
flags.DEFINE_alias("image_size", "image-size")  # the other tools accept both spellings


def main(argv):
    if len(argv) != 3:
        raise app.UsageError("usage: squeezetime-convert IN.pth OUT.weights.h5 [--image-size N]")
    source, output = argv[1], argv[2]
    try:
        kwargs = convert_checkpoint(source, output, FLAGS["image-size"].value)
    except (FileNotFoundError, ValueError) as error:
        print(f"squeezetime-convert: error: {error}", file=sys.stderr)
        return 2
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    print(f"Wrote {output} and the config.json beside it. Load it with "
          f"keras_squeezetime.load_model({output!r}) (or squeezetime-predict --model {output}), "
          f"or build it with SqueezeTime({args}, weights={output!r}).")
    return 0


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, "squeezetime-convert", quiet_tensorflow=False)


if __name__ == "__main__":
    run()
