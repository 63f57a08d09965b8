"""GSDN / IGSDN (Qian et al. 2021, eq. 5)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tflic.layers.gsdn import GSDN


def _randomize(layer, seed, subtractive):
  rng = np.random.default_rng(seed)
  c = layer.nu.shape[0]
  layer.beta_parameter.variable.assign(rng.uniform(.5, 1.5, c))
  layer.gamma_parameter.variable.assign(rng.uniform(0., .5, (c, c)))
  if subtractive:
    layer.nu.assign(rng.normal(size=c))
    layer.tau.assign(rng.normal(size=(c, c)) * .3)


@pytest.mark.parametrize("inverse", [False, True])
def test_without_the_subtractive_part_equals_tfc_gdn(inverse):
  x = tf.random.stateless_normal([2, 5, 7, 6], seed=[1, 2]) * 3
  layer = GSDN(inverse=inverse)
  layer(x)
  _randomize(layer, seed=3, subtractive=False)
  gdn = tfc.GDN(inverse=inverse, alpha_parameter=2, epsilon_parameter=.5,
                beta_parameter=layer.beta, gamma_parameter=layer.gamma)
  np.testing.assert_array_equal(layer(x).numpy(), gdn(x).numpy())


@pytest.mark.parametrize("inverse", [False, True])
def test_matches_equation_5(inverse):
  x = tf.random.stateless_normal([3, 4, 5], seed=[4, 5]) * 2
  layer = GSDN(inverse=inverse)
  layer(x)
  _randomize(layer, seed=6, subtractive=True)
  u = x.numpy().astype(np.float64)
  beta, gamma, nu, tau = (np.float64(v.numpy()) for v in (
      layer.beta, layer.gamma, layer.nu, layer.tau))
  scale = np.sqrt(beta + np.einsum("...j,ji->...i", u ** 2, gamma))
  mean = nu + np.einsum("...j,ji->...i", u, tau)
  expect = u * scale + mean if inverse else (u - mean) / scale
  np.testing.assert_allclose(layer(x).numpy(), expect, rtol=1e-5, atol=1e-5)


def test_parameters_trainable_and_counted():
  layer = GSDN()
  layer(tf.zeros([1, 2, 2, 8]))
  assert sum(int(np.prod(v.shape)) for v in layer.trainable_variables) == (
      2 * (8 + 8 * 8))
  assert GSDN.from_config(layer.get_config()).inverse is False
