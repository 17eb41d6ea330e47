"""`make lab` serves the notebooks with the project's kernel, also where the user is root.

A real JupyterLab server on 127.0.0.1 started through the Makefile target a teacher types;
the test asks its REST API what a browser would: the notebook list and the kernel specs.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_make_lab_serves_the_notebooks_with_the_project_kernel(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "sgvalues-test-token"
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} "
            f"--ServerApp.port_retries=0")
    log = tmp_path / "lab.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with log.open("w") as fh:
        proc = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=REPO,
                                stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"`make lab` exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                contents = _get(f"{base}/api/contents?token={token}")
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(f"`make lab` did not answer on {base}:\n{log.read_text()[-2000:]}")
        served = {c["name"] for c in contents["content"] if c["type"] == "notebook"}
        expected = {p.name for p in (REPO / "notebooks").glob("*.ipynb")}
        assert expected and served == expected
        specs = _get(f"{base}/api/kernelspecs?token={token}")["kernelspecs"]
        assert "sgvalues" in specs, sorted(specs)
        # each notebook names a kernel the server has, and that kernel's python imports sgvalues
        # (a bare "python" in a spec is the server's own interpreter, the venv's)
        for name in sorted(expected):
            nb = _get(f"{base}/api/contents/{name}?token={token}")["content"]
            kernel = nb["metadata"]["kernelspec"]["name"]
            assert kernel in specs, (name, kernel, sorted(specs))
            exe = specs[kernel]["spec"]["argv"][0]
            exe = str(REPO / ".venv" / "bin" / "python") if exe in ("python", "python3", "{python}") else exe
            assert subprocess.run([exe, "-c", "import sgvalues"], capture_output=True).returncode == 0, (kernel, exe)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
