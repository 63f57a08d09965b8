"""The interface every latent codec has (CompressAI's latent codecs, with
tflic's exact integer coding).

A latent codec is the entropy model of one latent and its coder, in one
object, in two forms made from the same layers:
- training: `call(latent, training, side)` → ({name: quantized latent},
  bits per image), the rate estimated with additive uniform noise;
- coding, after `freeze(latents, side)` (the integer conversion of what
  chooses the coding distributions, calibrated on latents of real images):
  `encode(latent, side)` → (streams, {name: quantized latent}) and
  `decode(streams, shape, side)` → {name: quantized latent}, the same
  latents bit for bit on every machine.

`side` is what a conditional codec is given: ψ = h_s(ẑ) in float for
training, in integers for coding (see `hyperprior.HyperpriorCodec`). A
model is its transforms and one latent codec; `Codec`, tiling, export and
the benchmark ask the latent codec (`num_streams`, `side_streams`,
`serial`, `measures`), never the model's type.
"""

import tensorflow as tf


class LatentCodec(tf.keras.layers.Layer):
  """Base of every latent codec. `key`: the name of the latent it codes in
  the dicts it returns ("y_hat", "z_hat")."""

  num_streams = 1
  side_streams = 0  # how many of the first streams are side information
  serial = False  # whether its decoder visits latent positions one by one

  def __init__(self, key="y_hat", **kwargs):
    super().__init__(**kwargs)
    self.key = key

  def call(self, latent, training=False, side=None):
    raise NotImplementedError

  def freeze(self, latents, side=None):
    """Fixes the coding tables and converts to integers, calibrated on a
    list of latents [1, h, w, C] of real images (and their side)."""
    raise NotImplementedError

  def encode(self, latent, side=None):
    """latent [1, h, w, C] → (list of `num_streams` scalar strings, {key:
    the quantized latent exactly as `decode` returns it})."""
    raise NotImplementedError

  def decode(self, streams, shape, side=None):
    """The streams of `encode`, the latent's [h, w] → {key: latent}."""
    raise NotImplementedError

  @property
  def factorized_codec(self):
    """The codec of the tensor a factorized prior codes (the factorized
    model's ŷ, a hyperprior's ẑ): what SLIMD replaces
    (`models.base.CompressionModel.use_slimd`)."""
    raise NotImplementedError

  def factorized_tensor(self, latent):
    """The tensor `factorized_codec` codes, of this codec's latent."""
    raise NotImplementedError

  def replace_factorized(self, codec):
    """→ this codec with `codec` coding its factorized tensor."""
    raise NotImplementedError

  def measures(self, latent, side=None):
    """Extra figures of a latent for the benchmark (e.g. the rate under
    each stage of a staged entropy model), or {}."""
    del latent, side
    return {}

  def legacy_children(self):
    """{attribute name in checkpoints written before latent codecs: the
    object now holding those weights} (`models.base.restore`)."""
    return {}
