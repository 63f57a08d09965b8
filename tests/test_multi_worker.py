"""bin/train --strategy=multi_worker with two real worker processes on
localhost (TF_CONFIG, a shared --model_dir): they train, the chief writes the
checkpoints, the evaluations and the export, each reads its own patches,
both resume at the saved step, and a killed worker stops the other with a
clear error."""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from PIL import Image
import pytest

from tests.conftest import ENV, ROOT, random_image

FLAGS = ["--model=hyperprior", "--num_filters=8", "--latent_channels=8",
         "--hyper_channels=8", "--patch_size=64", "--batch_size=4",
         "--learning_rate=1e-3", "--log_every=1", "--checkpoint_every=2",
         "--strategy=multi_worker", "--seed=1"]


def _ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


@pytest.fixture
def start():
  """start(index, cluster, args): bin/train as worker `index`; every process
  still running at the end of the test is killed."""
  processes = []

  def start_(index, cluster, args):
    env = dict(ENV, TF_CONFIG=json.dumps(dict(
        cluster=cluster, task=dict(type="worker", index=index))))
    processes.append(subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "bin/train"), *FLAGS, *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, cwd=ROOT))
    return processes[-1]
  yield start_
  for p in processes:
    p.kill()
    p.communicate()


def _both(start, cluster, args, timeout=600):
  processes = [start(i, cluster, args) for i in range(2)]
  outputs = [p.communicate(timeout=timeout)[0] for p in processes]
  return [p.returncode for p in processes], outputs


class _Lines:
  """A process's output, read line by line in a thread (no read blocks the
  test past its deadline)."""

  def __init__(self, process):
    self.process, self.lines = process, queue.Queue()
    self.thread = threading.Thread(target=self._read, daemon=True)
    self.thread.start()

  def _read(self):
    for line in self.process.stdout:
      self.lines.put(line)
    self.lines.put(None)

  def until(self, text, timeout):
    """The lines up to the first that contains `text` (None: to the end)."""
    output, deadline = [], time.time() + timeout
    while True:
      try:
        line = self.lines.get(timeout=max(0., deadline - time.time()))
      except queue.Empty:
        raise AssertionError(f"no {text!r} in {timeout} s: "
                             + "".join(output)[-3000:]) from None
      if line is None:
        if text is None:
          return "".join(output)
        raise AssertionError(f"the output ended without {text!r}: "
                             + "".join(output)[-3000:])
      output.append(line)
      if text is not None and text in line:
        return "".join(output)


@pytest.mark.slow
def test_two_workers(tmp_path, start):
  cluster = dict(worker=[f"localhost:{p}" for p in _ports(2)])
  run_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
  args = [f"--model_dir={run_dir}", f"--export_dir={export_dir}"]
  Image.fromarray(random_image(48, 64)).save(tmp_path / "eval.png")
  codes, outputs = _both(start, cluster, args + [
      "--steps=4", f"--eval_images={tmp_path / 'eval.png'}",
      "--eval_every=2"])
  assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
  assert os.path.exists(os.path.join(run_dir, "ckpt-4.index"))
  assert os.path.exists(os.path.join(export_dir, "saved_model.pb"))
  assert not os.path.exists(os.path.join(run_dir, ".worker-1"))
  assert "exported SavedModel" in outputs[0]
  assert "exported SavedModel" not in outputs[1]
  # Both evaluate (neither waits for the other in a collective), the chief
  # writes.
  for output in outputs:
    assert re.search(r"step 2: .* bpp .* dB on 1 images", output), output
  with open(os.path.join(run_dir, "eval.csv")) as f:
    assert [r.split(",")[0] for r in f.read().splitlines()] == [
        "step", "2", "4"]
  # With the same --seed, only their shares of the data differ.
  digests = [re.search(r"worker \d of 2: first batch of 2 patches, digest "
                       r"(\w+)", o).group(1) for o in outputs]
  assert digests[0] != digests[1]
  # Both resume at the saved step.
  cluster = dict(worker=[f"localhost:{p}" for p in _ports(2)])
  codes, outputs = _both(start, cluster, args + ["--steps=6"])
  assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
  assert all("resuming at step 4 of 6" in o for o in outputs)
  assert os.path.exists(os.path.join(run_dir, "ckpt-6.index"))
  # A killed worker: the other stops with a clear error, in bounded time.
  cluster = dict(worker=[f"localhost:{p}" for p in _ports(2)])
  processes = [start(i, cluster, args + ["--steps=100000"]) for i in
               range(2)]
  lines = _Lines(processes[0])
  lines.until("step 8/", timeout=600)
  processes[1].send_signal(signal.SIGKILL)
  started = time.time()
  rest = lines.until(None, timeout=600)
  seconds = time.time() - started
  assert processes[0].wait(timeout=60) not in (0, None)
  assert "another worker stopped answering" in rest, rest[-3000:]
  assert seconds < 300, seconds
