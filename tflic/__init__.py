"""tflic: learned image codecs in TensorFlow/Keras."""

import os

# TensorFlow first imported inside absl's app.run (an absl program that
# imports tflic in its main) starts without eager execution below its
# tf.functions unless TF2_BEHAVIOR=1, which its import sets only after: in
# every traced function `tensor == tensor` is then Python identity, and the
# GDN of tensorflow-compression computes another transform, so files differ.
# Set before TensorFlow is imported; the first model refuses if too late
# (`models.base`).
os.environ.setdefault("TF2_BEHAVIOR", "1")

__version__ = "0.1.0"
