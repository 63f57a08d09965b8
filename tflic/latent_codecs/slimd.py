"""SLIMD (Minnen, Toderici, Singh, Hwang, Covell 2018, ICIP): image-dependent
local entropy models for the tensor a factorized prior codes, as a latent
codec of its own: the factorized prior's quantization, coded with a
dictionary of local models (`entropy.slimd.Slimd`, §2.1 and §2.3).

Training is the factorized prior's (SLIMD is fitted after training,
`slimd_fit`); coding writes two streams: the side information (the tile
indices and image-dependent distributions) and the code tensor. Beyond the
paper, it codes ẑ of the hyperprior and context models as well.
"""

from tflic.latent_codecs.base import LatentCodec


class SlimdCodec(LatentCodec):
  """prior_codec: the trained `FactorizedPrior` (its quantization offsets
  and training form); coder: a `entropy.slimd.Slimd` fitted on it."""

  num_streams = 2
  side_streams = 1

  def __init__(self, prior_codec, coder, **kwargs):
    super().__init__(key=prior_codec.key, **kwargs)
    if coder.channels != prior_codec.channels:
      raise ValueError(f"the SLIMD dictionary is for {coder.channels} "
                       f"channels, the prior codes {prior_codec.channels}")
    self.prior_codec = prior_codec
    self.coder = coder

  def call(self, latent, training=False, side=None):
    return self.prior_codec(latent, training=training)

  def freeze(self, latents=None, side=None):
    self.prior_codec.freeze()

  def encode(self, latent, side=None):
    symbols = self.prior_codec.symbols(latent)
    return (list(self.coder.encode(symbols[0])),
            {self.key: self.prior_codec.dequantize(symbols)})

  def decode(self, streams, shape, side=None):
    symbols = self.coder.decode(streams[0], streams[1], shape[0], shape[1])
    return {self.key: self.prior_codec.dequantize(symbols[None])}

  @property
  def factorized_codec(self):
    return self

  def factorized_tensor(self, latent):
    return latent

  def replace_factorized(self, codec):
    return codec
