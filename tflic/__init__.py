"""tflic: learned image codecs in TensorFlow/Keras."""

__version__ = "0.1.0"
