"""Training: distribution strategy, checkpoints that resume at their step,
progress output, TensorBoard summaries and a NaN guard, around the models'
Keras `train_step`."""

import bisect
import collections
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import time

from absl import logging
import numpy as np
import tensorflow as tf

from tflic import adam
from tflic import data
from tflic import export
from tflic import initializers
from tflic import metrics
from tflic import models
from tflic import precision
from tflic.models.base import checkpoint_root

CONFIG_FILE = "config.json"
DIVERGENCE_WINDOW = 5  # logged losses averaged by the divergence check
WORKER_TIMEOUT = 120  # seconds: a silent worker stops the others


def configure_logical_cpus(count):
  """Splits the host CPU into `count` logical devices (to run multi-device code
  without GPUs). Must run before TensorFlow initializes its devices."""
  if count > 1:
    cpu, = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def make_strategy(name):
  """default: one device; mirrored: every local GPU (else every logical CPU);
  multi_worker: several machines, described by the TF_CONFIG variable."""
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(
        cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
  if name == "multi_worker":
    # A worker that stops answering fails the collectives of the others
    # within this time, with an error, instead of a hang.
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=WORKER_TIMEOUT))
  raise ValueError(f"unknown strategy {name!r} (default, mirrored, multi_worker)")


def worker(strategy):
  """(this worker's index, the number of workers, whether it is the chief:
  the worker that writes checkpoints, logs and the export)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return 0, 1, True
  task_type, task_id = resolver.task_type, resolver.task_id
  cluster = resolver.cluster_spec().as_dict()
  count = sum(len(tasks) for tasks in cluster.values())
  chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                   and "chief" not in cluster)
  index = task_id + (len(cluster.get("chief", [])) if task_type == "worker"
                     else 0)
  return index, count, chief


def read_config(model_dir):
  with open(os.path.join(model_dir, CONFIG_FILE)) as f:
    return json.load(f)


def _write_config(model_dir, config):
  """Writes config.json, or checks that a resumed run has the same architecture."""
  path = os.path.join(model_dir, CONFIG_FILE)
  if os.path.exists(path):
    old = read_config(model_dir)
    # Arguments added to a model since the run started count as defaults.
    defaults = (models.architecture(old["model"])
                if old["model"] in models.names() else {})
    if (old["model"], dict(defaults, **old["args"])) != (
        config["model"], dict(defaults, **config["args"])):
      raise ValueError(
          f"{model_dir} holds a run of {old['model']} {old['args']}, not "
          f"{config['model']} {config['args']}: use another --model_dir")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(config, f, indent=2)
  os.replace(tmp, path)


def build(model_name, model_args, lmbda=0.01, distortion="mse",
          precision_="float32"):
  """Creates a model and its variables (so checkpoints restore at once),
  by the training form; `precision_`: its transforms'
  (`precision.apply`)."""
  model = models.create(model_name, lmbda=lmbda, distortion=distortion,
                        **model_args)
  precision.apply(model, precision_)
  size = model.multiple
  model(tf.zeros([1, size, size, 3]), training=True)
  return model


def compile_adam(model, learning_rate=1e-4, clip_norm=1., form="keras"):
  """Gives `model` its Adam optimizer of `form` (`adam.FORMS`), gradients
  clipped to a global norm of `clip_norm` (0: not clipped), with its slots
  (so checkpoints restore)."""
  model.compile(optimizer=adam.adam(
      form, learning_rate, global_clipnorm=clip_norm or None))
  model.optimizer.build(model.trainable_variables)


def calibration_images(model_dir, spec=None):
  """Calibration images for exporting a run (`calibration.py`): from `spec`
  (a --train_data spec), else from the run's own training data."""
  from tflic import calibration  # pylint: disable=import-outside-toplevel
  config = read_config(model_dir)
  spec = spec or config.get("train_data")
  if not spec:
    raise ValueError(f"{model_dir} does not record its training data: give "
                     "--calibration_data (images like the training data)")
  multiple = models.get(config["model"]).multiple
  pad_mode = models.get(config["model"]).pad_mode
  try:
    return calibration.from_data(spec, multiple, pad_mode)
  except (ValueError, tf.errors.OpError) as e:
    raise ValueError(f"cannot read calibration images {spec!r} ({e}); give "
                     "--calibration_data") from None


def load(model_dir, **overrides):
  """The model of a training run, with its latest checkpoint's weights.
  `overrides`: constructor arguments that do not change the weights (e.g.
  qian2021's search_rows), to code differently than in training."""
  config = read_config(model_dir)
  unknown = set(overrides) - set(models.architecture(config["model"]))
  if unknown:
    raise ValueError(f"{config['model']} has no argument {', '.join(unknown)}")
  model = build(config["model"], dict(config["args"], **overrides),
                config["lmbda"], config["distortion"])
  latest = tf.train.latest_checkpoint(model_dir)
  if latest is None:
    raise ValueError(f"no checkpoint in {model_dir}")
  tf.train.Checkpoint(model=checkpoint_root(model, latest)).restore(
      latest).expect_partial()
  return model


class Evaluation:
  """Codes `spec`'s images (a --train_data spec) as real files with the
  model being trained, calibrated on the training data: the means over the
  images of bpp and PSNR, as Kodak figures are reported (each level of a
  variable-rate model), to TensorBoard (model_dir/eval) and
  model_dir/eval.csv (step, level, bpp, psnr): every run has an RD-vs-steps
  curve. Every worker evaluates, so that none waits for the chief in a
  collective (which times out); only the chief (`write`) writes. A run
  resumed at `step` first drops the CSV's rows of later steps (evaluated
  after its last checkpoint, or by an earlier run in the same directory).
  An evaluation that fails is logged; training goes on."""

  def __init__(self, model_dir, spec, train_data, step=0, write=True):
    from tflic import calibration  # pylint: disable=import-outside-toplevel
    self.images = [image.numpy() for image in
                   data.images(spec, shuffle=False, repeat=False)]
    self.train_data, self.write = train_data, write
    self.calibration = None
    self._calibration_module = calibration
    self.path = os.path.join(model_dir, "eval.csv")
    if write:
      self.writer = tf.summary.create_file_writer(os.path.join(model_dir,
                                                               "eval"))
      _drop_rows_after(self.path, step)

  def __call__(self, model, step):
    started = time.time()
    try:
      rows = self._rows(model, step)
    except Exception:  # pylint: disable=broad-except
      logging.exception("step %d: the evaluation failed; training goes on",
                        step)
      return
    if self.write:
      for _, level, bpp, psnr in rows:
        with self.writer.as_default(step=step):
          suffix = "" if level == "" else f"_level{level}"
          tf.summary.scalar("bpp" + suffix, bpp)
          tf.summary.scalar("psnr" + suffix, psnr)
      new = not os.path.exists(self.path)
      with open(self.path, "a") as f:
        if new:
          f.write("step,level,bpp,psnr\n")
        f.writelines(f"{s},{l},{b:.5f},{p:.3f}\n" for s, l, b, p in rows)
    logging.info("step %d: %s on %d images (%.0f s)", step, "; ".join(
        f"{'' if l == '' else f'level {l}: '}{b:.4f} bpp {p:.2f} dB"
        for _, l, b, p in rows), len(self.images), time.time() - started)

  def _rows(self, model, step):
    """[(step, level or "", mean bpp, mean PSNR)] of the coded images."""
    from tflic import codec as codec_lib  # pylint: disable=import-outside-toplevel
    if self.calibration is None:
      self.calibration = self._calibration_module.from_data(
          self.train_data, model.multiple, model.pad_mode)
    codec = codec_lib.Codec(model, self.calibration)
    rows = []
    for level in range(model.levels) if model.levels else [None]:
      figures = []
      for image in self.images:
        if level is None:
          data_ = codec.encode(image)["bitstream_bytes"]
        else:
          data_ = codec.encode_at_quality(
              image, 100. * level / (model.levels - 1))["bitstream_bytes"]
        decoded = codec.decode(data_)["image"].numpy()
        figures.append((metrics.bpp(len(data_.numpy()), *image.shape[:2]),
                        float(metrics.psnr(image, decoded))))
      bpp, psnr = np.mean(figures, 0)
      rows.append((step, "" if level is None else level, bpp, psnr))
    return rows


def _drop_rows_after(path, step):
  """Rewrites the CSV `path` (its first column the step) without the rows of
  steps after `step`."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  if not lines:
    return
  header, *rows = lines
  kept = [r for r in rows if int(r.split(",", 1)[0]) <= step]
  if len(kept) < len(rows):
    with open(path + ".tmp", "w") as f:
      f.writelines([header] + kept)
    os.replace(path + ".tmp", path)
    logging.info("%s: dropped %d rows after step %d", path,
                 len(rows) - len(kept), step)


def load_weights(model, source):
  """Sets `model`'s weights from another run (weights only, no optimizer
  state): a run directory (its latest checkpoint), a checkpoint path, or an
  exported SavedModel (its variables and training weights, in whatever
  precision `export` stored them, matched by name and shape). What
  `model` has and the source lacks (e.g. a new entropy model's layers, a
  variable-rate model's gains) keeps its initial values. Returns (weights
  set, weights of the model); an error if none matches."""
  variables = model.trainable_variables
  before = [v.numpy() for v in variables]
  if tf.saved_model.contains_saved_model(source):
    import tensorflow_compression  # pylint: disable=import-outside-toplevel,unused-import
    loaded = tf.saved_model.load(source)
    stored = {(v.name, tuple(v.shape)): v for v in list(
        loaded.model_variables) + list(getattr(loaded, "training_weights", []))}
    for variable in variables:
      value = stored.get((variable.name, tuple(variable.shape)))
      if value is not None:
        variable.assign(tf.cast(value, variable.dtype))
    _resample_gains(model, source, loaded)
  else:
    path = (tf.train.latest_checkpoint(source) if tf.io.gfile.isdir(source)
            else source.removesuffix(".index"))
    if not path or not tf.io.gfile.exists(path + ".index"):
      raise ValueError(
          f"--init_from={source}: not a run directory with a checkpoint, a "
          "checkpoint (RUN/ckpt-N) or a SavedModel")
    # A compiled Keras model tracks its optimizer: reading through it would
    # also bring the source's step and Adam moments, which stay as they were.
    optimizer = [(v, v.numpy()) for v in
                 getattr(model.optimizer, "variables", [])]
    try:
      tf.train.Checkpoint(model=checkpoint_root(model, path)).read(
          path).expect_partial()
    except (ValueError, tf.errors.OpError) as e:  # another shape, a bad file
      raise ValueError(f"--init_from={source}: {e}") from None
    for variable, value in optimizer:
      variable.assign(value)
  changed = sum(not np.array_equal(v.numpy(), b)
                for v, b in zip(variables, before))
  if not changed:
    raise ValueError(f"--init_from={source}: none of its weights fits this "
                     "model")
  return changed, len(variables)


def _resample_gains(model, source, loaded):
  """A variable-rate model started from a SavedModel with other levels
  (e.g. more λ at either end): the gains of its levels, resampled in log λ
  (`GainUnits.resample`); the levels it shares keep their gains exactly."""
  units = getattr(model, "gain_units", None)
  if not units or not os.path.exists(os.path.join(source, export.INFO_FILE)):
    return  # (a fixed-rate model, or a SavedModel tflic did not write)
  levels = export.info(source).get("levels")
  if not levels or list(levels) == units.lmbdas:
    return
  tables = {v.name.split("/")[-1].split(":")[0]: v.numpy()
            for v in loaded.model_variables if "gain_units/" in v.name}
  if {"log_gain", "log_inverse_gain"} <= set(tables):
    units.resample(levels, tables["log_gain"], tables["log_inverse_gain"])


@contextlib.contextmanager
def _lost_worker(workers, index, step, model_dir):
  """With several workers: a collective that fails because another worker
  stopped answering (in the step, the metrics' reset or the checkpoint)
  becomes one clear error that says how to resume."""
  try:
    yield
  except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
          tf.errors.CancelledError, tf.errors.AbortedError,
          tf.errors.InternalError) as e:
    if workers == 1:
      raise
    raise RuntimeError(
        f"worker {index} of {workers}: another worker stopped answering "
        f"at step {step + 1} ({type(e).__name__}); the last checkpoint "
        f"({tf.train.latest_checkpoint(model_dir)}) is intact: start "
        "every worker again with the same command to resume") from None


class _Interrupt:
  """Turns SIGINT/SIGTERM into a flag, so the loop can save and stop."""

  def __init__(self):
    self.requested = False

  def __enter__(self):
    self._old = {s: signal.signal(s, self._handle)
                 for s in (signal.SIGINT, signal.SIGTERM)}
    return self

  def _handle(self, signum, frame):
    del frame
    logging.warning("signal %d: saving a checkpoint and stopping", signum)
    self.requested = True

  def __exit__(self, *exc):
    for s, handler in self._old.items():
      signal.signal(s, handler)


def _format_seconds(seconds):
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 \
      else f"{seconds // 60}m{seconds % 60:02d}s"


def learning_rate_schedule(learning_rate, boundaries=(), values=()):
  """step → the learning rate of the optimizer step that follows `step`
  completed steps: piecewise constant, the first boundaries[0] steps at
  values[0], then values[1] up to step boundaries[1], … (the papers'
  schedule: a fixed rate, lowered for the last steps); `learning_rate`
  without a schedule. A bad schedule is a ValueError here."""
  if not values:
    if boundaries:
      raise ValueError("--lr_boundaries needs --lr_values")
    return lambda step: learning_rate
  try:
    boundaries, values = [int(b) for b in boundaries], [float(v) for v in values]
  except ValueError as e:
    raise ValueError(f"learning-rate schedule: {e}") from None
  if (len(values) != len(boundaries) + 1 or
      boundaries != sorted(set(boundaries)) or min(boundaries, default=1) < 1
      or min(values) <= 0):
    raise ValueError(
        f"learning-rate schedule: give increasing positive step boundaries "
        f"and one more positive value ({len(boundaries)} boundaries "
        f"{boundaries}, {len(values)} values {values})")
  return lambda step: values[bisect.bisect_right(boundaries, step)]


def train(model_name, model_args, train_data, model_dir, steps=1000000,
          batch_size=8, patch_size=256, lmbda=0.01, distortion="mse",
          learning_rate=1e-4, lr_boundaries=(), lr_values=(),
          strategy="default", checkpoint_every=1000, log_every=100, seed=None,
          clip_norm=1., divergence_factor=10., init_from=None,
          eval_images=None, eval_every=1000, precision_="float32",
          export_dir=None, max_hours=0., initializer="glorot",
          adam_form="keras"):
  """Trains until `steps` optimizer steps are done, resuming from the latest
  checkpoint in model_dir (with the given learning rate, or the rate of the
  resumed step under `learning_rate_schedule`). Gradients are clipped
  to a global norm of `clip_norm` (0: no clipping). Training stops, without
  saving, when a logged loss is not finite on every step, or when the mean
  of the last DIVERGENCE_WINDOW logged losses exceeds `divergence_factor` ×
  the lowest such mean, from the first full window on (single logged losses
  of small batches vary too much to compare: a batch of dark crops costs
  almost nothing): the last checkpoint stays intact. A new run starts from
  `initializer`'s weights ("glorot" or "pytorch", `initializers.py`) or
  from the weights of `init_from` (`load_weights`); `adam_form`: Adam's
  form, "keras" or "pytorch" (`adam.py`). Every `eval_every` steps (and at the
  end) the images of `eval_images` (a --train_data spec) are coded as real
  files (`Evaluation`): bpp and PSNR go to TensorBoard (model_dir/eval)
  and model_dir/eval.csv. `precision_`: "float32", "mixed_bfloat16" or
  "auto" (bfloat16 where the machine computes it natively;
  `precision.resolve`). The chief writes checkpoints, logs, evaluations and
  (at the end) the SavedModel to `export_dir`, calibrated on the training
  data. With `max_hours` > 0 the run also ends (as at `steps`: checkpoint,
  evaluation, export) after that many hours of training in this process,
  evaluations not counted: runs compared at equal CPU time. `seed` sets the
  initial weights and, with the step a run starts at, its crops and noise:
  on one machine a rerun repeats a run bit for bit, and a resumed run goes
  on with other crops than its start had. Returns the model."""
  rate_at = learning_rate_schedule(learning_rate, lr_boundaries, lr_values)
  if seed is not None:
    tf.keras.utils.set_random_seed(seed)
  strategy = make_strategy(strategy)
  replicas = strategy.num_replicas_in_sync
  if batch_size % replicas:
    raise ValueError(f"--batch_size={batch_size} must be a multiple of the "
                     f"{replicas} replicas")
  multiple = models.get(model_name).multiple
  if patch_size % multiple:
    raise ValueError(f"--patch_size must be a multiple of {multiple} for "
                     f"{model_name}")
  index, workers, chief = worker(strategy)
  if eval_images and eval_every < 1:
    raise ValueError(f"--eval_every={eval_every}: give a number of steps "
                     "≥ 1")
  if max_hours < 0:
    raise ValueError(f"--max_hours={max_hours}: give hours > 0 (0: no limit)")
  if max_hours and workers > 1:  # the workers' clocks would stop them apart
    raise ValueError("--max_hours needs a single worker; give --steps")
  os.makedirs(model_dir, exist_ok=True)
  config = dict(model=model_name, args=model_args, lmbda=lmbda,
                distortion=distortion, train_data=train_data)
  if chief:
    _write_config(model_dir, config)

  precision_ = precision.resolve(precision_)
  with strategy.scope():
    model = build(model_name, model_args, lmbda, distortion, precision_)
    initializers.initialize(model, initializer)
    compile_adam(model, learning_rate, clip_norm, adam_form)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
  # Every worker saves (the strategy needs all of them); the chief's
  # checkpoints are the run's, the others' go to a directory of their own.
  manager = tf.train.CheckpointManager(
      checkpoint, model_dir if chief else os.path.join(
          model_dir, f".worker-{index}"), max_to_keep=3 if chief else 1)
  latest = tf.train.latest_checkpoint(model_dir)
  if latest:
    # A run begun before latent codecs resumes through its old names.
    tf.train.Checkpoint(
        model=checkpoint_root(model, latest),
        optimizer=model.optimizer).restore(
            latest).assert_existing_objects_matched()
    if init_from:
      logging.warning("--init_from=%s ignored: %s has a checkpoint, the "
                      "run resumes from it", init_from, model_dir)
  elif init_from:
    changed, total = load_weights(model, init_from)
    logging.info("initialized %d of %d weights from %s", changed, total,
                 init_from)
  step = int(model.optimizer.iterations.numpy())
  model.optimizer.learning_rate.assign(rate_at(step))  # the flags win on resume
  logging.info("%s %s: %s at step %d of %d, %d replica(s), model_dir %s%s",
               model_name, model_args, "resuming" if step else "starting",
               step, steps, replicas, model_dir,
               f", worker {index} of {workers}" if workers > 1 else "")
  if step >= steps:
    return model

  if seed is not None:
    # The crops and the noise from here on: a rerun repeats them, a resumed
    # run draws others than its start did.
    tf.random.set_seed(int(np.random.SeedSequence([seed, step]).generate_state(
        1)[0]))
  dataset = data.patches(train_data, patch_size, batch_size)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  # The first batch's digest: reruns compare by it, and workers (each reads
  # its own share of the patches) differ by it.
  first = strategy.experimental_local_results(next(iterator))[0]
  logging.info("%sfirst batch of %d patches, digest %s",
               f"worker {index} of {workers}: " if workers > 1 else "",
               first.shape[0], hashlib.sha256(
                   first.numpy().tobytes()).hexdigest()[:16])
  train_function = model.make_train_function()
  writer = tf.summary.create_file_writer(os.path.join(
      model_dir, "train" if chief else f".worker-{index}"))

  def save():
    if not all(np.isfinite(v.numpy()).all() for v in model.trainable_variables):
      raise FloatingPointError("weights are not finite; checkpoint not saved")
    manager.save(checkpoint_number=step)
    if chief:
      logging.info("saved checkpoint at step %d", step)

  evaluation = eval_images and Evaluation(model_dir, eval_images,
                                          train_data, step, write=chief)

  start_step, start_time, best_loss = step, time.time(), float("inf")
  evaluating = 0.  # seconds spent in evaluations, not counted in max_hours
  recent = collections.deque(maxlen=DIVERGENCE_WINDOW)
  with _Interrupt() as interrupt:
    while step < steps:
      if rate_at(step) != rate_at(step - 1):
        model.optimizer.learning_rate.assign(rate_at(step))
        logging.info("learning rate %g from step %d", rate_at(step), step + 1)
      with _lost_worker(workers, index, step, model_dir):
        logs = train_function(iterator)
        step += 1
        # Read once: a signal from now on is handled at the next step.
        stop = interrupt.requested
        last = step == steps or bool(max_hours) and (
            time.time() - start_time - evaluating > 3600 * max_hours)
        checkpoint = step % checkpoint_every == 0 or last or stop
        if step % log_every == 0 or checkpoint:
          # Every checkpoint is preceded by this check, so none holds a
          # non-finite model, nor, after the first window, a diverged one.
          logs = {k: float(v) for k, v in logs.items()}
          rate = (step - start_step) / (time.time() - start_time)
          logging.info("step %d/%d  %s  %.2f steps/s  eta %s", step, steps,
                       "  ".join(f"{k} {v:.4g}" for k, v in logs.items()), rate,
                       _format_seconds((steps - step) / rate))
          with writer.as_default(step=step):
            for name, value in logs.items():
              tf.summary.scalar(name, value)
          recent.append(logs["loss"])
          loss = sum(recent) / len(recent)
          if len(recent) == DIVERGENCE_WINDOW:  # one dark crop is nearly free
            best_loss = min(best_loss, loss)
          if (logs["nonfinite"] == 1. or not math.isfinite(loss)
              or loss > divergence_factor * best_loss):
            raise FloatingPointError(
                f"training diverged at step {step} (mean loss of the last "
                f"{len(recent)} logs {loss:.4g}, lowest {best_loss:.4g}; "
                f"non-finite steps {logs['nonfinite']:.0%}). The "
                f"last checkpoint ({manager.latest_checkpoint}) is intact: "
                "resume from it with a lower --learning_rate.")
          for tracker in model.metrics:
            tracker.reset_state()
        if checkpoint:
          save()
      if evaluation and (last or step % eval_every == 0):
        began = time.time()
        evaluation(model, step)
        evaluating += time.time() - began
      if stop:
        break
      if last and step < steps:
        logging.info("stopping at step %d: --max_hours=%g of training done",
                     step, max_hours)
        break
  if interrupt.requested:
    raise KeyboardInterrupt(f"stopped at step {step}; checkpoint saved, run "
                            "the same command again to resume")
  if not chief:
    shutil.rmtree(os.path.join(model_dir, f".worker-{index}"),
                  ignore_errors=True)
  elif export_dir:
    from tflic import export  # pylint: disable=import-outside-toplevel
    logging.set_verbosity(logging.WARNING)  # TensorFlow's saving is chatty
    path = export.export(model, export_dir, overwrite=True, name=model_name,
                         calibration=calibration_images(model_dir))
    logging.set_verbosity(logging.INFO)
    print(f"exported SavedModel to {path}", flush=True)
  return model
