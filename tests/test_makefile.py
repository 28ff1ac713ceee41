"""`make` on a machine that lacks something says what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess

from conftest import REPO


def make_in_copy(tmp_path, *args, env=None):
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    return subprocess.run(["make", "--no-print-directory", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_a_missing_python_is_named(tmp_path):
    proc = make_in_copy(tmp_path, "venv", "PYTHON=python3-that-does-not-exist")
    assert proc.returncode != 0
    assert "'python3-that-does-not-exist' not found" in proc.stdout + proc.stderr


def test_an_old_python_is_named(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Python 3.9.18'; exit 0; fi\nexit 1\n")
    fake.chmod(0o755)
    proc = make_in_copy(tmp_path, "venv", f"PYTHON={fake}")
    assert proc.returncode != 0
    assert "Python 3.11 or newer is needed" in proc.stdout and "Python 3.9.18" in proc.stdout


def test_an_unreachable_package_index_is_named(tmp_path):
    # No index and no local wheels: what a machine without a network to the registry sees.
    env = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    proc = make_in_copy(tmp_path, "venv", env=env)
    assert proc.returncode != 0
    assert "could not install the pinned packages" in proc.stdout
    assert "Is the Python package index reachable" in proc.stdout
