"""What `pip install` puts on a server: the clinic, without Faker, test helpers or benchmark data.

Issue 13 ("The repository stands alone"): `kapclinic.testing`, `kapclinic.benchdata` and Faker stay in the
repository for development; a server built from requirements/runtime.lock and the wheel runs without them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LEFT_OUT = ("faker", "kapclinic.testing", "kapclinic.benchdata")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # Built from a copy, so the build leaves nothing in the checkout (build/, *.egg-info).
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "kapclinic", src / "kapclinic", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            ".",
        ],
        cwd=src,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("kapclinic-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_leaves_out_the_test_helpers_and_the_benchmark_data(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "kapclinic/clinical/dosing.py" in names
    assert "kapclinic/templates/base.html" in names  # package data still ships
    assert not [n for n in names if n.startswith(("kapclinic/testing/", "kapclinic/benchdata/"))]


def test_faker_is_only_in_the_demo_and_dev_extras(wheel: zipfile.ZipFile) -> None:
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [
        line
        for line in wheel.read(meta).decode().splitlines()
        if line.lower().startswith("requires-dist: faker")
    ]
    assert requires, "faker is declared for the demo"
    assert all("extra ==" in line for line in requires), requires
    lock = (ROOT / "requirements" / "runtime.lock").read_text()
    assert "\nfaker==" not in lock


# Run in a fresh interpreter with the left-out modules made unimportable, as on a server.
_SERVER = f"""
import importlib, sys
from importlib.abc import MetaPathFinder

class LeftOut(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == m or name.startswith(m + ".") for m in {LEFT_OUT!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, LeftOut())
import django
django.setup()
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import get_resolver

get_resolver().url_patterns  # every URLconf and the views it names
for app in apps.get_app_configs():
    if app.name.startswith("kapclinic."):
        for part in ("views", "services", "selectors", "models", "forms"):
            try:
                importlib.import_module(app.name + "." + part)
            except ModuleNotFoundError as exc:
                if exc.name != app.name + "." + part:
                    raise
call_command("check")
for command, missing in (("seed_demo", "faker"), ("seed_scale", "faker")):
    try:
        call_command(command, *(["--patients", "10"] if command == "seed_scale" else []))
    except CommandError as exc:
        assert missing in str(exc) and "extra" in str(exc), str(exc)
    else:
        raise AssertionError(command + " ran without " + missing)
print("server-ok")
"""


def test_the_clinic_runs_without_faker_test_helpers_or_benchmark_data() -> None:
    env = {"KAP_ENV": "test", "DJANGO_SETTINGS_MODULE": "kapclinic.settings", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", _SERVER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "server-ok" in done.stdout
