"""Training input pipelines: random RGB crops from image files or a TFDS dataset.

`--train_data` forms:
  "dir/*.png"       a file glob (PNG, JPEG, BMP, GIF; comma-separate several globs)
  "tfds:NAME[:SPLIT]"  a TensorFlow Datasets dataset with an "image" feature
  "samples"         the photos that scikit-image and matplotlib ship (a built-in
                    default for demos; `samples_holdout()` is left out of it)
"""

import glob
import os

import tensorflow as tf

# Photos shipped by scikit-image (skimage/data) and matplotlib (sample_data).
_SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "rocket.jpg",
                   "motorcycle_left.png", "motorcycle_right.png",
                   "hubble_deep_field.jpg", "retina.jpg", "ihc.png")
_HOLDOUT = "coffee.png"
CACHE_FILES = 1000


def _skimage_dir():
  try:
    import skimage  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise ValueError("the 'samples' data set needs scikit-image "
                     "(pip install 'tflic[demo]')") from None
  return os.path.join(os.path.dirname(skimage.__file__), "data")


def samples():
  """Paths of the built-in sample photos."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  files = [os.path.join(_skimage_dir(), f) for f in _SKIMAGE_PHOTOS]
  files.append(os.path.join(matplotlib.get_data_path(), "sample_data",
                            "grace_hopper.jpg"))
  return [f for f in files if os.path.exists(f)]


def samples_holdout():
  """A sample photo (600×400) that is not in `samples()`: for demos and tests."""
  return os.path.join(_skimage_dir(), _HOLDOUT)


def image_files(spec):
  """The files a glob spec (or "samples") names, sorted; error if none."""
  if spec == "samples":
    files = samples()
  else:
    files = sorted(f for pattern in spec.split(",")
                   for f in glob.glob(os.path.expanduser(pattern), recursive=True))
  if not files:
    raise ValueError(f"no image files match {spec!r}")
  return files


def _read(path):
  image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                             expand_animations=False)
  return image


def random_crop(image, patch_size, seed):
  """A patch_size² crop at a place `seed` (a stateless RNG's [2] int64
  seed) draws; images smaller than that are scaled up first."""
  shape = tf.shape(image)
  short = tf.minimum(shape[0], shape[1])
  if short < patch_size:
    scale = tf.cast(patch_size, tf.float32) / tf.cast(short, tf.float32)
    size = tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale), tf.int32)
    image = tf.cast(tf.image.resize(image, size, "bicubic", antialias=True) + .5,
                    tf.uint8)
  return tf.image.stateless_random_crop(image, [patch_size, patch_size, 3],
                                        seed)


def images(spec, shuffle=True, repeat=True):
  """A dataset of uint8 RGB images [H, W, 3] (repeated forever, or once)."""
  if spec.startswith("tfds:"):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    name, _, split = spec[5:].partition(":")
    # The files' order drawn from the global seed, as the crops are.
    shuffle_seed = int(next(iter(tf.data.Dataset.random().take(1))))
    ds = tfds.load(name, split=split or "train", shuffle_files=shuffle,
                   read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed))
    ds = ds.map(lambda ex: ex["image"], num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda im: tf.image.grayscale_to_rgb(im)
                if im.shape[-1] == 1 else im[..., :3])
    if shuffle:
      ds = ds.shuffle(256)
    return ds.repeat() if repeat else ds
  files = image_files(spec)
  ds = tf.data.Dataset.from_tensor_slices(files)
  if len(files) <= CACHE_FILES:  # small sets are decoded once and kept in memory
    ds = ds.map(_read, num_parallel_calls=tf.data.AUTOTUNE).cache()
  if shuffle:
    ds = ds.shuffle(len(files), reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  if len(files) > CACHE_FILES:
    ds = ds.map(_read, num_parallel_calls=tf.data.AUTOTUNE)
  return ds


def patches(spec, patch_size, batch_size, shuffle=True):
  """Batches of random crops as float32 in [0, 1], [batch_size, P, P, 3].

  With the global seed set (`tf.keras.utils.set_random_seed`, bin/train's
  --seed) every run gives the same batches: each image's crop is drawn
  from a seed of its own, taken in order from `tf.data.Dataset.random`, so
  the crops do not depend on which thread of the parallel map runs first
  (a stateful `random_crop` there hands its draws out in the threads'
  order)."""
  ds = tf.data.Dataset.zip((images(spec, shuffle=shuffle),
                            tf.data.Dataset.random().batch(2)))
  ds = ds.map(lambda im, seed: tf.cast(random_crop(im, patch_size, seed),
                                       tf.float32) / 255.,
              num_parallel_calls=tf.data.AUTOTUNE)
  if shuffle:
    ds = ds.shuffle(8 * batch_size)
  return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
