"""Adam's two forms (tflic/adam.py) against Kingma and Ba's Algorithm 1 and
its §2 variant, computed in NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import adam


def reference(gradients, learning_rate, epsilon, corrected):
  """θ after Adam's steps from θ = 0: ε on √v̂ (Algorithm 1, `corrected`)
  or on √v with the step size α·√(1 − β2^t)/(1 − β1^t) (§2, Keras's)."""
  b1, b2 = .9, .999
  theta = m = v = np.zeros_like(gradients[0], np.float64)
  for t, g in enumerate(gradients, 1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    if corrected:
      theta = theta - learning_rate * (m / (1 - b1 ** t)) / (
          np.sqrt(v / (1 - b2 ** t)) + epsilon)
    else:
      theta = theta - learning_rate * np.sqrt(1 - b2 ** t) / (
          1 - b1 ** t) * m / (np.sqrt(v) + epsilon)
  return theta


@pytest.mark.parametrize("form", adam.FORMS)
def test_forms_compute_their_update(form):
  # Gradients from 1e-9 (beside ε) to 1: there the two forms differ most.
  rng = np.random.default_rng(3)
  scales = np.array([1e-9, 1e-9, 1e-5, 1e-5, 1., 1.])
  gradients = [rng.normal(size=6) * scales for _ in range(4)]
  variable = tf.Variable(tf.zeros([6], tf.float64))
  optimizer = adam.adam(form, 1e-3)
  for g in gradients:
    optimizer.apply_gradients([(tf.constant(g), variable)])
  expected = reference(gradients, 1e-3, optimizer.epsilon, form == "pytorch")
  other = reference(gradients, 1e-3, 1e-7 if form == "pytorch" else 1e-8,
                    form != "pytorch")
  # (a few 1e-6 apart: float32 steps inside Keras's optimizer)
  np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-4)
  assert optimizer.epsilon == {"keras": 1e-7, "pytorch": 1e-8}[form]
  # The small gradients move far more in PyTorch's form.
  assert not np.allclose(expected[:2], other[:2], rtol=.1)
  if form == "pytorch":
    assert np.all(np.abs(expected[:2]) > 10 * np.abs(other[:2]))


def test_unknown_form_is_refused():
  with pytest.raises(ValueError, match="keras.*pytorch"):
    adam.adam("sgd", 1e-3)


def test_either_form_resumes_the_others_checkpoint(tmp_path):
  """The same slots (m, v, the step): a run may change its form."""
  from tflic import train  # pylint: disable=import-outside-toplevel
  from tests.conftest import TINY  # pylint: disable=import-outside-toplevel
  models = []
  for form in adam.FORMS:
    model = train.build("hyperprior", TINY)
    train.compile_adam(model, 1e-3, form=form)
    models.append(model)
  keras, pytorch = models
  assert type(pytorch.optimizer) is adam.PyTorchAdam
  keras.train_step(tf.random.stateless_uniform([2, 64, 64, 3], [1, 2]))
  path = tf.train.Checkpoint(model=keras, optimizer=keras.optimizer).save(
      str(tmp_path / "ckpt"))
  tf.train.Checkpoint(model=pytorch, optimizer=pytorch.optimizer).restore(
      path).assert_existing_objects_matched()
  assert int(pytorch.optimizer.iterations) == 1
  for a, b in zip(keras.optimizer.variables, pytorch.optimizer.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
