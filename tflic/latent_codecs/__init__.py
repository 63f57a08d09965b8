"""Latent codecs: the entropy model of a latent and its exact coder in one
object (`base.LatentCodec`); a model is its transforms and one composition
of them, e.g. `hyperprior(C, h_a, h_s, RasterContext(...))`."""
from tflic.latent_codecs.base import LatentCodec
from tflic.latent_codecs.channel_groups import ChannelGroups
from tflic.latent_codecs.channel_slices import ChannelSlices
from tflic.latent_codecs.checkerboard import Checkerboard
from tflic.latent_codecs.factorized import FactorizedPrior
from tflic.latent_codecs.gaussian_conditional import GaussianConditional
from tflic.latent_codecs.gaussian_conditional import split_gaussian
from tflic.latent_codecs.global_reference import GlobalReference
from tflic.latent_codecs.hyperprior import HyperpriorCodec, hyperprior
from tflic.latent_codecs.raster_context import RasterContext
from tflic.latent_codecs.raster_context import (CONTEXTS, context_branch,
                                                context_codec, network)
from tflic.latent_codecs.slimd import SlimdCodec

__all__ = ["LatentCodec", "ChannelGroups", "ChannelSlices", "Checkerboard", "FactorizedPrior", "GaussianConditional",
           "GlobalReference", "HyperpriorCodec", "RasterContext",
           "SlimdCodec", "CONTEXTS", "context_branch", "context_codec",
           "hyperprior", "network",
           "split_gaussian"]
