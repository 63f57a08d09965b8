"""Qian et al. 2021, "Learning accurate entropy model with global reference
for image compression" (ICLR 2021, Figs. 3 and 5): the `qian2021` model.

The joint model's transforms with GSDN/IGSDN (eq. 5) instead of GDN/IGDN,
and an entropy model that adds evidence in stages (Fig. 5):
  1. context: 5×5 masked convolution → (μ₁, σ₁);
  2. + global reference (`entropy.global_reference`): the relevant latents
     of the most similar earlier patch, their expert weighted by S·U → (μ₂, σ₂);
  3. + hyperprior → (μ₃, σ₃), the only stage that codes.
Each stage's network sees the features of the stages before it and its own
estimate is combined with theirs as a product of Gaussian experts
(log-sum-exp of the log-precisions). Training minimizes a weighted sum of the
three stages' rates: `stage_weights` for `warmup_steps`, then
`final_stage_weights`. `reference=False` (no stage 2) and
`normalization="gdn"` give the paper's ablations.
"""

import tensorflow as tf

from tflic.entropy import global_reference as gr
from tflic.entropy import mixture
from tflic.entropy.autoregressive import neighbour_slots
from tflic.layers.masked_conv import MaskedConv2D, causal_offsets
from tflic.models.context_model import (ContextModel, bits, dense_layers,
                                        entropy_parameters, quantize,
                                        run_dense, scale)
from tflic.models.hyperprior import transforms


def _gaussian(mean, log_precision):
  """(weights, means, scales) [..., M, 1] of one Gaussian per element."""
  mean = mean[..., None]
  return tf.ones_like(mean), mean, scale(-.5 * log_precision)[..., None]


def _expert(params):
  """A stage network's output (μ, log σ) → (μ, log-precision = −2 log σ)."""
  mean, log_scale = tf.split(params, 2, axis=-1)
  return mean, -2. * log_scale


class Qian2021(ContextModel):
  """Streams: [ẑ (factorized prior), ŷ (stage-3 Gaussian, serial coder)]."""

  def __init__(self, num_filters=192, latent_channels=192, hyper_channels=192,
               reference=True, normalization="gsdn", reference_size=3,
               search_rows=0, warmup_steps=100000,
               stage_weights=(.3, .3, .4), final_stage_weights=(.1, .1, .8),
               lmbda=0.01, distortion="mse", **kwargs):
    m = latent_channels
    super().__init__(m, hyper_channels, 2 * m, lmbda=lmbda,
                     distortion=distortion, **kwargs)
    if normalization not in ("gsdn", "gdn"):
      raise ValueError(f"normalization must be 'gsdn' or 'gdn', not "
                       f"{normalization!r}")
    if reference_size < 3 or reference_size % 2 == 0:
      raise ValueError(f"reference_size must be odd and >= 3, not "
                       f"{reference_size}")
    if search_rows < 0:
      raise ValueError(f"search_rows must be >= 0, not {search_rows}")
    self.num_filters = num_filters
    self.reference = bool(reference)
    self.normalization = normalization
    self.reference_size = k = int(reference_size)
    self.search_rows = int(search_rows)
    self.warmup_steps = int(warmup_steps)
    self.stage_weights = [float(w) for w in stage_weights]
    self.final_stage_weights = [float(w) for w in final_stage_weights]
    for weights in (self.stage_weights, self.final_stage_weights):
      if len(weights) != 3 or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"stage weights must be 3 numbers >= 0: {weights}")
    (self.analysis, self.synthesis, self.hyper_analysis,
     self.hyper_synthesis) = transforms(num_filters, m, hyper_channels, 2 * m,
                                        gsdn=normalization == "gsdn")
    # Stage 1 is ContextModel's `entropy_parameters`, on the context alone.
    if self.reference:
      self.reference_model = MaskedConv2D(2 * m, k, "B", name="reference_model")
      self.reference_parameters = entropy_parameters(
          m, 2 * m, "reference_parameters", "rp")
    self.hyper_parameters = entropy_parameters(
        m, 2 * m, "hyper_parameters", "hp")
    self.search_offsets = causal_offsets(k, k, "A")
    self.relevant_offsets = causal_offsets(k, k, "B")

  def distribution(self, params):
    return _gaussian(*_expert(params))

  # -- the three stages, in parallel (training, estimates) ------------------------
  def stages(self, y_hat, hyper):
    """[(μ_k, log-precision_k)] of stages 1..3 for ŷ [B, H, W, M] and the
    hyper features; every input at a position comes from earlier ones."""
    context = self.context_model(y_hat)
    estimates = [_expert(self.entropy_parameters(context))]
    inputs = [context]
    if self.reference:
      relevant, reliability = self.reference_features(y_hat, *estimates[0])
      mean, log_precision = _expert(
          self.reference_parameters(tf.concat([context, relevant], -1)))
      estimates.append(gr.combine(*estimates[-1], mean,
                                  log_precision + reliability))
      inputs.append(relevant)
    estimates.append(gr.combine(*estimates[-1], *_expert(
        self.hyper_parameters(tf.concat(inputs + [hyper], -1)))))
    return estimates

  def reference_features(self, y_hat, mean, log_precision):
    """The relevant latents' features at each position and log(S⁺·U)."""
    shape = tf.shape(y_hat)
    batch, height, width = shape[0], shape[1], shape[2]
    patches = gr.normalize(gr.shifted(y_hat, self.search_offsets))
    patches = tf.reshape(patches, [batch, height * width, -1])
    index, s, valid = gr.search(patches, width, self.search_rows)
    features = self.reference_model(y_hat)
    relevant = tf.where(
        valid[..., None],
        tf.gather(tf.reshape(features, [batch, height * width, -1]), index,
                  batch_dims=1),
        self.reference_model.bias)  # no reference: the conv of zeros
    p = mixture.likelihood(y_hat, *_gaussian(mean, log_precision))
    u = tf.reshape(tf.reduce_mean(p, -1), [batch, height * width])
    u = tf.where(valid, tf.gather(u, index, batch_dims=1), 0.)
    reliability = gr.reliability(tf.stop_gradient(s), tf.stop_gradient(u))
    return (tf.reshape(relevant, tf.shape(features)),
            tf.reshape(reliability, [batch, height, width, 1]))

  def _weights(self):
    """The rate weights of the stages present, by training step."""
    warm, final = self.stage_weights, self.final_stage_weights
    if not self.reference:  # no stage 2: the others keep their proportion
      warm, final = ([w[0], w[2]] for w in (warm, final))
    optimizer = getattr(self, "optimizer", None)
    step = optimizer.iterations if optimizer else self.warmup_steps
    warm_share = tf.cast(step < self.warmup_steps, tf.float32)
    return [warm_share * a / sum(warm) + (1. - warm_share) * b / sum(final)
            for a, b in zip(warm, final)]

  def _estimates(self, x, training):
    """y, ŷ, the bits of ẑ and the stages' estimates for an image batch."""
    y = self.analysis(x)
    z_hat, z_bits = self.hyper_prior(self.hyper_analysis(y), training=training)
    y_hat = quantize(y)
    return y, y_hat, z_bits, self.stages(y_hat, self.hyper_synthesis(z_hat))

  def call(self, x, training=False):
    y, y_hat, z_bits, estimates = self._estimates(x, training)
    if training:
      values = y + tf.random.uniform(tf.shape(y), -.5, .5)
      y_bits = tf.add_n([w * bits(values, *_gaussian(*e))
                         for w, e in zip(self._weights(), estimates)])
    else:  # the rate of the coded file: stage 3 only
      y_bits = bits(y_hat, *_gaussian(*estimates[-1]))
    return self.synthesis(y_hat), z_bits + y_bits

  def stage_bits(self, x):
    """Bits of ŷ under each stage's parameters (stage 2: None without the
    reference): how much each stage's evidence saves on the same latents."""
    _, y_hat, _, estimates = self._estimates(x, training=False)
    result = [tf.reduce_sum(bits(y_hat, *_gaussian(*e))) for e in estimates]
    return result if self.reference else [result[0], None, result[1]]

  # -- the serial coder -----------------------------------------------------------
  def _coding_functions(self, height, width):
    """`stages` at one position, for `raster_scan`. Per row: the context of
    the rows above and the hyper features' part of stage 3. Per position:
    the left neighbours, stage 1, the incremental search against the kept
    normalized patches, stage 2, stage 3. After ŷ_p is decoded, its
    confidence under stage 1 is kept for later positions' U."""
    m = self.latent_channels
    context_above, left_kernel = self._context_kernels()
    stage1 = dense_layers(self.entropy_parameters.layers)
    first, *rest = self.hyper_parameters.layers
    first_kernel = tf.reshape(first.kernel, first.kernel.shape[2:])
    own_kernel, hyper_kernel = tf.split(first_kernel, [-1, 2 * m], 0)
    stage3 = dense_layers(rest)

    def rows(above, hyper):
      return tf.concat([context_above(above),
                        tf.matmul(hyper, hyper_kernel) + first.bias], -1)

    if self.reference:
      stage2 = dense_layers(self.reference_parameters.layers)
      relevant_kernel = self.reference_model.offset_kernel()
      search_slots = neighbour_slots(height, width, self.search_offsets)
      # Row 0: no reference (all slots 0, zeros); row j + 1: position j.
      relevant_slots = tf.concat([
          tf.zeros([1, len(self.relevant_offsets)], tf.int32),
          neighbour_slots(height, width, self.relevant_offsets)], 0)
      count = height * width
      state = (tf.TensorArray(tf.float32, size=count, clear_after_read=False,
                              element_shape=[len(self.search_offsets) * m]),
               tf.TensorArray(tf.float32, size=count + 1, element_shape=[],
                              clear_after_read=False).write(0, 0.))
    else:
      state = ()

    def step(left, feature, p, buffer, state):
      context = feature[None, :2 * m] + tf.matmul(left[None], left_kernel)
      estimate = _expert(run_dense(stage1, context))
      stage1_estimate, inputs = estimate, [context]
      if self.reference:
        patches, confidence = state
        patch = gr.normalize(tf.reshape(buffer.gather(search_slots[p]), [-1]))
        start = (tf.maximum(0, (p // width - self.search_rows) * width)
                 if self.search_rows else 0)
        index, s, valid = gr.search_step(
            patches.gather(tf.range(start, p)), patch, start)
        slot = tf.where(valid, index + 1, 0)
        relevant = tf.matmul(
            tf.reshape(buffer.gather(relevant_slots[slot]), [1, -1]),
            relevant_kernel) + self.reference_model.bias
        reliability = gr.reliability(s, confidence.read(slot))
        mean, log_precision = _expert(
            run_dense(stage2, tf.concat([context, relevant], -1)))
        estimate = gr.combine(*estimate, mean, log_precision + reliability)
        inputs.append(relevant)
      h = first.activation(tf.matmul(tf.concat(inputs, -1), own_kernel) +
                           feature[None, 2 * m:])
      estimate = gr.combine(*estimate, *_expert(run_dense(stage3, h)))

      def finish(value):
        if not self.reference:
          return state
        p_hat = mixture.likelihood(value[None], *_gaussian(*stage1_estimate))
        return (patches.write(p, patch),
                confidence.write(p + 1, tf.reduce_mean(p_hat)))
      return _gaussian(estimate[0][0], estimate[1][0]), finish
    return rows, step, state

  def get_config(self):
    return dict(super().get_config(), num_filters=self.num_filters,
                latent_channels=self.latent_channels,
                hyper_channels=self.hyper_channels, reference=self.reference,
                normalization=self.normalization,
                reference_size=self.reference_size,
                search_rows=self.search_rows, warmup_steps=self.warmup_steps,
                stage_weights=self.stage_weights,
                final_stage_weights=self.final_stage_weights)
