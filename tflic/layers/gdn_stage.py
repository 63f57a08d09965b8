"""One stage of the GDN transforms of Ballé et al. 2017 (Fig. 7): a strided
convolution followed by GDN (analysis), or a transposed convolution followed by
inverse GDN (synthesis). GDN/IGDN are tensorflow-compression's; `gsdn=True`
uses GSDN/IGSDN (Qian et al. 2021, eq. 5) instead; `gdn_form` is GDN's
(`gdn.FORMS`: "simplified" or "original"). An analysis stage pads
with zeros (the papers') or, `padding="reflect"`, by reflection
(`ReflectConv2D`)."""

import tensorflow as tf

from tflic.layers.gdn import GDN
from tflic.layers.gsdn import GSDN
from tflic.layers.reflect_conv import ReflectConv2D

PADDINGS = ("zeros", "reflect")


def _normalization(inverse, gsdn, name, gdn_form):
  if gsdn:
    return GSDN(inverse=inverse, name=f"{'igsdn' if inverse else 'gsdn'}_{name}")
  return GDN(inverse=inverse, form=gdn_form,
             name=f"{'igdn' if inverse else 'gdn'}_{name}")


def analysis_stage(filters, kernel, stride, name, gdn=True, gsdn=False,
                   padding="zeros", gdn_form="simplified"):
  """Conv (down-sampling by `stride`) → GDN; the last stage has no GDN."""
  if padding not in PADDINGS:
    raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
  conv = ReflectConv2D if padding == "reflect" else tf.keras.layers.Conv2D
  return conv(
      filters, kernel, strides=stride, padding="same", name=name,
      activation=_normalization(False, gsdn, name, gdn_form) if gdn else None)


def synthesis_stage(filters, kernel, stride, name, igdn=True, gsdn=False,
                    gdn_form="simplified"):
  """Transposed conv (up-sampling by `stride`) → IGDN; the last has none."""
  return tf.keras.layers.Conv2DTranspose(
      filters, kernel, strides=stride, padding="same", name=name,
      activation=_normalization(True, gsdn, name, gdn_form) if igdn else None)
