"""Conditional Gaussian entropy model: the mean-scale hyperprior of Minnen, Ballé
and Toderici 2018 (eq. 2/3): p(ŷ | ẑ) = Π_i (N(μ_i, σ_i²) * U(-1/2, 1/2))(ŷ_i).
The likelihood for training; coding uses integer parameters
(`integer_gaussian.GaussianTable`) on the same scale grid."""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import integer_gaussian as ig


def _scale(index):
  return tf.math.exp(ig.log_scale(index))


class GaussianConditional(tf.keras.layers.Layer):
  """Gaussian with per-element mean and scale, given as log σ, clipped to
  the coder's scale grid (`integer_gaussian.scales`). Latents are quantized
  around the mean, ŷ = round(y − μ) + μ, in training (straight-through) as in
  coding, so the decoder sees what the model trained on."""

  def call(self, latent, mean, log_scale, training=False):
    """Returns (ŷ straight-through, bits per image)."""
    model = tfc.LocationScaleIndexedEntropyModel(
        tfc.NoisyNormal, ig.NUM_SCALES, _scale, coding_rank=3,
        compression=False)
    _, bits = model(latent, ig.log_scale_index(log_scale), loc=mean,
                    training=training)
    return model.quantize(latent, loc=mean), bits
