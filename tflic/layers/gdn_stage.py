"""One stage of the GDN transforms of Ballé et al. 2017 (Fig. 7): a strided
convolution followed by GDN (analysis), or a transposed convolution followed by
inverse GDN (synthesis). GDN/IGDN are tensorflow-compression's."""

import tensorflow as tf
import tensorflow_compression as tfc


def analysis_stage(filters, kernel, stride, name, gdn=True):
  """Conv (down-sampling by `stride`) → GDN; the last stage has no GDN."""
  return tf.keras.layers.Conv2D(
      filters, kernel, strides=stride, padding="same", name=name,
      activation=tfc.GDN(name=f"gdn_{name}") if gdn else None)


def synthesis_stage(filters, kernel, stride, name, igdn=True):
  """Transposed conv (up-sampling by `stride`) → IGDN; the last has none."""
  return tf.keras.layers.Conv2DTranspose(
      filters, kernel, strides=stride, padding="same", name=name,
      activation=tfc.GDN(inverse=True, name=f"igdn_{name}") if igdn else None)
