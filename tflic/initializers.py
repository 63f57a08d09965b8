"""Initial weights of the convolutions: Keras's (Glorot-uniform kernels, zero
biases: the default) or PyTorch's, as CompressAI's models start: kernel and
bias ~ U(±1/√fan_in), fan_in = k_h·k_w·(input channels of the convolution;
of a transposed convolution, its output channels, as PyTorch counts them).

The hyperprior in CompressAI's form started faster from PyTorch's (Kodak
at step 1000), not clearly so by step 2000 (docs/training.md)."""

import math

import tensorflow as tf

INITIALIZERS = ("glorot", "pytorch")


def initialize(model, initializer):
  """Re-initialises every convolution of a built `model` (Keras `Conv2D` and
  its subclasses: transposed, masked) by `initializer`; "glorot" keeps
  Keras's. Draws from TensorFlow's global seed."""
  if initializer not in INITIALIZERS:
    raise ValueError(f"initializer must be one of {INITIALIZERS}, not "
                     f"{initializer!r}")
  if initializer == "glorot":
    return
  for layer in model.submodules:
    if isinstance(layer, tf.keras.layers.Conv2D):
      kh, kw, fan_in_channels = layer.kernel.shape[:3]
      bound = 1. / math.sqrt(kh * kw * fan_in_channels)
      for variable in (layer.kernel, layer.bias):
        if variable is not None:
          variable.assign(tf.random.uniform(variable.shape, -bound, bound,
                                            variable.dtype))
