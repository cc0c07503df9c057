"""Downloads and archives for dataset preparation: resumable downloads, checksums, safe extraction.

* ``download(url, dest, sha256=None)``: streams ``url`` to ``dest.part`` and renames it when
  complete, with a tqdm progress bar (in a terminal and in a notebook). An interrupted download
  resumes from the bytes already on disk (HTTP ``Range``); a server that ignores ``Range`` restarts
  it. With ``sha256`` the file is verified and a mismatch deletes it; without one (hosts that publish
  no checksum) the digest is printed and stored beside the file as ``<name>.sha256``, and later runs
  verify against it. This is hand-written because the libraries that do verified downloads do not
  resume: pooch re-downloads a partial file from the start (COCO's 13 GB archive over a Colab link
  must survive an interruption), and ``huggingface_hub`` serves only files on the Hub.
* ``extract(archive, target)``: zip or tar; every member must stay inside ``target`` (no absolute
  paths, no ``..``, no links pointing outside) or nothing is extracted. Tar members then go through
  Python's own ``filter="data"`` (3.11.4+), which refuses the same escapes and also strips unsafe
  permissions; the check before it is kept because it refuses the *whole* archive before writing
  anything, and because ``zipfile`` does not refuse such members - it silently rewrites their names.
* ``google_drive(file_id)``: the direct-download URL of a public Google Drive file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    pass


class UnsafeArchiveError(RuntimeError):
    pass


def google_drive(file_id: str) -> str:
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, sha256_hex: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (resuming a partial ``dest.part``), verify, return ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stored = dest.with_name(dest.name + ".sha256")
    expected = sha256_hex or (stored.read_text().split()[0] if stored.is_file() else None)
    if dest.is_file():
        if expected is None or sha256(dest) == expected:
            return dest
        dest.unlink()  # corrupt: fetch again
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "ovnb-data-prepare"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = getattr(response, "status", 200)
        if have and status != 206:  # the server ignored Range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = int(length) + have if length is not None else None
        from tqdm.auto import tqdm

        with open(part, "ab" if have else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                            desc=dest.name, leave=False) as bar:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise IOError(f"{url}: got {part.stat().st_size} of {total} bytes; prepare again to resume")
    digest = sha256(part)
    if expected is not None and digest != expected:
        part.unlink()
        raise ChecksumError(f"{dest.name}: sha256 {digest} does not match the expected {expected}; "
                            f"the partial file was deleted, prepare again")
    os.replace(part, dest)
    if expected is None:
        stored.write_text(f"{digest}  {dest.name}\n")
        print(f"{dest.name}: sha256 {digest} (no published checksum; stored in {stored.name})")
    return dest


def _check_member(name: str, target: Path) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside {target}")
    resolved = (target / name).resolve()
    if not str(resolved).startswith(str(target.resolve()) + os.sep) and resolved != target.resolve():
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside {target}")


def extract(archive: Path, target: Path) -> Path:
    """Extract a zip or tar archive into ``target`` after checking every member (see the module docstring)."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                _check_member(info.filename, target)
                mode = (info.external_attr >> 16) & 0o170000
                if mode == 0o120000:
                    raise UnsafeArchiveError(f"archive member {info.filename!r} is a symbolic link")
            z.extractall(target)
        return target
    with tarfile.open(archive) as t:
        members = t.getmembers()
        for m in members:
            _check_member(m.name, target)
            if m.issym() or m.islnk():
                _check_member(str(PurePosixPath(m.name).parent / m.linkname) if m.issym() else m.linkname, target)
            if m.isdev():
                raise UnsafeArchiveError(f"archive member {m.name!r} is a device file")
        t.extractall(target, members=members, filter="data")
    return target


def move_into(source: Path, dest: Path) -> None:
    """Move ``source`` to ``dest`` unless ``dest`` already exists."""
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(dest))


def fetch_folder(source: tuple, downloads: Path, folder: str, dest: Path) -> Path:
    """Download ``source`` = (url, file name, sha256 or None) into ``downloads``, extract it into a
    scratch folder, and move the first directory named ``folder`` (case-insensitive) to ``dest``."""
    url, name, digest = source
    scratch = downloads / f"x_{Path(name).stem}"
    extract(download(url, downloads / name, digest), scratch)
    found = next((p for p in sorted(scratch.rglob("*")) if p.is_dir() and p.name.lower() == folder.lower()), None)
    if found is None:
        raise FileNotFoundError(f"{name} holds no {folder}/ folder")
    move_into(found, dest)
    shutil.rmtree(scratch, ignore_errors=True)
    return dest


def fetch_missing(downloads: Path, folders: list[tuple[tuple, str, Path]]) -> None:
    """``fetch_folder(source, downloads, folder, dest)`` for each ``(source, folder, dest)`` whose
    ``dest`` is not in place yet (a dataset prepared earlier, or in part, is not fetched again)."""
    for source, folder, dest in folders:
        if not Path(dest).is_dir():
            fetch_folder(source, downloads, folder, Path(dest))


def fetch_pinned(base_url: str, names, dest_dir: Path) -> Path:
    """Each file of ``names`` from ``base_url`` (a repository pinned to one commit) into ``dest_dir``,
    unless it is there already; the caller checks the contents (those repositories publish no checksums)."""
    for name in names:
        dest = Path(dest_dir) / name
        if not dest.is_file():
            download(f"{base_url}/{name}", dest)
    return Path(dest_dir)


def user_archive(source: tuple, downloads: Path, dataset: str, key: str, where: str, why: str) -> Path:
    """The archive of a dataset behind a login or registration: downloaded when ``source`` = (url, file name,
    sha256) has a URL (a mirror, ``--source``), else the file the user put in ``downloads``; missing, an
    error saying where to get it (``why``: "needs a login", ...) and where to put it."""
    url, name, digest = source
    archive = Path(downloads) / name
    if url is not None:
        return download(url, archive, digest)
    if not archive.is_file():
        raise FileNotFoundError(
            f"{dataset}: {archive} not found. It {why}: download {name} from {where}, put it in {downloads}/ and "
            f"prepare again (or pass --source {key}=URL_OR_FILE_URL)")
    return archive
