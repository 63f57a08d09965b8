"""Image quality and rate measures: PSNR, MS-SSIM, bits per pixel."""

import math

import numpy as np
import tensorflow as tf

# Wang, Simoncelli, Bovik 2003, Table 1 (as tf.image.ssim_multiscale uses them).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def psnr_from_mse(mse, max_val=255.):
  return 10. * tf.math.log(max_val ** 2 / mse) / tf.math.log(10.)


def psnr(a, b):
  """PSNR in dB of two uint8 images (inf if identical)."""
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
  return math.inf if mse == 0 else 10. * math.log10(255. ** 2 / mse)


def ms_ssim_scales(height, width, filter_size=11):
  """How many of the 5 MS-SSIM scales fit an image (each halves the size and
  the smallest must still hold the 11×11 window)."""
  scales = 1
  while scales < 5 and min(height, width) >= filter_size * 2 ** scales:
    scales += 1
  return scales


def ms_ssim(a, b, max_val=255.):
  """TensorFlow's MS-SSIM; small images use the first scales that fit, with
  their weights (images under 11 pixels fall back to plain SSIM with a
  smaller window)."""
  a = tf.convert_to_tensor(a)
  b = tf.convert_to_tensor(b)
  height, width = a.shape[-3], a.shape[-2]
  if height is None or width is None:
    scales = 5
  else:
    scales = ms_ssim_scales(height, width)
  if min(height or 11, width or 11) < 11:
    size = max(1, min(height, width))
    return tf.reduce_mean(tf.image.ssim(a, b, max_val, filter_size=size))
  weights = MS_SSIM_WEIGHTS[:scales]
  return tf.reduce_mean(tf.image.ssim_multiscale(a, b, max_val,
                                                 power_factors=weights))


def image_ms_ssim(a, b):
  """MS-SSIM of two uint8 images [H, W, 3] as a float."""
  return float(ms_ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32)))


def bpp(num_bytes, height, width):
  """Bits per pixel of a coded file: every byte counts."""
  return 8. * num_bytes / (height * width)
