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

Coding runs every stage on integers (`freeze`): the three stage networks,
the masked convolutions and h_s as integer networks, the search, S, U and the
combination with `global_reference.IntegerReference`.
"""

import tensorflow as tf

from tflic.entropy import autoregressive
from tflic.entropy import entropy_parameters as ep
from tflic.entropy import global_reference as gr
from tflic.entropy import integer_gaussian as ig
from tflic.entropy import mixture
from tflic.layers.masked_conv import MaskedConv2D, causal_offsets
from tflic.models.context_model import (ContextModel, bits,
                                        entropy_parameters, noisy, quantize,
                                        scale)
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
    super().__init__(
        transforms(num_filters, m, hyper_channels, 2 * m,
                   gsdn=normalization == "gsdn"),
        m, hyper_channels, 2 * m, lmbda=lmbda, distortion=distortion, **kwargs)
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
    # Stage 1 is ContextModel's `entropy_parameters`, on the context alone.
    if self.reference:
      self.reference_model = MaskedConv2D(2 * m, k, "B", name="reference_model")
      self.reference_parameters = entropy_parameters(
          m, 2 * m, "reference_parameters", "rp")
    self.hyper_parameters = entropy_parameters(
        m, 2 * m, "hyper_parameters", "hp")
    self.search_offsets = causal_offsets(k, k, "A")
    self.relevant_offsets = causal_offsets(k, k, "B")

  def split_parameters(self, params):
    mean, log_scale = tf.split(params, 2, axis=-1)
    return None, mean[..., None], log_scale[..., None]

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
      values = noisy(y)
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

  # -- coding: the stages on integers ------------------------------------------
  def freeze(self, calibration):
    """Converts h_s, the context and reference convolutions and the three
    stage networks to integer networks, calibrated on `calibration`."""
    self.hyper_prior.freeze()
    m = self.latent_channels
    y_hats, z_hats = [], []
    for x in calibration:
      y = self.analysis(x)
      y_hats.append(quantize(y))
      z_hats.append(self.hyper_prior.coder.quantize(self.hyper_analysis(y)))
    path = self.parameter_path
    hyper_scale, hyper_max, hypers = path.freeze_hyper(
        z_hats, self.hyper_prior.offset)
    context_scale, context_max, contexts = path.freeze_context(y_hats)
    head = ep.head(["mean"] * m + ["fine_log_scale"] * m)
    parts = [(2 * m, context_scale, context_max)]
    inputs = [contexts]
    self.integer_stages = [ep.convert_chain(
        self.entropy_parameters.layers, contexts, context_scale, context_max,
        head)[0]]
    if self.reference:
      self.integer_reference_model, relevant_scale, relevant_max, _ = (
          ep.convert_chain([self.reference_model], y_hats, 1., ep.Y_MAX))
      relevants = [self.reference_features(
          y_hat, *_expert(self.entropy_parameters(context)))[0]
                   for y_hat, context in zip(y_hats, contexts)]
      parts.append((2 * m, relevant_scale, relevant_max))
      inputs.append(relevants)
      self.integer_stages.append(ep.convert_chain(
          self.reference_parameters.layers,
          [tf.concat(t, -1) for t in zip(*inputs)],
          *ep.concatenated(*parts), head)[0])
    parts.append((hypers[0].shape[-1], hyper_scale, hyper_max))
    inputs.append(hypers)
    self.integer_stages.append(ep.convert_chain(
        self.hyper_parameters.layers, [tf.concat(t, -1) for t in zip(*inputs)],
        *ep.concatenated(*parts), head)[0])
    self.integer_reference = gr.IntegerReference(ep.FINE_BITS)
    self.coder = ig.GaussianTable()

  def encode_y(self, handle, z_hat, y_symbols):
    """The encoder runs the serial loop too (the search is incremental)."""
    return self._scan(handle, z_hat, y_symbols)[0]

  def _scan(self, handle, z_hat, y_symbols=None):
    hyper = self.parameter_path.hyper(self.hyper_prior.symbols(z_hat))[0]
    height, width = tf.shape(hyper)[0], tf.shape(hyper)[1]
    scan = self._serial(hyper, height, width)
    return autoregressive.raster_scan(scan, self.coder, handle, height, width,
                                      y_symbols)

  def _serial(self, hyper, height, width):
    """`stages` at one position on integers, for `raster_scan`. Per row: the
    context of the rows above and the hyper features' share of stage 3's
    first layer. Per position: the left neighbours, stage 1, the incremental
    search against the kept patches, stage 2, stage 3. After ŷ_p is decoded,
    its patch and its confidence under stage 1 are kept for later
    positions."""
    m = self.latent_channels
    causal = self.parameter_path.causal
    reference = self.integer_reference
    constants, buffers = causal.start(height, width)
    # Their inputs: the context; + the relevant latents; + the hyper features
    # (through the accumulator).
    inputs = [2 * m] + [2 * m] * self.reference
    stages = [ep.dense_chain(layers, widths) for layers, widths in zip(
        self.integer_stages, [[2 * m]] + [inputs] * self.reference + [inputs])]
    last = self.integer_stages[-1][0]
    hyper = last.accumulate(hyper[None], (last.kernel.shape[2] - 2 * m,
                                          last.kernel.shape[2]))[0]
    count = height * width
    if self.reference:
      search_slots = autoregressive.neighbour_slots(height, width,
                                                    self.search_offsets)
      # Row 0: no reference (all slots 0, zeros); row j + 1: position j.
      relevant_slots = tf.concat([
          tf.zeros([1, len(self.relevant_offsets)], tf.int32),
          autoregressive.neighbour_slots(height, width, self.relevant_offsets)],
                                 0)
      relevant_model = self.integer_reference_model[0].read()
      relevant_kernel = relevant_model.matrix(self.relevant_offsets)
      size = len(self.search_offsets) * m
      state = (buffers,
               tf.TensorArray(tf.int32, size=count, element_shape=[size],
                              clear_after_read=False),
               tf.TensorArray(tf.int64, size=count, element_shape=[],
                              clear_after_read=False),
               tf.TensorArray(tf.int64, size=count + 1, element_shape=[],
                              clear_after_read=False).write(0, 0))
    else:
      state = (buffers,)

    def split(h):
      mean, fine = tf.split(h[0], 2)
      return mean, fine

    def row(y, state):
      return causal.row(y, constants, state[0]), hyper[y]

    def step(y, x, row, state):
      p = y * width + x
      accumulators, hyper_row = row
      context, buffers = causal.step(p, x, accumulators, constants, state[0])
      stage1 = split(stages[0]([context]))
      estimate, inputs = stage1, [context]
      if self.reference:
        _, patches, norms, confidence = state
        patch, norm = reference.patch(buffers[0].gather(search_slots[p]))
        start = (tf.maximum(0, (p // width - self.search_rows) * width)
                 if self.search_rows else 0)
        earlier = tf.range(start, p)
        index, s2, valid = reference.search_step(
            patches.gather(earlier), norms.gather(earlier), patch, norm, start)
        slot = tf.where(valid, index + 1, 0)
        relevant = relevant_model.requantize(tf.matmul(
            tf.reshape(buffers[0].gather(relevant_slots[slot]), [1, -1]),
            relevant_kernel) + relevant_model.bias)
        mean, fine = split(stages[1]([context, relevant]))
        fine += reference.reliability(s2, confidence.read(slot))
        estimate = reference.combine(*estimate, mean, fine)
        inputs.append(relevant)
      estimate = reference.combine(*estimate, *split(stages[-1](
          inputs, hyper_row[x][None])))

      def finish(value):
        ys = [buffers[0].write(p + 1, value)] + buffers[1:]
        if not self.reference:
          return (ys,)
        u = reference.confidence(value, stage1[0],
                                 reference.scale_index(stage1[1]))
        return (ys, patches.write(p, patch), norms.write(p, norm),
                confidence.write(p + 1, u))
      return (estimate[0], reference.scale_index(estimate[1])), finish

    def decoded(state):
      return tf.reshape(state[0][0].stack()[1:], [height, width, -1])
    return autoregressive.Scan(state, row, step, decoded)

  def get_config(self):
    return dict(super().get_config(), num_filters=self.num_filters,
                latent_channels=self.latent_channels,
                hyper_channels=self.hyper_channels, reference=self.reference,
                normalization=self.normalization,
                reference_size=self.reference_size,
                search_rows=self.search_rows, warmup_steps=self.warmup_steps,
                stage_weights=self.stage_weights,
                final_stage_weights=self.final_stage_weights)
