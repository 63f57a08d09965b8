"""What keeps the suite (and TensorFlow in Python) fast: `make test`
(pytest-xdist, `--dist loadgroup`) keeps each golden variant's tests on one
worker, which builds and traces its codec once; protobuf is compiled."""

from google.protobuf.internal import api_implementation
import pytest

from tests.conftest import variants


@pytest.mark.parametrize("variant", variants(["hyperprior"]))
def test_a_variant_stays_on_one_worker(request, variant):
  if getattr(request.config.option, "loadgroup", False):
    # pytest-xdist 3.8 marks a group in the test id, which pytest 9.2
    # ignores (pytest-xdist issue 1386): each worker would trace the codec.
    assert request.node.nodeid.endswith(f"@{variant}"), (
        "--dist loadgroup has no effect: install the pytest of setup.cfg's "
        "test extra")


def test_protobuf_is_its_c_implementation():
  """setup.cfg's protobuf: with the pure-Python one, tracing, SavedModel
  saving and loading (every test that codes) take 2-5 times as long."""
  assert api_implementation.Type() != "python", (
      "protobuf runs in pure Python: install setup.cfg's pins")
