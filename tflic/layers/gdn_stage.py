"""One stage of the GDN transforms of Ballé et al. 2017 (Fig. 7): a strided
convolution followed by GDN (analysis), or a transposed convolution followed by
inverse GDN (synthesis). GDN/IGDN are tensorflow-compression's; `gsdn=True`
uses GSDN/IGSDN (Qian et al. 2021, eq. 5) instead; `gdn_form` is GDN's
(`gdn.FORMS`: "simplified" or "original"). A stage pads with zeros as
TensorFlow's "same" does (`padding="zeros"`), with zeros centred as
PyTorch pads (`padding="pytorch"`, `centred_conv`) or, an analysis stage
only, by reflection (`padding="reflect"`, `ReflectConv2D`)."""

import tensorflow as tf

from tflic.layers.centred_conv import (CentredStridedConv,
                                       CentredStridedConvTranspose)
from tflic.layers.gdn import GDN
from tflic.layers.gsdn import GSDN
from tflic.layers.reflect_conv import ReflectConv2D

PADDINGS = ("zeros", "reflect", "pytorch")


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
  activation = _normalization(False, gsdn, name, gdn_form) if gdn else None
  if padding == "pytorch":
    _check_centred(stride)
    return CentredStridedConv(filters, kernel, name=name,
                              activation=activation)
  conv = ReflectConv2D if padding == "reflect" else tf.keras.layers.Conv2D
  return conv(filters, kernel, strides=stride, padding="same", name=name,
              activation=activation)


def synthesis_stage(filters, kernel, stride, name, igdn=True, gsdn=False,
                    gdn_form="simplified", padding="zeros"):
  """Transposed conv (up-sampling by `stride`) → IGDN; the last has none."""
  if padding not in ("zeros", "pytorch"):
    raise ValueError(f"a synthesis stage pads 'zeros' or 'pytorch', not "
                     f"{padding!r}")
  activation = _normalization(True, gsdn, name, gdn_form) if igdn else None
  if padding == "pytorch":
    _check_centred(stride)
    return CentredStridedConvTranspose(filters, kernel, name=name,
                                       activation=activation)
  return tf.keras.layers.Conv2DTranspose(
      filters, kernel, strides=stride, padding="same", name=name,
      activation=activation)


def _check_centred(stride):
  if stride != 2:
    raise ValueError(f"PyTorch's padding is for stride 2, not {stride}")
