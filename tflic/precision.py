"""Mixed precision for training: the full-resolution transforms g_a and g_s
(their convolutions, residual blocks and attention) compute in bfloat16,
everything else in float32: GDN/GSDN, the latent codecs (h_a, h_s, the
contexts and entropy parameters, the likelihoods), the rate and distortion.
bfloat16 keeps float32's exponent range, so GDN's and the likelihoods'
float16 problems do not arise; their 8-bit mantissa is why they stay float32.
Variables are float32, and exporting builds a float32 copy (`Model.clone`):
coding and its integer path do not change.
"""

import os

from absl import logging
import tensorflow as tf
import tensorflow_compression as tfc

from tflic.layers.gsdn import GSDN

PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def native_bfloat16(cpuinfo="/proc/cpuinfo"):
  """(whether this machine computes bfloat16 natively, why): GPUs of
  compute capability 8.0 or more (A100, H100), CPUs with AMX or
  AVX512-BF16 through oneDNN (TensorFlow's default on x86)."""
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    capabilities = [tf.config.experimental.get_device_details(g).get(
        "compute_capability", (0, 0)) for g in gpus]
    native = all(c >= (8, 0) for c in capabilities)
    return native, f"GPU compute capability {min(capabilities)}"
  try:
    with open(cpuinfo) as f:
      flags = next((l for l in f if l.startswith("flags")), "").split()
  except OSError:
    flags = []
  found = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
  if not found:
    return False, "CPU without AMX or AVX512-BF16"
  if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("0", "false"):
    # TensorFlow's own bfloat16 kernels: no faster than float32.
    return False, (f"CPU with {', '.join(found)}, but oneDNN is off "
                   "(TF_ENABLE_ONEDNN_OPTS=0)")
  return True, "CPU with " + ", ".join(found)


def resolve(precision):
  """"auto" → mixed_bfloat16 where it is native, else float32; logged."""
  if precision not in PRECISIONS:
    raise ValueError(f"precision must be one of {PRECISIONS}, not "
                     f"{precision!r}")
  native, why = native_bfloat16()
  if precision == "auto":
    precision = "mixed_bfloat16" if native else "float32"
  logging.info("precision %s (%s%s)", precision, why,
               "" if native or precision == "float32"
               else ": bfloat16 is emulated, slower than float32")
  return precision


def apply(model, precision):
  """Sets the policy of the layers of `model.analysis` and `model.synthesis`
  (not yet built) but GDN/GSDN; call before the model first runs."""
  if precision == "float32":
    return
  policy = tf.keras.mixed_precision.Policy(precision)
  for transform in (model.analysis, model.synthesis):
    for layer in [transform] + list(transform.submodules):
      if isinstance(layer, tf.keras.layers.Layer) and not isinstance(
          layer, (tfc.GDN, GSDN)):
        layer._set_dtype_policy(policy)  # pylint: disable=protected-access
