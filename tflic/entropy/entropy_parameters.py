"""The entropy-parameter path of the context models (Minnen, Ballé and
Toderici 2018, Fig. 4; Cheng et al. 2020, Fig. 2): a causal context φ from
ŷ (masked convolutions, raster order) and a pointwise network on [φ, ψ],
ψ = h_s(ẑ) the hyper features, that gives each element's distribution
parameters. Several such context + network branches may each give a share
of the parameters (Wen et al. 2019, §2.3: one for μ, one for σ on |ŷ|).
Also the integer conversion every parameter network uses (`convert_chain`,
`head`: h_s of the hyperprior too, `latent_codecs.hyperprior`).

One object, three forms made from the same layers:
- float (`call`): what training differentiates;
- integer, in parallel (`parallel`): after `freeze`, every layer is
  an integer network (`layers.integer`), calibrated on latents of real
  images; the parameters come out as integers (means in units of
  2^−MEAN_BITS, scale indices, mixture logits) and select coder rows by
  integer arithmetic only, so every machine codes with the same rows;
- integer, serial (`serial`, for `autoregressive.raster_scan`): the same
  integers, position by position.
  The rows-above part of each masked convolution and the ψ part of the first
  network layer are computed for a whole row (or image) at once; per position
  only the left neighbours and the small 1×1 layers remain. Being exact
  integer arithmetic, the serial and parallel forms agree bit for bit.
"""

import math

import numpy as np
import tensorflow as tf

from tflic.entropy import autoregressive
from tflic.entropy import bisection
from tflic.entropy import integer_gaussian as ig
from tflic.entropy import mixture
from tflic.layers import integer

Y_MAX = max(-mixture.LOW, mixture.HIGH)  # |ŷ| for context inputs
FINE_BITS = 4  # "fine_log_scale": log σ in 2^−4 of a scale-grid step
_HEAD = {  # kind: (unit, offset, low, high) of the integer output
    "logit": (bisection.LOGIT_STEP, 0., -(1 << 16), 1 << 16),
    "mean": (2. ** -ig.MEAN_BITS, 0., -(1 << 16), 1 << 16),
    "log_scale": (ig.scale_step(), math.log(ig.SCALE_MIN), 0,
                  ig.NUM_SCALES - 1),
    "fine_log_scale": (ig.scale_step() / (1 << FINE_BITS),
                       math.log(ig.SCALE_MIN), -(1 << 20), 1 << 20),
    "sigma": (2. ** -ig.SIGMA_BITS, 0., 0,
              int(ig.SCALE_MAX) << ig.SIGMA_BITS),
}


def head(kinds):
  """`integer.convert` arguments of a last layer whose output channels are
  of these kinds: means in units of 2^−MEAN_BITS, scale-grid indices (or
  1/16 of them), σ itself in units of 2^−SIGMA_BITS, mixture logits in
  LOGIT_STEP."""
  spec = np.array([_HEAD[k] for k in kinds], np.float64)
  return dict(output_scale=spec[:, 0], output_offset=spec[:, 1],
              low=spec[:, 2], high=spec[:, 3])


def max_abs(tensors):
  """Per-channel largest magnitude over a list of tensors [..., C]."""
  return np.max([np.abs(t.numpy()).reshape(-1, t.shape[-1]).max(0)
                 for t in tensors], 0)


def convert_chain(layers, inputs, input_scale, input_max, head_spec=None):
  """Converts `layers` (applied in sequence) to integer layers, calibrated
  on the float `inputs` (a list of tensors). Hidden outputs get
  `integer.hidden_scale`s; `head_spec` (see `head`) fixes the last layer's.
  Returns (integer layers, output scale, output max, float outputs).
  Zero padding and cropping layers go with their convolutions
  (`integer.groups`)."""
  converted = []
  convolutions = integer.groups(layers)
  for i, (group, layer, padding) in enumerate(convolutions):
    outputs = inputs
    for part in group:
      outputs = [part(x) for x in outputs]
    if i == len(convolutions) - 1 and head_spec is not None:
      spec = head_spec
      limit = np.maximum(np.abs(spec["low"]), np.abs(spec["high"]))
    else:
      spec = dict(output_scale=integer.hidden_scale(max_abs(outputs)[None]))
      limit = integer.activation_max()
    converted.append(integer.convert(layer, input_scale, input_max,
                                     padding=padding, **spec))
    input_scale, input_max, inputs = spec["output_scale"], limit, outputs
  return converted, input_scale, input_max, inputs


def concatenated(*parts):
  """(scale, max) per channel of a concatenation of parts, each given as
  (channels, scale, max) with scalars or per-channel arrays."""
  scales = [np.broadcast_to(np.asarray(s, np.float64), [c]) for c, s, _ in parts]
  limits = [np.broadcast_to(np.asarray(m, np.float64), [c]) for c, _, m in parts]
  return np.concatenate(scales), np.concatenate(limits)


def dense_chain(layers, widths):
  """1×1 integer layers at one position, as a function of `parts` ([1, C_i]
  int32, of the given widths) and an optional `accumulator`: the first layer
  on the concatenation of the parts and of inputs whose share of its
  accumulator, with the bias, is `accumulator` (default: just the bias); the
  others in sequence. Values and matrices are read here once: call it
  outside the coding loop."""
  first, *rest = (layer.read() for layer in layers)
  bounds = np.cumsum([0] + list(widths))
  splits = [first.matrix(channels=(a, b)) for a, b in zip(bounds, bounds[1:])]
  rest = [(layer, layer.matrix()) for layer in rest]

  def apply(parts, accumulator=None):
    acc = first.bias if accumulator is None else accumulator
    for part, matrix in zip(parts, splits):
      acc = acc + tf.matmul(part, matrix)
    h = first.requantize(acc)
    for layer, matrix in rest:
      h = layer.requantize(tf.matmul(h, matrix) + layer.bias)
    return h
  return apply


class CausalContext:
  """Masked convolutions on ŷ (the first type A, each next on the previous
  one's output), float and integer, and their serial form: a buffer per
  input (ŷ first, or |ŷ| with `absolute`); per row, each layer's
  accumulators from the rows above (with the bias); per position the left
  neighbours (and the centre for type B)."""

  def __init__(self, layers, integer_layers, absolute=False):
    self.layers, self.integer_layers = layers, integer_layers
    self.absolute = absolute

  def prepare(self, y):
    """The context's input from ŷ: ŷ, or |ŷ|."""
    return tf.abs(y) if self.absolute else y

  @property
  def channels(self):
    return self.integer_layers[-1].output_channels

  @property
  def rows_above(self):
    """How many rows above a position its context reads, through every
    layer."""
    return sum(max(-dy for dy, _ in layer.offsets()) for layer in self.layers)

  def parallel(self, y_symbols):
    y_symbols = self.prepare(y_symbols)
    for layer in self.integer_layers:
      y_symbols = layer(y_symbols)
    return y_symbols

  def start(self, height, width):
    """(constants, buffers) for `row` and `step`: per layer its values and
    matrices (read once, outside the loop) and neighbour slots."""
    layers, buffers = [], []
    for layer, integer_layer in zip(self.layers, self.integer_layers):
      above, left, centre = autoregressive.split_offsets(layer.offsets())
      read = integer_layer.read()
      layers.append((read, read.matrix(above), read.matrix(left),
                     read.matrix([(0, 0)]) if centre else None,
                     tf.reshape(autoregressive.neighbour_slots(
                         height, width, above), [height, -1]),
                     autoregressive.neighbour_slots(height, width, left)))
      buffers.append(autoregressive.buffer(height * width,
                                           layer.kernel.shape[2]))
    return (layers, width), buffers

  @staticmethod
  def row(y, constants, buffers):
    """Each layer's accumulators of row y from the rows above, with bias."""
    layers, width = constants
    accumulators = []
    for (layer, above, _, _, above_slots, _), values in zip(layers, buffers):
      gathered = tf.reshape(values.gather(above_slots[y]), [width, -1])
      accumulators.append(tf.matmul(gathered, above) + layer.bias)
    return accumulators

  @staticmethod
  def step(p, x, accumulators, constants, buffers):
    """→ (the context at p [1, C] int32, buffers with the intermediate
    outputs at p written)."""
    layers, _ = constants
    buffers = list(buffers)
    context = None
    for i, ((layer, _, left, centre, _, left_slots), acc) in enumerate(
        zip(layers, accumulators)):
      acc = acc[x][None] + tf.matmul(
          tf.reshape(buffers[i].gather(left_slots[p]), [1, -1]), left)
      if centre is not None:
        acc += tf.matmul(context, centre)
      context = layer.requantize(acc)
      if i + 1 < len(buffers):
        buffers[i + 1] = buffers[i + 1].write(p + 1, context[0])
    return context, buffers


def kinds(split, parameters):
  """The kind ("logit", "mean", "log_scale") of each of `parameters`
  output channels of a network whose outputs `split` cuts into (logits or
  None, means, log σ)."""
  logits, means, log_scales = split(tf.range(parameters)[None])
  result = np.empty(parameters, object)
  for kind, index in (("logit", logits), ("mean", means),
                      ("log_scale", log_scales)):
    if index is not None:
      result[index.numpy().reshape(-1)] = kind
  return result


def distribution(split, params):
  """Integer parameters → what the coder takes: (means, scales) for K = 1
  (`GaussianTable`), else (logits, means, scales) [..., C, K]
  (`BisectionCoder`)."""
  logits, means, log_scales = split(params)
  if logits is None:
    return means[..., 0], log_scales[..., 0]
  return logits, means, log_scales


class EntropyParameters(tf.keras.layers.Layer):
  """Context + network branches: each a causal context (masked
  convolutions, the first type A on ŷ, or on |ŷ| if `absolute`, each next
  one on the previous one's output) and a network (a Sequential of 1×1
  convolutions) on [φ, ψ] (φ: the context's last output, ψ: the hyper
  features); the branches' outputs are concatenated into the parameters,
  which `split` cuts into (logits or None, means, log σ), each [..., C, K],
  of the mixture (K = 1: a Gaussian) they stand for. One branch: Minnen
  2018's context model; two: the separate mean and scale models of Wen et
  al. 2019 (§2.3)."""

  def __init__(self, branches, split, **kwargs):
    super().__init__(**kwargs)
    self.contexts = [list(c) for c, _, _ in branches]
    self.networks = [n for _, n, _ in branches]
    self.absolute = [a for _, _, a in branches]
    if self.absolute[:1] == [True]:
      raise ValueError("the first branch's context must read ŷ itself")
    self.split = split

  def call(self, psi, y_hat, context_mask=None):
    """Float parameters [B, H, W, P] from ψ and ŷ (training); the context
    is zeroed where `context_mask` is 0 (the checkerboard's anchors)."""
    outputs = []
    for context, network, absolute in zip(self.contexts, self.networks,
                                          self.absolute):
      phi = tf.abs(y_hat) if absolute else y_hat
      for layer in context:
        phi = layer(phi)
      if context_mask is not None:
        phi *= context_mask
      outputs.append(network(tf.concat([phi, psi], -1)))
    return tf.concat(outputs, -1)

  # -- conversion -------------------------------------------------------------
  def freeze(self, y_hats, psis, psi_scale, psi_max):
    """Converts the branches to integer networks, calibrated on lists of ŷ
    and float ψ of real images; ψ's integers stand for ψ / psi_scale, at
    most psi_max."""
    widths = [n.layers[-1].filters for n in self.networks]
    kind = np.split(kinds(self.split, sum(widths)), np.cumsum(widths)[:-1])
    causals, integer_contexts, integer_networks = [], [], []
    for branch, network in enumerate(self.networks):
      absolute = self.absolute[branch]
      layers, scale, limit, contexts = convert_chain(
          self.contexts[branch],
          [tf.abs(y) if absolute else y for y in y_hats], 1., Y_MAX)
      causals.append(CausalContext(self.contexts[branch], layers, absolute))
      integer_contexts.append(layers)
      integer_networks.append(convert_chain(
          network.layers,
          [tf.concat(pair, -1) for pair in zip(contexts, psis)],
          *concatenated((contexts[0].shape[-1], scale, limit),
                        (psis[0].shape[-1], psi_scale, psi_max)),
          head(kind[branch]))[0])
    # Assigned whole, so that Keras tracks the new layers' variables.
    self.integer_contexts = integer_contexts
    self.integer_networks = integer_networks
    self.causals = causals

  @property
  def rows_above(self):
    """How many rows above a position its parameters read."""
    return max(c.rows_above for c in self.causals)

  # -- integer form, in parallel ----------------------------------------------
  def parallel(self, y_symbols, psi, where=None):
    """Integer parameters [B, H, W, P] from ŷ (int32) and ψ, all at once.
    With `where` ([n, 2] rows and columns of batch item 0): [n, P] at those
    positions only, the pointwise network run there only. `y_symbols` None:
    no context (φ = 0, the checkerboard's anchors)."""
    def pick(t):
      return t if where is None else tf.gather_nd(t[0], where)[None, None]
    outputs = []
    for causal, network in zip(self.causals, self.integer_networks):
      first, *rest = network
      c = causal.channels
      acc = first.accumulate(pick(psi), (c, first.kernel.shape[2]))
      if y_symbols is not None:
        acc += first.accumulate(pick(causal.parallel(y_symbols)), (0, c),
                                bias=False)
      x = first.requantize(acc)
      for layer in rest:
        x = layer(x)
      outputs.append(x)
    params = tf.concat(outputs, -1)
    return params if where is None else params[0, 0]

  def parallel_rows(self, y_symbols, psi_rows, start, stop):
    """`parallel` for rows [start, stop) only (the same integers), from the
    rows of ŷ their context reads and ψ_rows(first, stop): memory bounded
    by the band, not the image."""
    first = tf.maximum(start - self.rows_above, 0)
    params = self.parallel(y_symbols[:, first:stop], psi_rows(first, stop))
    return params[:, start - first:]

  # -- integer form, serial (autoregressive.raster_scan) ----------------------
  def serial(self, psi_rows, height, width):
    """The `autoregressive.Scan` of the parameters, ψ given by rows
    (psi_rows(start, stop) → [1, stop − start, w, ·] integers): each
    branch's causal context position by position, ψ's part of its network's
    first layer computed per band of rows."""
    branches, state = [], []
    for causal, network in zip(self.causals, self.integer_networks):
      constants, buffers = causal.start(height, width)
      branches.append((causal, constants, network[0],
                       dense_chain(network, [causal.channels])))
      state.append(buffers)

    def band(start, stop):
      psi = psi_rows(start, stop)
      return [first.accumulate(psi, (causal.channels,
                                     first.kernel.shape[2]))[0]
              for causal, _, first, _ in branches]

    def row(y, state, band_features, start):
      return [(causal.row(y, constants, buffers), psi[y - start]) for
              (causal, constants, _, _), buffers, psi in zip(
                  branches, state, band_features)]

    def step(y, x, rows, state):
      p = y * width + x
      outputs, state = [], list(state)
      for i, ((causal, constants, _, network), (accumulators, psi_row)) in (
          enumerate(zip(branches, rows))):
        context, state[i] = causal.step(p, x, accumulators, constants,
                                        state[i])
        outputs.append(network([context], psi_row[x][None])[0])

      def finish(value):
        return [[buffers[0].write(p + 1, causal.prepare(value))] + buffers[1:]
                for (causal, *_), buffers in zip(branches, state)]
      return distribution(self.split, tf.concat(outputs, -1)), finish

    def decoded(state):
      return tf.reshape(state[0][0].stack()[1:], [height, width, -1])
    return autoregressive.Scan(state, band, row, step, decoded)
