"""The meshguard package's build backend (PEP 517 and PEP 660), standard library only.

`pip install ./sdk/python` must work on a machine that reaches no package index: a backend
that needs setuptools (and, before setuptools 70.1, wheel) makes pip fetch it, or fail in a
fresh virtual environment. The package is a directory of pure-Python files, so building its
wheel is writing a zip. The metadata comes from pyproject.toml's [project] table (the simple
`key = "string"` lines this backend reads; tests/test_build.py holds it to what tomllib reads).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "meshguard"
TAG = "py3-none-any"
# Fixed timestamps: the same sources build the same wheel.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

ConfigSettings = Optional[Mapping[str, object]]


def _project() -> Dict[str, str]:
    """The [project] table's single-line string values of pyproject.toml."""
    fields: Dict[str, str] = {}
    table = ""
    for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        header = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if header:
            table = header.group(1).strip()
            continue
        pair = re.match(r'\s*([A-Za-z0-9_-]+)\s*=\s*"([^"\\]*)"\s*$', line)
        if table == "project" and pair:
            fields[pair.group(1)] = pair.group(2)
    for key in ("name", "version", "description", "requires-python"):
        if key not in fields:
            raise ValueError("pyproject.toml: [project] has no %s = \"…\" line" % key)
    return fields


def _dist_info() -> str:
    p = _project()
    return "%s-%s.dist-info" % (p["name"], p["version"])


def metadata() -> str:
    """The METADATA file (core metadata 2.1)."""
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        "Name: " + p["name"],
        "Version: " + p["version"],
        "Summary: " + p["description"],
        "License: Apache-2.0",
        "Requires-Python: " + p["requires-python"],
        "Classifier: Programming Language :: Python :: 3",
        "Classifier: Typing :: Typed",
        "Provides-Extra: otel",
        'Requires-Dist: opentelemetry-api; extra == "otel"',
        "Description-Content-Type: text/markdown",
    ]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return "\n".join(lines) + "\n\n" + readme


def _wheel_file() -> str:
    return "Wheel-Version: 1.0\nGenerator: meshguard_build\nRoot-Is-Purelib: true\nTag: %s\n" % TAG


def package_files() -> List[Tuple[str, bytes]]:
    """The package's files as (path in the wheel, content): its .py files and py.typed."""
    out: List[Tuple[str, bytes]] = []
    for path in sorted((ROOT / PACKAGE).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and (path.suffix == ".py" or path.name == "py.typed"):
            out.append((path.relative_to(ROOT).as_posix(), path.read_bytes()))
    return out


def _write_wheel(wheel_directory: str, files: List[Tuple[str, bytes]]) -> str:
    p = _project()
    name = "%s-%s-%s.whl" % (p["name"], p["version"], TAG)
    info = _dist_info()
    files = files + [(info + "/METADATA", metadata().encode()), (info + "/WHEEL", _wheel_file().encode())]
    record = io.StringIO()
    for path, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write("%s,sha256=%s,%d\n" % (path, digest, len(data)))
    record.write(info + "/RECORD,,\n")
    files.append((info + "/RECORD", record.getvalue().encode()))
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files:
            entry = zipfile.ZipInfo(path, _ZIP_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, data)
    return name


# PEP 517 and PEP 660 hooks.


def get_requires_for_build_wheel(config_settings: ConfigSettings = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: ConfigSettings = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: ConfigSettings = None) -> List[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: ConfigSettings = None) -> str:
    info = Path(metadata_directory) / _dist_info()
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(metadata(), encoding="utf-8")
    (info / "WHEEL").write_text(_wheel_file(), encoding="utf-8")
    return info.name


def prepare_metadata_for_build_editable(metadata_directory: str, config_settings: ConfigSettings = None) -> str:
    return prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_wheel(wheel_directory: str, config_settings: ConfigSettings = None, metadata_directory: Optional[str] = None) -> str:
    return _write_wheel(wheel_directory, package_files())


def build_editable(wheel_directory: str, config_settings: ConfigSettings = None, metadata_directory: Optional[str] = None) -> str:
    # An editable install is a .pth file naming this directory: the sources are imported in place.
    return _write_wheel(wheel_directory, [(PACKAGE + ".pth", (str(ROOT) + "\n").encode())])


def build_sdist(sdist_directory: str, config_settings: ConfigSettings = None) -> str:
    p = _project()
    base = "%s-%s" % (p["name"], p["version"])
    sources = [("pyproject.toml", (ROOT / "pyproject.toml").read_bytes()), ("README.md", (ROOT / "README.md").read_bytes())]
    sources += [("_backend/meshguard_build.py", Path(__file__).read_bytes())] + package_files()
    sources.append(("PKG-INFO", metadata().encode()))
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for path, data in sources:
            entry = tarfile.TarInfo(base + "/" + path)
            entry.size = len(data)
            entry.mode = 0o644
            tf.addfile(entry, io.BytesIO(data))
    return name
