"""ONNX Runtime sessions stay on the cores this process may use (its affinity mask).

ORT's own thread pool pins one thread to each core of the machine, whatever the process's
mask: an app (or container) that keeps the inference process off the cores that decode or run
the camera would find ORT's threads on them. ftedge's sessions and the kit's give ORT the
usable core count instead, which pins nothing, when the mask is narrower than the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.deploy.conftest import tiny_onnx

CHILD = r"""
import json, os, sys
cpu = int(sys.argv[2])
os.sched_setaffinity(0, {cpu})  # as `taskset -c CPU` would start it: before any thread
import numpy as np
from ftedge.deploy.templates.runner_onnxruntime import Model
from ftedge.runtime.onnxruntime.runner import inference_session

path = sys.argv[1]
x = np.zeros((2, 3, 32, 32), np.float32)
ftedge_session = inference_session(path)
ftedge_session.run(None, {"input": x})
kit = Model(os.path.dirname(path), {"artifact": os.path.basename(path), "input_name": "input",
                                    "output_name": "logits"})
kit.infer(x)
allowed = {}
for task in os.listdir("/proc/self/task"):
    for line in open(f"/proc/self/task/{task}/status"):
        if line.startswith("Cpus_allowed_list:"):
            allowed[task] = line.split(":", 1)[1].strip()
print(json.dumps(allowed))
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and at least 2 usable cores to narrow the mask")
def test_sessions_keep_to_the_processs_cores(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx", 3)
    cpu = min(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", CHILD, str(model), str(cpu)], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    allowed = json.loads(out.strip().splitlines()[-1])
    # without the fix ORT's pool adds a thread pinned to another core ({'0', '1'} on 2 cores)
    assert set(allowed.values()) == {str(cpu)}, allowed


def test_the_pool_is_orts_own_when_every_core_is_usable(monkeypatch):
    from ftedge.deploy.templates import runner_onnxruntime as runner

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert runner.session_threads() == 0  # ORT's default pool: its best alone
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 5}, raising=False)
    assert runner.session_threads() == 2
