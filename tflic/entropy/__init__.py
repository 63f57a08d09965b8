"""Entropy models: each gives likelihoods for training and the matching range coder."""
from tflic.entropy.factorized import FactorizedPrior
from tflic.entropy.gaussian import GaussianConditional

__all__ = ["FactorizedPrior", "GaussianConditional"]
