"""The global reference entropy model of Qian et al. 2021, "Learning
accurate entropy model with global reference for image compression" (ICLR
2021, Fig. 5), as a y codec given the hyper features ψ. Stages that add
evidence:
  1. context: 5×5 masked convolution → (μ₁, σ₁);
  2. + global reference (`entropy.global_reference`): the relevant latents
     of the most similar earlier patch, their expert weighted by S·U → (μ₂, σ₂);
  3. + hyperprior → (μ₃, σ₃), the only stage that codes.
Each stage's network sees the features of the stages before it. How its
estimate joins theirs is `stage_combination`:
  - "experts": a product of Gaussian experts (log-sum-exp of the
    log-precisions; the reference expert's precision times S·U): the paper's
    text ("log-sum-exp" for the combination);
  - "mixture" (default): the stages' (μ, σ) are the components of one
    discretized Gaussian mixture, with weight logits from the stage networks
    and log S + log U added to the reference component's logit: the authors'
    code ("the output of the global reference is multiplied by S and U").
    Stage k is the mixture of components 1..k.
Training minimizes a weighted sum of the three stages' rates: `stage_weights`
for `warmup_steps`, then `final_stage_weights`; `reference=False` (no stage
2) gives the paper's ablation.

Coding runs every stage on integers (`freeze`): the three stage networks and
the masked convolutions as integer networks, the search, S, U and the
combination with `global_reference.IntegerReference`; ŷ is coded under the
stage-3 Gaussian (`GaussianTable`) or mixture (`BisectionCoder`), position by
position by the encoder as by the decoder (the search is incremental).
"""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import autoregressive
from tflic.entropy import bisection
from tflic.entropy import entropy_parameters as ep
from tflic.entropy import global_reference as gr
from tflic.entropy import integer_gaussian as ig
from tflic.entropy import mixture
from tflic.entropy.mixture import bits, noisy, quantize, scale, softmax
from tflic.latent_codecs.base import LatentCodec
from tflic.latent_codecs.raster_context import network
from tflic.layers.masked_conv import MaskedConv2D, causal_offsets

COMBINATIONS = ("experts", "mixture")


def _gaussian(mean, log_precision):
  """(weights, means, scales) [..., M, 1] of one Gaussian per element."""
  mean = mean[..., None]
  return tf.ones_like(mean), mean, scale(-.5 * log_precision)[..., None]


def _expert(params):
  """A stage network's output (μ, log σ) → (μ, log-precision = −2 log σ)."""
  mean, log_scale = tf.split(params, 2, axis=-1)
  return mean, -2. * log_scale


def _mixture(components):
  """(weights, means, scales) [..., M, K] of the mixture of components
  [(μ, log σ, weight logit)] [..., M] each."""
  means, log_scales, logits = (tf.stack(t, -1) for t in zip(*components))
  return softmax(logits), means, scale(log_scales)


class GlobalReference(LatentCodec):
  """latent_channels: M; training_step: a function → the optimizer's step
  (or None outside training), for the stage weights' schedule."""

  serial = True

  def __init__(self, latent_channels, reference=True, reference_size=3,
               search_rows=0, warmup_steps=100000, stage_weights=(.3, .3, .4),
               final_stage_weights=(.1, .1, .8), stage_combination="mixture",
               training_step=None, key="y_hat", **kwargs):
    super().__init__(key=key, **kwargs)
    if stage_combination not in COMBINATIONS:
      raise ValueError(f"stage_combination must be one of {COMBINATIONS}, "
                       f"not {stage_combination!r}")
    if reference_size < 3 or reference_size % 2 == 0:
      raise ValueError(f"reference_size must be odd and >= 3, not "
                       f"{reference_size}")
    if search_rows < 0:
      raise ValueError(f"search_rows must be >= 0, not {search_rows}")
    self.latent_channels = m = latent_channels
    self.stage_combination = stage_combination
    self.reference = bool(reference)
    self.reference_size = k = int(reference_size)
    self.search_rows = int(search_rows)
    self.warmup_steps = int(warmup_steps)
    self.stage_weights = [float(w) for w in stage_weights]
    self.final_stage_weights = [float(w) for w in final_stage_weights]
    for weights in (self.stage_weights, self.final_stage_weights):
      if len(weights) != 3 or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"stage weights must be 3 numbers >= 0: {weights}")
    self.training_step = training_step
    # Per stage and channel: (μ, log σ), + a weight logit for the mixture.
    outputs = (3 if stage_combination == "mixture" else 2) * m
    self.context_model = MaskedConv2D(2 * m, 5, "A", name="context_model")
    self.entropy_parameters = network(m, outputs)
    if self.reference:
      self.reference_model = MaskedConv2D(2 * m, k, "B", name="reference_model")
      self.reference_parameters = network(m, outputs, "reference_parameters",
                                          "rp")
    self.hyper_parameters = network(m, outputs, "hyper_parameters", "hp")
    self.search_offsets = causal_offsets(k, k, "A")
    self.relevant_offsets = causal_offsets(k, k, "B")
    gr.check_patch_size(len(self.search_offsets) * m)
    self.symbol_coder = None

  def split_parameters(self, params):
    """A stage network's output → (logit or None, μ, log σ) [..., M, 1]."""
    if self.stage_combination == "mixture":
      mean, log_scale, logit = tf.split(params, 3, axis=-1)
      return logit[..., None], mean[..., None], log_scale[..., None]
    mean, log_scale = tf.split(params, 2, axis=-1)
    return None, mean[..., None], log_scale[..., None]

  # -- the three stages, in parallel (training, estimates) ------------------------
  def stages(self, y_hat, hyper):
    """The distributions (weights, means, scales) [..., M, K] of stages 1..3
    for ŷ [B, H, W, M] and the hyper features; every input at a position
    comes from earlier ones."""
    context = self.context_model(y_hat)
    parts = [self.entropy_parameters(context)]
    inputs = [context]
    reliability = None
    if self.reference:
      relevant, reliability = self.reference_features(
          y_hat, self._combine(parts[:1]))
      parts.append(self.reference_parameters(tf.concat([context, relevant],
                                                       -1)))
      inputs.append(relevant)
    parts.append(self.hyper_parameters(tf.concat(inputs + [hyper], -1)))
    return [self._combine(parts[:k], reliability)
            for k in range(1, len(parts) + 1)]

  def _combine(self, parts, reliability=None):
    """The distribution of the stage networks' outputs `parts` (stage 1,
    [2,] …), combined by `stage_combination`; the reference stage (the
    second of three) weighted by `reliability` = log(S⁺·U)."""
    if self.stage_combination == "mixture":
      components = []
      for i, params in enumerate(parts):
        logit, mean, log_scale = (t[..., 0] for t in
                                  self.split_parameters(params))
        if i == 1 and self.reference:
          logit += reliability
        components.append((mean, log_scale, logit))
      return _mixture(components)
    estimate = _expert(parts[0])
    for i, params in enumerate(parts[1:], 1):
      mean, log_precision = _expert(params)
      if i == 1 and self.reference:
        log_precision += reliability
      estimate = gr.combine(*estimate, mean, log_precision)
    return _gaussian(*estimate)

  def reference_features(self, y_hat, first):
    """The relevant latents' features at each position and log(S⁺·U),
    given stage 1's distribution `first`."""
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
    p = mixture.likelihood(y_hat, *first)
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
    step = self.training_step() if self.training_step else None
    step = self.warmup_steps if step is None else step
    warm_share = tf.cast(step < self.warmup_steps, tf.float32)
    return [warm_share * a / sum(warm) + (1. - warm_share) * b / sum(final)
            for a, b in zip(warm, final)]

  def call(self, latent, training=False, side=None):
    y_hat = quantize(latent)
    estimates = self.stages(y_hat, side)
    if training:
      values = noisy(latent)
      y_bits = tf.add_n([w * bits(values, *e)
                         for w, e in zip(self._weights(), estimates)])
    else:  # the rate of the coded file: stage 3 only
      y_bits = bits(y_hat, *estimates[-1])
    return {self.key: y_hat}, y_bits

  def measures(self, latent, side=None):
    """Bits of ŷ under each stage's parameters (stage 2: None without the
    reference): how much each stage's evidence saves on the same latents."""
    estimates = self.stages(quantize(latent), side)
    result = [tf.reduce_sum(bits(quantize(latent), *e)) for e in estimates]
    return dict(stage_bits=result if self.reference
                else [result[0], None, result[1]])

  def hyper_head(self, channels):
    del channels
    return None

  # -- coding: the stages on integers ------------------------------------------
  def freeze(self, latents, side=None):
    """Converts the context and reference convolutions and the three stage
    networks to integer networks, calibrated on `latents` and their ψ."""
    hypers, hyper_scale, hyper_max = side
    m = self.latent_channels
    y_hats = [quantize(y) for y in latents]
    self.integer_context, context_scale, context_max, contexts = (
        ep.convert_chain([self.context_model], y_hats, 1., ep.Y_MAX))
    self.causal = ep.CausalContext([self.context_model], self.integer_context)
    mixed = self.stage_combination == "mixture"
    head = ep.head(["mean"] * m + ["log_scale" if mixed else "fine_log_scale"]
                   * m + ["logit"] * m * mixed)
    parts = [(2 * m, context_scale, context_max)]
    inputs = [contexts]
    self.integer_stages = [ep.convert_chain(
        self.entropy_parameters.layers, contexts, context_scale, context_max,
        head)[0]]
    if self.reference:
      self.integer_reference_model, relevant_scale, relevant_max, _ = (
          ep.convert_chain([self.reference_model], y_hats, 1., ep.Y_MAX))
      relevants = [self.reference_features(
          y_hat, self._combine([self.entropy_parameters(context)]))[0]
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
    self.symbol_coder = (bisection.BisectionCoder() if mixed
                         else ig.GaussianTable())

  def _scan(self, handle, psi_rows, height, width, symbols=None):
    scan = self._serial(psi_rows, height, width)
    return autoregressive.raster_scan(scan, self.symbol_coder, handle, height,
                                      width, symbols)

  def encode(self, latent, side=None):
    """The encoder runs the serial loop too (the search is incremental)."""
    symbols = mixture.symbols(latent)
    shape = tf.shape(symbols)
    handle = tfc.create_range_encoder([], self.symbol_coder.table)
    handle = self._scan(handle, side, shape[1], shape[2], symbols[0])[0]
    return ([tfc.entropy_encode_finalize(handle)],
            {self.key: tf.cast(symbols, tf.float32)})

  def decode(self, streams, shape, side=None):
    handle = tfc.create_range_decoder(streams[0], self.symbol_coder.table)
    symbols = self._scan(handle, side, shape[0], shape[1])[1]
    return {self.key: tf.cast(symbols, tf.float32)[None]}

  def _serial(self, psi_rows, height, width):
    """`stages` at one position on integers, for `raster_scan`. Per band of
    rows: the hyper features' share of stage 3's first layer. Per row: the
    context of the rows above. Per position: the left neighbours, stage 1,
    the incremental search against the kept patches, stage 2, stage 3.
    After ŷ_p is decoded, its patch and its confidence under stage 1 are
    kept for later positions."""
    m = self.latent_channels
    causal = self.causal
    reference = self.integer_reference
    constants, buffers = causal.start(height, width)
    # Their inputs: the context; + the relevant latents; + the hyper features
    # (through the accumulator).
    inputs = [2 * m] + [2 * m] * self.reference
    stages = [ep.dense_chain(layers, widths) for layers, widths in zip(
        self.integer_stages, [[2 * m]] + [inputs] * self.reference + [inputs])]
    last = self.integer_stages[-1][0]

    def band(start, stop):
      return last.accumulate(psi_rows(start, stop), (
          last.kernel.shape[2] - 2 * m, last.kernel.shape[2]))[0]
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

    mixed = self.stage_combination == "mixture"

    def split(h):
      """A stage's integers: (μ, log σ (fine units; mixture: scale index)
      [, weight logit]), [M] each."""
      return tf.split(h[0], 3 if mixed else 2)

    def scale_index(part):
      return part[1] if mixed else reference.scale_index(part[1])

    def combine(parts, s2, u):
      """The coder's parameters from the stages' integers: `_combine`."""
      if mixed:
        means, scales, logits = ([part[i] for part in parts] for i in range(3))
        if self.reference:
          logits[1] += reference.weight_logit(s2, u)
        return tf.stack(logits, -1), tf.stack(means, -1), tf.stack(scales, -1)
      mean, fine = parts[0]
      for i, (mean_i, fine_i) in enumerate(parts[1:], 1):
        if i == 1 and self.reference:
          fine_i += reference.reliability(s2, u)
        mean, fine = reference.combine(mean, fine, mean_i, fine_i)
      return mean, reference.scale_index(fine)

    def row(y, state, hyper, start):
      return causal.row(y, constants, state[0]), hyper[y - start]

    def step(y, x, row, state):
      p = y * width + x
      accumulators, hyper_row = row
      context, buffers = causal.step(p, x, accumulators, constants, state[0])
      parts, inputs, s2, u = [split(stages[0]([context]))], [context], None, None
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
        u = confidence.read(slot)
        parts.append(split(stages[1]([context, relevant])))
        inputs.append(relevant)
      parts.append(split(stages[-1](inputs, hyper_row[x][None])))

      def finish(value):
        ys = [buffers[0].write(p + 1, value)] + buffers[1:]
        if not self.reference:
          return (ys,)
        kept = reference.confidence(value, parts[0][0], scale_index(parts[0]))
        return (ys, patches.write(p, patch), norms.write(p, norm),
                confidence.write(p + 1, kept))
      return combine(parts, s2, u), finish

    def decoded(state):
      return tf.reshape(state[0][0].stack()[1:], [height, width, -1])
    return autoregressive.Scan(state, band, row, step, decoded)

  def legacy_children(self):
    children = dict(context_model=self.context_model,
                    entropy_parameters=self.entropy_parameters,
                    hyper_parameters=self.hyper_parameters)
    if self.reference:
      children.update(reference_model=self.reference_model,
                      reference_parameters=self.reference_parameters)
    return children
