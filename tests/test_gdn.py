"""GDN's two forms (layers/gdn.py)."""

import numpy as np
import pytest
import tensorflow as tf

from tflic.layers.gdn import GDN


@pytest.mark.parametrize("form", ["simplified", "original"])
@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_computes_its_form(form, inverse):
  """simplified: x / (β + Σγ|x|); original: x / √(β + Σγx²) (Ballé 2018,
  CompressAI's GDN); inverse: × instead of ÷."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 7, 4)).astype(np.float32)
  beta = rng.uniform(.5, 2., 4).astype(np.float32)
  gamma = rng.uniform(0., .3, (4, 4)).astype(np.float32)
  layer = GDN(inverse=inverse, form=form, beta_parameter=tf.constant(beta),
              gamma_parameter=tf.constant(gamma))
  norm = beta + (np.abs(x) if form == "simplified" else x ** 2) @ gamma
  norm = norm if form == "simplified" else np.sqrt(norm)
  np.testing.assert_allclose(layer(x).numpy(),
                             x * norm if inverse else x / norm, rtol=1e-5)


def test_an_unknown_form_is_refused():
  with pytest.raises(ValueError, match=r"one of \['original', 'simplified'\]"):
    GDN(form="squared")
