"""Unpack an artifact zip without letting its member names write outside the destination.
Artifacts come from jobs that ran pull-request code, so every member name is checked before
anything is written, and a single bad one refuses the whole archive."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from .errors import UnsafeArchive

# Seed results are a few kilobytes each; anything near this is not an mlx-parity artifact.
MAX_UNPACKED_BYTES = 1 << 30


def safe_extract(archive: Path, dest_dir: Path) -> list[Path]:
    """Extract ``archive`` into ``dest_dir`` and return the files written, in archive order."""
    dest_root = dest_dir.resolve()
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            targets = [_checked_target(member, dest_root) for member in members]
            unpacked = sum(member.file_size for member in members)
            if unpacked > MAX_UNPACKED_BYTES:
                raise UnsafeArchive(
                    f"{archive.name}: unpacks to {unpacked} bytes, more than the "
                    f"{MAX_UNPACKED_BYTES} allowed"
                )
            written: list[Path] = []
            for member, target in zip(members, targets, strict=True):
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                # zipfile stops at the declared size and checks the CRC, so a member that lies
                # about its size fails here instead of filling the disk.
                with zipped.open(member) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                written.append(target)
            return written
    except zipfile.BadZipFile as exc:
        raise UnsafeArchive(f"{archive.name}: unreadable zip archive ({exc})") from exc


def _checked_target(member: zipfile.ZipInfo, dest_root: Path) -> Path:
    name = member.filename
    # Zip names use "/", but archives written on Windows sometimes carry "\".
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith(("/", "\\")) or ":" in parts[0]:
        raise UnsafeArchive(f"refusing archive member with an absolute path: {name!r}")
    if ".." in parts:
        raise UnsafeArchive(f"refusing archive member that climbs out with '..': {name!r}")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise UnsafeArchive(f"refusing symbolic link in archive: {name!r}")
    target = dest_root.joinpath(*parts).resolve()
    # Belt and braces: resolution must land inside the destination (catches pre-existing links).
    if not target.is_relative_to(dest_root):
        raise UnsafeArchive(f"refusing archive member outside the destination: {name!r}")
    return target
