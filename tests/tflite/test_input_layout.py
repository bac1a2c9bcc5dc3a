"""The stacked input layout: packing, and a Keras model that takes it with the same outputs."""

from __future__ import annotations

import numpy as np
import pytest

import keras


def test_pack_puts_frame_t_rgb_at_channels_3t():
    from keras_squeezetime.tflite.input_layout import clip_shape, pack, tensor_shape

    frames, size = 3, 2
    clip = np.zeros((frames, size, size, 3), np.float32)
    for t in range(frames):
        for c in range(3):
            clip[t, :, :, c] = 10 * t + c  # value says (frame, channel)
    clip[1, 0, 1, 2] = 99  # one pixel of frame 1, blue, at row 0, column 1
    stacked = pack(clip, "stacked")
    assert stacked.shape == (size, size, 3 * frames)
    assert stacked[1, 1].tolist() == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    assert stacked[0, 1, 3 * 1 + 2] == 99
    # Batched clips pack the same way; `frames` leaves them alone.
    batch = np.stack([clip, clip + 1])
    np.testing.assert_array_equal(pack(batch, "stacked")[1], stacked + 1)
    assert pack(batch, "frames") is batch or np.array_equal(pack(batch, "frames"), batch)
    assert tensor_shape(clip.shape, "stacked") == (1, size, size, 9)
    assert tensor_shape(clip.shape, "frames") == (1, frames, size, size, 3)
    assert clip_shape((1, size, size, 9), "stacked") == clip.shape
    with pytest.raises(ValueError, match="input_layout must be one of"):
        pack(clip, "channels_first")


def test_stacked_channel_order_matches_the_squeeze():
    """The squeeze puts frame t's channel c at c*T + t; stacked has it at 3t + c."""
    from keras_squeezetime.layers import TimeToChannel
    from keras_squeezetime.tflite.input_layout import pack, stacked_channel_order

    clip = np.random.default_rng(0).normal(size=(1, 5, 3, 3, 3)).astype(np.float32)
    squeezed = np.asarray(TimeToChannel()(clip))
    np.testing.assert_array_equal(pack(clip, "stacked")[..., :],
                                  squeezed[..., stacked_channel_order(5)])


@pytest.mark.parametrize("folded", [False, True])
def test_stacked_model_gives_the_frames_model_outputs(tiny, folded):
    from keras_squeezetime.tflite.input_layout import pack, stacked_model

    model = tiny.folded if folded else tiny.model
    stacked = stacked_model(model)
    assert tuple(stacked.inputs[0].shape) == (None, tiny.SIZE, tiny.SIZE, 3 * tiny.FRAMES)
    assert "squeeze" not in {layer.name for layer in stacked.layers}
    clips, _ = tiny.clips(8, seed=3)
    expected = tiny.logits(model, clips)
    assert tiny.discriminates(expected)
    got = tiny.logits(stacked, pack(clips, "stacked"))
    # Same function; only the stem's summation order differs (measured 2e-5 on logits of
    # std ~2, i.e. ~1e-5 relative).
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # Frames fed without the permutation would be another function: the test can fail.
    unpermuted = np.moveaxis(clips, 1, -1).reshape(len(clips), tiny.SIZE, tiny.SIZE, -1)
    assert np.abs(tiny.logits(stacked, unpermuted) - expected).max() > 0.1


def test_stacked_model_refuses_a_model_without_the_squeeze():
    from keras_squeezetime.tflite.input_layout import stacked_model

    inputs = keras.Input((4, 8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="not a SqueezeTime classifier"):
        stacked_model(model)
