"""Keras layers and the small building blocks of the transforms."""
from tflic.layers.gdn_stage import analysis_stage, synthesis_stage

__all__ = ["analysis_stage", "synthesis_stage"]
