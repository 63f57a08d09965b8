"""bin/train --strategy=multi_worker with two real worker processes on
localhost (TF_CONFIG, a shared --model_dir): they train, the chief writes the
checkpoints and the export, each reads its own patches, both resume at the
saved step, and a killed worker stops the other with a clear error."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import ENV, ROOT

FLAGS = ["--model=hyperprior", "--num_filters=8", "--latent_channels=8",
         "--hyper_channels=8", "--patch_size=64", "--batch_size=4",
         "--learning_rate=1e-3", "--log_every=1", "--checkpoint_every=2",
         "--strategy=multi_worker"]


def _ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _start(index, cluster, args):
  env = dict(ENV, TF_CONFIG=json.dumps(dict(
      cluster=cluster, task=dict(type="worker", index=index))))
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "bin/train"), *FLAGS, *args],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
      cwd=ROOT)


def _both(cluster, args, timeout=600):
  processes = [_start(i, cluster, args) for i in range(2)]
  outputs = [p.communicate(timeout=timeout)[0] for p in processes]
  return [p.returncode for p in processes], outputs


@pytest.mark.slow
def test_two_workers(tmp_path):
  cluster = dict(worker=[f"localhost:{p}" for p in _ports(2)])
  run_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
  args = [f"--model_dir={run_dir}", f"--export_dir={export_dir}"]
  codes, outputs = _both(cluster, args + ["--steps=4"])
  assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
  assert os.path.exists(os.path.join(run_dir, "ckpt-4.index"))
  assert os.path.exists(os.path.join(export_dir, "saved_model.pb"))
  assert not os.path.exists(os.path.join(run_dir, ".worker-1"))
  assert "exported SavedModel" in outputs[0]
  assert "exported SavedModel" not in outputs[1]
  digests = [re.search(r"worker \d of 2: first batch of 2 patches, digest "
                       r"(\w+)", o).group(1) for o in outputs]
  assert digests[0] != digests[1]
  # Both resume at the saved step.
  cluster = dict(worker=[f"localhost:{p}" for p in _ports(2)])
  codes, outputs = _both(cluster, args + ["--steps=6"])
  assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
  assert all("resuming at step 4 of 6" in o for o in outputs)
  assert os.path.exists(os.path.join(run_dir, "ckpt-6.index"))
  # A killed worker: the other stops with a clear error, in bounded time.
  cluster = dict(worker=[f"localhost:{p}" for p in _ports(2)])
  processes = [_start(i, cluster, args + ["--steps=100000"]) for i in
               range(2)]
  output = []
  for line in processes[0].stdout:
    output.append(line)
    if "step 8/" in line:
      break
  processes[1].send_signal(signal.SIGKILL)
  start = time.time()
  rest = processes[0].communicate(timeout=600)[0]
  seconds = time.time() - start
  assert processes[0].returncode not in (0, None)
  assert "another worker stopped answering" in rest, rest[-3000:]
  assert seconds < 300, seconds
