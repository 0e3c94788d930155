"""The package installs from its directory with no package index (its own build backend)."""

from __future__ import annotations

import base64
import hashlib
import importlib
import os
import subprocess
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Dict, List

import support  # puts sdk/python on sys.path

import meshguard

SDK = support.ROOT / "sdk" / "python"
sys.path.insert(0, str(SDK / "_backend"))

import meshguard_build  # noqa: E402


class BuildTest(unittest.TestCase):
    def test_metadata_is_pyproject_s(self) -> None:
        try:
            tomllib = importlib.import_module("tomllib")  # Python 3.11+
        except ImportError:
            self.skipTest("tomllib needs Python 3.11")
        load: Callable[[BinaryIO], Dict[str, Dict[str, object]]] = getattr(tomllib, "load")
        with open(SDK / "pyproject.toml", "rb") as f:
            project = load(f)["project"]
        meta = meshguard_build.metadata()
        for field, key in (("Name", "name"), ("Version", "version"), ("Summary", "description"), ("Requires-Python", "requires-python")):
            with self.subTest(field=field):
                self.assertIn("\n%s: %s\n" % (field, project[key]), "\n" + meta)
        self.assertEqual(project["version"], meshguard.__version__)
        self.assertEqual(project["dependencies"], [], "standard library only")

    def test_wheel_holds_the_package_and_a_true_record(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            name = meshguard_build.build_wheel(d)
            with zipfile.ZipFile(os.path.join(d, name)) as zf:
                names = set(zf.namelist())
                want = {"meshguard/" + p.name for p in (SDK / "meshguard").iterdir() if p.suffix == ".py" or p.name == "py.typed"}
                self.assertTrue(want <= names, "missing: %s" % sorted(want - names))
                self.assertFalse([n for n in names if n.startswith(("_backend", "tests")) or "__pycache__" in n])
                info = name.split("-py3")[0] + ".dist-info/"
                rows: List[List[str]] = [r.split(",") for r in zf.read(info + "RECORD").decode().splitlines()]
                self.assertEqual({r[0] for r in rows}, names)
                for path, digest, size in rows:
                    if path == info + "RECORD":
                        continue
                    data = zf.read(path)
                    sha = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                    self.assertEqual((digest, size), ("sha256=" + sha, str(len(data))), path)

    def test_pip_installs_it_with_no_index(self) -> None:
        if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
            self.skipTest("no pip for %s" % sys.executable)
        # No index, no find-links, no configuration: only what the directory holds.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        with tempfile.TemporaryDirectory() as d:
            target = Path(d) / "site"
            pip = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--target", str(target), str(SDK)],
                capture_output=True, text=True, env=env, timeout=300,
            )
            self.assertEqual(pip.returncode, 0, pip.stdout + pip.stderr)
            env["PYTHONPATH"] = str(target)
            where = subprocess.run(
                [sys.executable, "-c", "import meshguard; print(meshguard.__file__)"],
                capture_output=True, text=True, env=env, cwd=d, timeout=60,
            )
            self.assertEqual(where.returncode, 0, where.stderr)
            self.assertTrue(Path(where.stdout.strip()).is_relative_to(target), where.stdout)


if __name__ == "__main__":
    unittest.main()
