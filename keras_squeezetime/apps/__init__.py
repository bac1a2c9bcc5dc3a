"""The application floor: prediction, timelines of long videos and explanations.

These use everything below them (the model, its loader, video clips, and the LiteRT
runner of `keras_squeezetime.tflite` for `.tflite` files); nothing in the core imports them.
"""
