"""ReflectConv2D: "same"-sized output, mirrored border, flat in → flat out."""

import numpy as np
import pytest
import tensorflow as tf

from tflic.layers.reflect_conv import ReflectConv2D
from tflic.models.factorized import Factorized


@pytest.mark.parametrize("size", [2, 3, 16, 17])
def test_same_size_and_weights_as_zero_padding(size):
  x = tf.random.stateless_normal([1, size, size + 5, 4], [1, 2])
  zeros = tf.keras.layers.Conv2D(6, 5, strides=2, padding="same")
  mirrored = ReflectConv2D(6, 5, strides=2, padding="same")
  expected = zeros(x)
  mirrored(x)
  mirrored.set_weights(zeros.get_weights())
  actual = mirrored(x)
  assert actual.shape == expected.shape
  # Away from the border, the same convolution of the same inputs.
  np.testing.assert_allclose(actual[:, 2:-2, 2:-2], expected[:, 2:-2, 2:-2],
                             atol=1e-5)
  if size > 4:  # and at the border another one
    assert not np.allclose(actual[:, 0], expected[:, 0], atol=1e-3)


def test_a_flat_image_gives_flat_latents_to_the_border():
  x = tf.fill([1, 64, 96, 3], 0.4)
  mirrored = Factorized(num_filters=8, num_layers=4, padding="reflect")
  zeros = Factorized(num_filters=8, num_layers=4)
  y = mirrored.analysis(x)
  zeros.analysis(x)
  zeros.analysis.set_weights(mirrored.analysis.get_weights())
  spread = lambda y: float(tf.reduce_max(tf.math.reduce_std(y, [1, 2])))
  assert spread(y) < 1e-6 < 1e-2 < spread(zeros.analysis(x))
  assert mirrored.get_config()["padding"] == "reflect"
  assert "padding" not in zeros.get_config()  # the papers' identity kept
  with pytest.raises(ValueError, match="padding"):
    Factorized(padding="circular")
