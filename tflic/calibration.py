"""Calibration images for the integer conversion of a model's entropy
parameters (`CompressionModel.freeze`): the activation ranges of each integer
layer are measured on them (Ballé, Johnston and Minnen 2019 calibrate on
training images). Values beyond 4× the largest seen saturate: the file stays
exact, only its rate suffers."""

import numpy as np
import tensorflow as tf

from tflic import data
from tflic import images

COUNT = 8
SIZE = 256


def _to_model(image, multiple, pad_mode):
  image = images.pad_to_multiple(image, multiple, pad_mode)
  return tf.cast(image, tf.float32)[None] / 255.


def from_data(spec, multiple, pad_mode="edge", count=COUNT, size=SIZE):
  """The central size × size crops (whole images if smaller) of the first
  `count` images of a `--train_data` spec (glob, 'samples' or tfds:NAME),
  as model inputs [1, H, W, 3] in [0, 1]."""
  result = []
  for image in data.images(spec, shuffle=False).take(count):
    height, width = image.shape[0], image.shape[1]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    result.append(_to_model(image[top:top + size, left:left + size],
                            multiple, pad_mode))
  return result


def synthetic(multiple, pad_mode="edge", count=COUNT, size=SIZE, seed=0):
  """Made images, when no photos are at hand (untrained models, tests):
  smooth random colour fields with edges and some noise."""
  rng = np.random.default_rng(seed)
  result = []
  for i in range(count):
    small = rng.integers(0, 256, (2 + i, 2 + i, 3)).astype(np.float32)
    image = tf.image.resize(small[None], [size, size], "nearest" if i % 2
                            else "bilinear")[0].numpy()
    image += rng.normal(0, 4 * i, image.shape)
    result.append(_to_model(np.clip(np.round(image), 0, 255).astype(np.uint8),
                            multiple, pad_mode))
  return result
