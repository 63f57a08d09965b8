"""What the absl apps in bin/ share: quiet TensorFlow, `-v` for `--verbose`,
and user errors reported as one line with a non-zero exit."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

flags.DEFINE_bool("verbose", False, "Print rate, quality and timing (-v).")

# Errors a user can cause (bad input, existing output): reported in one line.
USER_ERRORS = (ValueError, FileExistsError, FileNotFoundError,
               IsADirectoryError, PermissionError, FloatingPointError)


def parse(argv):
  # absl reserves -v for --verbosity=N; our -v means --verbose.
  return flags.FLAGS([("--verbose" if a == "-v" else a) for a in argv])


def call(main, argv, name):
  """main(argv) → its exit code; user errors become one line on stderr,
  `NAME: error: message`, and exit code 1."""
  try:
    return main(argv) or 0
  except USER_ERRORS as e:
    print(f"{name}: error: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt as e:
    print(f"{name}: {e or 'interrupted'}", file=sys.stderr)
    return 130


def run(main):
  """Runs an absl main (`call`) as the program."""
  name = os.path.basename(sys.argv[0])
  app.run(lambda argv: call(main, argv, name), flags_parser=parse)


def positional(argv, names):
  """The positional arguments, checked against their names."""
  args = argv[1:]
  if len(args) != len(names):
    raise app.UsageError(f"expected {len(names)} arguments: {' '.join(names)}")
  return args


def memory_bytes(text):
  """'2G', '512M', '1.5G' or a number of bytes → bytes; 'none' → None."""
  text = text.strip().upper()
  if text == "NONE":
    return None
  units = dict(K=1 << 10, M=1 << 20, G=1 << 30)
  try:
    value = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
  except ValueError:
    value = -1
  if value <= 0:
    raise ValueError(f"--memory_budget: expected e.g. 2G, 512M or none, not {text!r}")
  return int(value)
