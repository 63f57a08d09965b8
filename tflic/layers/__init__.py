"""Keras layers and the small building blocks of the transforms."""
from tflic.layers.attention import Attention, ResidualUnit
from tflic.layers.gdn_stage import analysis_stage, synthesis_stage
from tflic.layers.masked_conv import MaskedConv2D
from tflic.layers.residual import (ResidualBlock, ResidualBlockUpsample,
                                   ResidualBlockWithStride, ResidualBottleneck)
from tflic.layers.subpixel import SubPixelConv2D

__all__ = ["Attention", "ResidualUnit", "analysis_stage", "synthesis_stage",
           "MaskedConv2D", "ResidualBlock", "ResidualBlockUpsample",
           "ResidualBlockWithStride", "ResidualBottleneck", "SubPixelConv2D"]
