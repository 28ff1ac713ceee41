"""`make` on a machine that lacks something says what is missing."""

from __future__ import annotations

import os
import subprocess

from conftest import make_in_copy


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


def test_the_set_up_reinstalls_only_when_what_it_installs_changes(tmp_path):
    """Does a fresh clone next to an existing .venv (a newer pyproject.toml, the same pins) skip the install, and
    does a changed pin reinstall? (A PYTHON that does not exist shows whether the install ran.)"""
    import time

    no_python = "PYTHON=python3-that-does-not-exist"
    stamp = tmp_path / ".venv" / ".installed-stamp"
    make_in_copy(tmp_path, "--version")  # copies the files
    stamp.parent.mkdir()
    stamp.write_text("")  # what the date-based rule left: adopted while newer than pyproject.toml
    os.utime(tmp_path / "pyproject.toml", (time.time() - 60, time.time() - 60))
    first = subprocess.run(["make", "--no-print-directory", "venv", no_python], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and "not found" not in first.stdout, first.stdout + first.stderr
    assert len(stamp.read_text().strip()) == 64, "the stamp holds the hash of what is installed"

    make_in_copy(tmp_path, "--version")  # a fresh copy: pyproject.toml is newer than the stamp now
    assert (tmp_path / "pyproject.toml").stat().st_mtime > stamp.stat().st_mtime
    same = make_in_copy(tmp_path, "venv", no_python)
    assert same.returncode == 0 and "Installing" not in same.stdout, same.stdout + same.stderr

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "', 'version = "9'))
    version_only = subprocess.run(["make", "--no-print-directory", "venv", no_python], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=300)
    assert version_only.returncode == 0, "the version and comments are not what pip installs"

    pyproject.write_text(pyproject.read_text().replace('"numpy==', '"numpy>='))
    changed = subprocess.run(["make", "--no-print-directory", "venv", no_python], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert changed.returncode != 0 and "'python3-that-does-not-exist' not found" in changed.stdout
