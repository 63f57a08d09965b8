"""The models, by name. `create(name, **args)` builds one; `names()` lists them."""

import inspect

from tflic.models.base import CompressionModel
from tflic.models.cheng2020 import Cheng2020
from tflic.models.elic2022 import Elic2022
from tflic.models.factorized import Factorized
from tflic.models.hyperprior import Hyperprior
from tflic.models.joint import Joint
from tflic.models.ms2020 import Ms2020
from tflic.models.qian2021 import Qian2021
from tflic.models.wen2019 import Wen2019

REGISTRY = {
    "cheng2020": Cheng2020,
    "elic2022": Elic2022,
    "factorized": Factorized,
    "hyperprior": Hyperprior,
    "joint": Joint,
    "ms2020": Ms2020,
    "qian2021": Qian2021,
    "wen2019": Wen2019,
}


def names():
  return sorted(REGISTRY)


def get(name):
  try:
    return REGISTRY[name]
  except KeyError:
    raise ValueError(f"unknown model {name!r}; known: {', '.join(names())}") from None


def architecture(name):
  """The constructor arguments that define a model's architecture (its size
  flags), with their defaults."""
  params = inspect.signature(get(name).__init__).parameters
  return {p.name: p.default for p in params.values()
          if p.name not in ("self", "lmbda", "distortion", "kwargs")}


TRAINING_ARGUMENTS = ("lmbda", "distortion", "lmbdas")


def create(name, **args):
  """The model `name` with the given constructor arguments; an unknown
  argument (e.g. a misspelt size) is an error, not silently dropped."""
  known = set(architecture(name)) | set(TRAINING_ARGUMENTS)
  unknown = sorted(set(args) - known)
  if unknown:
    raise ValueError(f"{name} has no argument {', '.join(unknown)} (its "
                     f"arguments: {', '.join(sorted(known))})")
  return get(name)(**args)


__all__ = ["CompressionModel", "REGISTRY", "names", "get", "create",
           "architecture"]
