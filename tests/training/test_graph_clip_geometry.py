"""The in-graph resize and centre crop (`training/augment.py`: TFRecords in training and
evaluation) against the decoder's (`video/decode.py`, `video/clips.py`: predictions from
video files): one clip geometry, two implementations that must not drift apart."""

import av
import numpy as np
import tensorflow as tf

from keras_squeezetime.training.augment import resized_shape, view_crop_boxes
from keras_squeezetime.video.clips import center_crop
from keras_squeezetime.video.decode import _display_size

SIZES = [(h, w) for h in (36, 64, 101, 240, 333, 480, 720, 1080)
         for w in (36, 64, 99, 320, 427, 640, 1280, 1920)]


def test_resized_sizes_agree_with_the_decoders():
    for short_side in (32, 64, 128, 224, 256):
        for height, width in SIZES:
            frame = av.VideoFrame(width, height, "rgb24")
            stored_w, stored_h = _display_size(frame, short_side)
            graph_h, graph_w = (int(v) for v in resized_shape(tf.constant(height),
                                                              tf.constant(width), short_side))
            assert (graph_h, graph_w) == (stored_h, stored_w), (height, width, short_side)
            assert min(graph_h, graph_w) == short_side


def test_centre_crop_boxes_agree_with_the_decoders():
    for short_side, size in ((64, 56), (128, 112), (256, 224), (224, 224)):
        for height, width in SIZES:
            stored_w, stored_h = _display_size(av.VideoFrame(width, height, "rgb24"), short_side)
            # Each pixel holds its own (row, column): the crop's first pixel is its offset.
            rows, cols = np.meshgrid(np.arange(stored_h), np.arange(stored_w), indexing="ij")
            crop = center_crop(np.stack([rows, cols, cols], axis=-1), size)
            box = view_crop_boxes(tf.constant(height), tf.constant(width), short_side, size)
            y, x, h, w = box.numpy()[0].tolist()
            assert (y, x) == tuple(crop[0, 0, :2]) and (h, w) == crop.shape[:2] == (size, size)
