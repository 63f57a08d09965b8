"""Adam (Kingma and Ba 2015) in either of its two forms, Keras's or
PyTorch's (`FORMS`).

Algorithm 1 of the paper adds ε to the bias-corrected √v̂:
θ ← θ − α·m̂/(√v̂ + ε), m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t); PyTorch's
`torch.optim.Adam` (so CompressAI's training) computes that, with ε = 1e-8.
Keras's Adam computes the variant at the end of the paper's §2,
θ ← θ − α_t·m/(√v + ε̂), α_t = α·√(1 − β2^t)/(1 − β1^t), with ε̂ = 1e-7:
in Algorithm 1's terms an ε of ε̂/√(1 − β2^t), 3.2e-6 at the first step
and 1.3e-7 at step 1000 (β2 = 0.999), 320× and 13× PyTorch's.

That matters where gradients are small beside ε: at the start of training
a hyperprior's h_a and h_s get gradients of 1e-11 to 1e-8 per weight after
clipping to a global norm of 1 (y's rate is then almost nothing), so with
Keras's ε they move far slower than with PyTorch's (docs/training.md)."""

import tensorflow as tf

FORMS = ("keras", "pytorch")


class PyTorchAdam(tf.keras.optimizers.Adam):
  """Adam as Algorithm 1 and PyTorch compute it (ε on √v̂; default ε 1e-8).
  Its slots are Keras's Adam's, so either form resumes the other's
  checkpoints."""

  def __init__(self, learning_rate=1e-3, epsilon=1e-8, **kwargs):
    super().__init__(learning_rate, epsilon=epsilon, **kwargs)

  def update_step(self, gradient, variable):
    if isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
      raise NotImplementedError("dense gradients only, without amsgrad")
    dtype = variable.dtype
    step = tf.cast(self.iterations + 1, dtype)
    key = self._index_dict[self._var_key(variable)]
    m, v = self._momentums[key], self._velocities[key]
    m.assign_add((gradient - m) * (1 - self.beta_1))
    v.assign_add((tf.square(gradient) - v) * (1 - self.beta_2))
    m_hat = m / (1 - tf.pow(tf.cast(self.beta_1, dtype), step))
    v_hat = v / (1 - tf.pow(tf.cast(self.beta_2, dtype), step))
    variable.assign_sub(tf.cast(self.learning_rate, dtype) * m_hat / (
        tf.sqrt(v_hat) + self.epsilon))


def adam(form, learning_rate, **kwargs):
  """Keras's Adam (`form="keras"`) or `PyTorchAdam` ("pytorch"), each with
  its library's default ε."""
  if form not in FORMS:
    raise ValueError(f"Adam's form must be one of {FORMS}, not {form!r}")
  if form == "keras":
    return tf.keras.optimizers.Adam(learning_rate, **kwargs)
  return PyTorchAdam(learning_rate, **kwargs)
