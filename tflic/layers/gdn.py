"""GDN and inverse GDN (Ballé et al. 2016, eq. 6): tensorflow-compression's
layer, with its constant α and ε (the papers' α = ε = 1) read as Python
numbers. Its `call` then picks the fixed-exponent branch in Python: the same
ops, but no tensor-valued `if`, so the codec's tf.functions trace without
autograph (two to four times faster to trace; docs/design.md)."""

import tensorflow_compression as tfc


def _constant(parameter):
  """A constant (not trained) exponent as a float; None otherwise."""
  if parameter is None or callable(parameter):
    return None
  try:
    return float(parameter)
  except TypeError:  # a symbolic tensor: made inside a tf.function
    return None


class GDN(tfc.GDN):
  """`tfc.GDN` (`inverse=True`: IGDN) with Python-number α and ε."""

  @property
  def alpha(self):
    value = _constant(self.alpha_parameter)
    return super().alpha if value is None else value

  @property
  def epsilon(self):
    value = _constant(self.epsilon_parameter)
    return super().epsilon if value is None else value
