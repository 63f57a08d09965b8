"""GDN and inverse GDN (Ballé et al. 2016, eq. 6): tensorflow-compression's
layer, with its constant α and ε read as Python numbers. Its `call` then
picks the fixed-exponent branch in Python: the same ops, but no tensor-valued
`if`, so the codec's tf.functions trace without autograph (two to four times
faster to trace; docs/design.md).

Two forms (`FORMS`): "simplified", α = ε = 1, y_i = x_i / (β_i + Σ_j γ_ij
|x_j|) (Johnston et al. 2019; tensorflow-compression 2's default, and
tflic's); "original", α = 2, ε = ½, y_i = x_i / √(β_i + Σ_j γ_ij x_j²), as
Ballé et al. 2017 and 2018 used it and CompressAI's `GDN` computes it."""

import tensorflow_compression as tfc

FORMS = {"simplified": (1., 1.), "original": (2., .5)}  # (α, ε)


def _constant(parameter):
  """A constant (not trained) exponent as a float; None otherwise."""
  if parameter is None or callable(parameter):
    return None
  try:
    return float(parameter)
  except TypeError:  # a symbolic tensor: made inside a tf.function
    return None


class GDN(tfc.GDN):
  """`tfc.GDN` (`inverse=True`: IGDN) with Python-number α and ε; `form`
  sets them (`FORMS`)."""

  def __init__(self, inverse=False, form="simplified", **kwargs):
    if form not in FORMS:
      raise ValueError(f"GDN form must be one of {sorted(FORMS)}, not "
                       f"{form!r}")
    alpha, epsilon = FORMS[form]
    kwargs.setdefault("alpha_parameter", alpha)
    kwargs.setdefault("epsilon_parameter", epsilon)
    super().__init__(inverse=inverse, **kwargs)

  @property
  def alpha(self):
    value = _constant(self.alpha_parameter)
    return super().alpha if value is None else value

  @property
  def epsilon(self):
    value = _constant(self.epsilon_parameter)
    return super().epsilon if value is None else value
