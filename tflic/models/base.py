"""The base of every model: the rate–distortion objective, the transforms
over tiles, and coding through the model's latent codec."""

import contextlib
import functools

from keras.src import backend as keras_backend  # Keras 2.14's name counters
import tensorflow as tf

from tflic import metrics
from tflic import tiling
from tflic.latent_codecs.slimd import SlimdCodec
from tflic.layers import gain_units
from tflic.layers.gain_units import GainUnits


@functools.cache
def _require_eager_outside_functions():
  """Refuses a TensorFlow imported in the state `tflic/__init__.py`
  describes (it traces models into other graphs than their eager form).
  Once per process, at the first model (not on import: running a function
  initializes the devices, which bin/train --logical_cpus configures)."""
  if not tf.function(lambda: tf.constant(
      tf.compat.v1.executing_eagerly_outside_functions()))():
    raise RuntimeError(
        "TensorFlow was first imported inside absl's app.run without "
        "TF2_BEHAVIOR=1: its tf.functions would compute other transforms "
        "and files. Import tflic (or tensorflow) before app.run, or set "
        "TF2_BEHAVIOR=1 in the environment.")


# Entropy coding, and every integer computation that selects its tables, runs
# here: so a GPU host codes the same files as a CPU one.
CODING_DEVICE = "/cpu:0"


@contextlib.contextmanager
def _fresh_names():
  """Within: Keras names new layers as in a fresh process (its per-process
  name counters set aside, restored after). A second model of a process
  would otherwise be "joint_1", and its layers' variables with it."""
  uids = keras_backend.get_default_graph_uid_map()
  saved = dict(uids)
  uids.clear()
  try:
    yield
  finally:
    uids.clear()
    uids.update(saved)


class CompressionModel(tf.keras.Model):
  """A learned image codec trained on L = R + λ·D (Ballé et al. 2017, eq. 2):
  the transforms and one latent codec (`tflic.latent_codecs`).

  R is the rate in bits per pixel, estimated with additive uniform noise; the
  synthesis sees straight-through rounded latents. D is the MSE on the 0..255
  scale (`distortion="mse"`) or 1 − MS-SSIM (`distortion="ms-ssim"`).

  `lmbdas` (variable rate): one model for every rate, λ per level, with gain
  units on y (`layers.gain_units`); a quality q ∈ [0, L − 1] (or the user's
  0–100, `QUALITY_RANGE`) chooses the rate, and the streams begin with q.

  Subclasses set `multiple` (input sides are padded to it), `pad_mode` (how:
  "edge" repeats the last row/column, "reflect" mirrors), `halo` (latent
  positions that cover the receptive fields of g_a and g_s, see `tiling`),
  and build `analysis`, `synthesis` and `latent_codec` (which codes y =
  analysis(x) and gives the latents the synthesis reads: "y_hat", and
  "z_hat" for hyperprior codecs). Images are float tensors in [0, 1] (or
  uint8 for coding), shape [1, H, W, 3] for coding.
  """

  multiple = 16
  pad_mode = "edge"
  halo = 3  # g_a and g_s of four 5×5 layers reach 2 positions (test_tiling)
  tiles = (None, None)  # tile sides (latent positions) of g_a and g_s
  # Peak memory of g_a's and g_s's tiles over their probes' largest layer
  # (`tiling.bytes_per_position`).
  overheads = (tiling.ANALYSIS_OVERHEAD, tiling.SYNTHESIS_OVERHEAD)
  # The class name its model identity was first written with
  # (`codec.fingerprint`); None: the class's own name.
  identity = None

  def __init__(self, lmbda=0.01, distortion="mse", lmbdas=None, **kwargs):
    _require_eager_outside_functions()
    super().__init__(**kwargs)
    if distortion not in ("mse", "ms-ssim"):
      raise ValueError(f"distortion must be 'mse' or 'ms-ssim', not {distortion!r}")
    self.lmbda = float(lmbda)
    self.distortion = distortion
    self.trackers = {name: tf.keras.metrics.Mean(name=name) for name in
                     ("loss", "bpp", "mse", "psnr", "ms_ssim", "nonfinite")}
    self.gain_units = (GainUnits(lmbdas, reference=lmbda, name="gain_units")
                       if lmbdas else None)

  @property
  def levels(self):
    """The quality levels of a variable-rate model (0: fixed rate)."""
    return self.gain_units.levels if self.gain_units else 0

  def _quality(self, quality):
    """q of a variable-rate model: `quality` (in levels), or the middle."""
    return self.gain_units.default if quality is None else quality

  def latent(self, x, quality=None, tiled=False):
    """y of x: g_a (over tiles if `tiled`), times the gains of the quality
    for a variable-rate model."""
    y = (self.analyze(x) if tiled
         else self.finish_analysis(self.analysis(x)))
    if self.gain_units:
      y = self.gain_units(y, self._quality(quality))
    return y

  def call(self, x, training=False, quality=None):
    """x -> (x̂, bits per image [B]); `quality` in levels (variable rate)."""
    latents, bits = self.latent_codec(self.latent(x, quality),
                                      training=training)
    if self.gain_units:
      latents["quality"] = (tf.cast(self._quality(quality), tf.float32) *
                            2. ** gain_units.FRACTION_BITS)
    # (float32 also when the transforms compute in bfloat16: `precision`)
    return tf.cast(self.synthesis(self.synthesis_input(latents)),
                   tf.float32), bits

  def training_step(self):
    """The optimizer's step while training (None before `compile`)."""
    return self.optimizer.iterations if self.optimizer else None

  def freeze(self, calibration):
    """Fixes the range coding tables and converts what chooses the coding
    distributions to exact integer arithmetic, calibrated on `calibration`
    (a list of images [1, H, W, 3] in [0, 1], sides multiples of
    `multiple`; a variable-rate model's at every level); needed before
    encode/decode_latents."""
    qualities = range(self.levels) if self.gain_units else [None]
    self.latent_codec.freeze([self.latent(x, q) for x in calibration
                              for q in qualities])

  @property
  def num_streams(self):
    """The latent codec's streams, after the quality's (variable rate)."""
    return self.latent_codec.num_streams + bool(self.gain_units)

  def encode_latents(self, x, quality=None):
    """x [1, H, W, 3] -> (list of `num_streams` streams, dict of latents:
    ŷ as the latent codec decodes it ("y_hat"), ẑ, and a variable-rate
    model's quality ("quality": q · 2^12 as a float))."""
    if self.gain_units is None:
      quality = None
    y = self.latent(x, quality, tiled=True)
    with tf.device(CODING_DEVICE):
      streams, latents = self.latent_codec.encode(y)
    if self.gain_units is None:
      return streams, latents
    code = gain_units.quality_code(self._quality(quality), self.levels)
    return ([gain_units.quality_stream(code)] + streams,
            dict(latents, quality=tf.cast(code, tf.float32)))

  def decode_latents(self, streams, height, width):
    """Streams of a padded H × W image -> dict of latents (`encode_latents`)."""
    latents = {}
    if self.gain_units:
      code = gain_units.read_quality(streams[0], self.levels)
      streams = streams[1:]
      latents["quality"] = tf.cast(code, tf.float32)
    with tf.device(CODING_DEVICE):
      latents.update(self.latent_codec.decode(
          streams, tf.stack([height // tiling.STRIDE, width // tiling.STRIDE])))
    return latents

  def use_slimd(self, coder):
    """Codes the tensor of the factorized prior (ŷ of `factorized`, ẑ of the
    others) with SLIMD (Minnen et al. 2018, ICIP) and `coder` (an
    `entropy.slimd.Slimd`); None: with the prior's own tables."""
    prior = self.latent_codec.factorized_codec.prior_codec
    codec = prior if coder is None else SlimdCodec(prior, coder)
    self.latent_codec = self.latent_codec.replace_factorized(codec)

  @property
  def slimd(self):
    """The SLIMD coder of the factorized tensor, or None."""
    return getattr(self.latent_codec.factorized_codec, "coder", None)

  def factorized_tensor(self, x):
    """x [1, H, W, 3] -> the tensor the factorized prior codes (ŷ or ẑ)."""
    return self.latent_codec.factorized_tensor(self.analyze(x))

  def clone(self):
    """A copy with its own variables, as this model is now (weights and
    coding choices, e.g. SLIMD), unfrozen. Its variables have the names a
    fresh process gives them (what a SavedModel stores, so that `bin/train
    --init_from` finds them by name)."""
    with _fresh_names():
      copy = type(self)(**self.get_config())
      copy(tf.zeros([1, self.multiple, self.multiple, 3]), training=True)
    copy.use_slimd(self.slimd)  # first: the variables' order follows it
    for target, value in zip(copy.trainable_variables,
                             self.trainable_variables, strict=True):
      target.assign(value)
    return copy

  def set_memory_budget(self, budget):
    """Tiles g_a and g_s (`tiling`) so that a process coding an image needs
    at most `budget` bytes besides what grows with the latent (`tiling.share`
    goes to a tile); None: whole images."""
    if budget is None:
      self.tiles = (None, None)
      return
    analysis, synthesis = self.transform_probes()
    per_position = (
        tiling.bytes_per_position(analysis, 3, tiling.STRIDE,
                                  self.overheads[0]),
        tiling.bytes_per_position(synthesis, self.latent_depth(), 1,
                                  self.overheads[1]))
    self.tiles = tuple(tiling.tile_for_budget(tiling.share(budget), p, self.halo)
                       for p in per_position)

  def transform_probes(self):
    """The Sequentials whose layers estimate the tiles' memory
    (`tiling.bytes_per_position`): g_a and g_s (a branching transform names
    its widest path, and `overheads` what the others add)."""
    return self.analysis, self.synthesis

  def latent_depth(self):
    """The channels of the synthesis' input (ŷ)."""
    return self.analysis(tf.zeros([1, tiling.STRIDE, tiling.STRIDE, 3])).shape[-1]

  def finish_analysis(self, features):
    """y from the output of `analysis` (the tiled part of g_a): the
    identity; a model with a global part after the tiles (wen2019's weighted
    layer) runs it here, on the whole latent."""
    return features

  def synthesis_input(self, latents):
    """The synthesis' input from the latents (a dict, see `decode_latents`):
    ŷ (times the inverse gains of a variable-rate model's quality); wen2019
    adds its assistant information."""
    if self.gain_units is None:
      return latents["y_hat"]
    return self.gain_units.inverse(
        latents["y_hat"], latents["quality"] / 2. ** gain_units.FRACTION_BITS)

  def analyze(self, x):
    """y = g_a(x) over tiles; x: [1, H, W, 3], uint8 or floats in [0, 1]."""
    prepare = ((lambda t: tf.cast(t, tf.float32) / 255.)
               if x.dtype == tf.uint8 else None)
    return self.finish_analysis(tiling.apply(
        self.analysis, x, self.tiles[0], self.halo, tiling.STRIDE, 1, prepare))

  def synthesize(self, y_hat, uint8=False):
    """x̂ = g_s(ŷ) over tiles: floats, or uint8 pixels (rounded, clipped)."""
    finish, dtype = (to_uint8, tf.uint8) if uint8 else (None, tf.float32)
    return tiling.apply(self.synthesis, y_hat, self.tiles[1], self.halo, 1,
                        tiling.STRIDE, finish=finish, dtype=dtype)

  def coding_variables(self):
    """What defines the codec (weights, coding tables), without the training
    metrics' running means."""
    metric = {id(v) for t in self.trackers.values() for v in t.variables}
    return [v for v in self.variables if id(v) not in metric]

  def estimate_bits(self, x):
    """The model's own rate of x in bits (quantized latents, no noise)."""
    _, bits = self(x, training=False)
    return tf.reduce_sum(bits)

  def measures(self, x):
    """The latent codec's extra figures of x (`LatentCodec.measures`)."""
    return self.latent_codec.measures(self.finish_analysis(self.analysis(x)))

  def legacy_children(self):
    """{attribute name in checkpoints written before latent codecs: object}
    (`restore`)."""
    return dict(self.latent_codec.legacy_children(), analysis=self.analysis,
                synthesis=self.synthesis)

  # -- training -----------------------------------------------------------------
  def rate_distortion(self, x, training, level=None):
    """(L = R + λ·D, its terms) of a batch; a variable-rate model at an
    integer `level` (training: one drawn per batch, Cui et al. 2021) with
    its λ."""
    lmbda = self.lmbda
    if self.gain_units:
      if level is None:
        level = tf.random.uniform([], 0, self.levels, tf.int32)
      lmbda = self.gain_units.lmbda(level)
    x_hat, bits = self(x, training=training, quality=(
        None if level is None else tf.cast(level, tf.float32)))
    num_pixels = tf.cast(tf.reduce_prod(tf.shape(x)[1:3]), bits.dtype)
    bpp = tf.reduce_mean(bits) / num_pixels
    mse = tf.reduce_mean(tf.math.squared_difference(x * 255., x_hat * 255.))
    terms = dict(bpp=bpp, mse=mse, psnr=metrics.psnr_from_mse(mse))
    if self.distortion == "mse":
      distortion = mse
    else:  # MS-SSIM costs time, so it is only computed when it is the objective.
      terms["ms_ssim"] = metrics.ms_ssim(x, tf.clip_by_value(x_hat, 0., 1.), 1.)
      distortion = 1. - terms["ms_ssim"]
    return bpp + lmbda * distortion, terms

  # The steps are graph code already: autograph's conversion of every
  # function they call only slows Keras's tracing (as the codec's, design.md).
  @tf.autograph.experimental.do_not_convert
  def train_step(self, x):
    with tf.GradientTape() as tape:
      loss, terms = self.rate_distortion(x, training=True)
      # Gradients are summed over replicas, so each replica scales its share.
      scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
    variables = self.trainable_variables
    grads = tape.gradient(scaled, variables)
    # NaN guard: a step whose loss or gradients are not finite contributes zero
    # gradients, so no NaN reaches the weights (Adam's momentum still moves them;
    # the training loop stops if every step of a log interval is non-finite).
    finite = tf.math.is_finite(loss)
    for g in grads:
      finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))
    grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
    self.optimizer.apply_gradients(zip(grads, variables))
    weight = tf.cast(finite, tf.float32)
    self.trackers["nonfinite"].update_state(1. - weight)
    self._track(loss, terms, weight)
    return self._results()

  @tf.autograph.experimental.do_not_convert
  def test_step(self, x):
    loss, terms = self.rate_distortion(x, training=False)
    self._track(loss, terms)
    return self._results()

  def _track(self, loss, terms, weight=1.):
    """Adds a step's values to the running means (weight 0: a skipped step)."""
    for name, value in dict(terms, loss=loss).items():
      self.trackers[name].update_state(
          tf.where(weight > 0, value, 0.), sample_weight=weight)

  def _results(self):
    return {name: t.result() for name, t in self.trackers.items()
            if name != "ms_ssim" or self.distortion == "ms-ssim"}

  @property
  def metrics(self):
    return list(self.trackers.values())

  def get_config(self):
    config = dict(lmbda=self.lmbda, distortion=self.distortion)
    if self.gain_units:  # (fixed-rate models keep their identity)
      config["lmbdas"] = self.gain_units.lmbdas
    return config


def to_uint8(x):
  """[0, 1] floats → uint8, rounded."""
  return tf.cast(tf.round(tf.clip_by_value(x, 0., 1.) * 255.), tf.uint8)


class _Legacy(tf.Module):
  """The objects of a model under the attribute names of checkpoints
  written before latent codecs (`CompressionModel.legacy_children`)."""

  def __init__(self, children):
    super().__init__(name="model")
    for name, value in children.items():
      setattr(self, name, value)


def checkpoint_root(model, path):
  """What `tf.train.Checkpoint(model=...)` must hold to read the checkpoint
  at `path` into `model`: the model, or for a checkpoint written before
  latent codecs (no "model/latent_codec"), its objects under their old
  names. The order of the trainable variables is the old one, so an
  optimizer's state follows."""
  names = [name for name, _ in tf.train.list_variables(path)]
  if any(n.startswith("model/latent_codec/") for n in names):
    return model
  if not any(n.startswith("model/") for n in names):
    raise ValueError(f"{path} holds no model")
  return _Legacy(dict(model.legacy_children(), trackers=model.trackers))
