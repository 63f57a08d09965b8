"""Qian et al. 2021, "Learning accurate entropy model with global reference
for image compression" (ICLR 2021, Figs. 3 and 5): the `qian2021` model.

The joint model's transforms with GSDN/IGSDN (eq. 5) instead of GDN/IGDN,
and the global reference entropy model (`latent_codecs.GlobalReference`):
context → + reference → + hyperprior stages, combined as a mixture (the
authors' code, the default from the ablation at equal steps, README: with
the reference, mixture reached 14 % less rate than experts at 0.3 dB less
PSNR, and mixture + GSDN had the lowest R + λ·D of all arms) or as Gaussian
experts (the paper's text). `reference=False` and `normalization="gdn"`
give the paper's ablations.
"""

from tflic.latent_codecs import GlobalReference, hyperprior
from tflic.models.base import CompressionModel
from tflic.models.hyperprior import transforms


class Qian2021(CompressionModel):
  """Streams: [ẑ (factorized prior), ŷ (stage-3 distribution, serial
  coder)]."""

  multiple = 64

  def __init__(self, num_filters=192, latent_channels=192, hyper_channels=192,
               reference=True, normalization="gsdn", reference_size=3,
               search_rows=0, warmup_steps=100000,
               stage_weights=(.3, .3, .4), final_stage_weights=(.1, .1, .8),
               stage_combination="mixture", lmbda=0.01, distortion="mse",
               **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    if normalization not in ("gsdn", "gdn"):
      raise ValueError(f"normalization must be 'gsdn' or 'gdn', not "
                       f"{normalization!r}")
    m = latent_channels
    self.num_filters, self.latent_channels = num_filters, m
    self.hyper_channels = hyper_channels
    self.normalization = normalization
    self.analysis, self.synthesis, h_a, h_s = transforms(
        num_filters, m, hyper_channels, 2 * m, gsdn=normalization == "gsdn")
    self.latent_codec = hyperprior(hyper_channels, h_a, h_s, GlobalReference(
        m, reference, reference_size, search_rows, warmup_steps,
        stage_weights, final_stage_weights, stage_combination,
        training_step=self.training_step))

  def get_config(self):
    codec = self.latent_codec.y_codec
    return dict(super().get_config(), num_filters=self.num_filters,
                latent_channels=self.latent_channels,
                hyper_channels=self.hyper_channels, reference=codec.reference,
                normalization=self.normalization,
                reference_size=codec.reference_size,
                search_rows=codec.search_rows,
                warmup_steps=codec.warmup_steps,
                stage_weights=codec.stage_weights,
                final_stage_weights=codec.final_stage_weights,
                stage_combination=codec.stage_combination)
