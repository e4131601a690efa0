"""Content digests of dataset sources: SHA-256 of a file, of a folder's files, and a cache that makes them cheap.

A source's identity is its content: one file's SHA-256, or for several files (a folder, or ``har.npz`` with its
``activity_labels.txt``) the SHA-256 of the sorted lines ``"<relative path> <sha256>\\n"``. The workflow compares
that digest (a params entry of rule prepare_data), so touching or re-copying the data reruns nothing, while a
changed file reruns prepare_data and what follows.

:class:`DigestCache` keeps each file's digest under its (size, mtime_ns, ctime_ns, inode) in a small JSON file
(written atomically), so a file is read again only when one of them changed: a touched file is hashed once more
and gives the same digest. Any write to a file changes its ctime, which no copying tool sets back, so a changed
file whose size and mtime were restored is still hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from ..files import write_text

log = logging.getLogger(__name__)

CHUNK = 1 << 20
CACHE_VERSION = 1


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def folder_files(folder: str | Path) -> list[tuple[str, str]]:
    """All regular files under ``folder`` (symlinks to files included, symlinked folders not entered) as sorted
    (posix relative path, path) pairs. os.scandir, not Path.rglob: 60,000 images listed 10x faster."""
    files, stack = [], [(os.fspath(folder), "")]
    while stack:
        path, prefix = stack.pop()
        with os.scandir(path) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, f"{prefix}{e.name}/"))
                elif e.is_file():
                    files.append((prefix + e.name, e.path))
    return sorted(files)


def lines_sha256(per_file: dict[str, str]) -> str:
    """SHA-256 of the sorted lines "relpath sha256" of a set of files (a folder's, or a file and its
    companions)."""
    text = "".join(f"{rel} {digest}\n" for rel, digest in sorted(per_file.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def folder_digest(folder: Path) -> tuple[str, dict[str, str]]:
    """:func:`lines_sha256` of a folder's files, and the per-file digests."""
    per_file = {rel: file_digest(p) for rel, p in folder_files(folder)}
    return lines_sha256(per_file), per_file


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class DigestCache:
    """SHA-256 per file, remembered per source under the file's stamp (size, mtime_ns, ctime_ns, inode).

    ``path`` None: nothing is remembered (every call hashes). A missing, unreadable or foreign cache file is
    treated as empty (and said at INFO level); it is rewritten by :meth:`save`.
    """

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.sources: dict[str, dict[str, list]] = {}
        self.changed = False
        if self.path is None or not self.path.exists():
            return
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("version") != CACHE_VERSION or not isinstance(doc.get("sources"), dict):
                raise ValueError(f"not a version-{CACHE_VERSION} digest cache")
            self.sources = doc["sources"]
        except (OSError, ValueError, AttributeError) as exc:
            log.info("%s: ignoring the digest cache (%s); files are hashed again", self.path, exc)
            self.sources = {}

    def digests(self, root: str, files: list[tuple[str, str | Path]]) -> dict[str, str]:
        """{relative path: sha256} of ``files`` (pairs of relative path and path) of the source ``root``
        (its resolved path, the key); files whose stamp is unchanged are not read. OSError propagates."""
        old = self.sources.get(root)
        old = old if isinstance(old, dict) else {}
        new, out = {}, {}
        for rel, path in files:
            stamp = _stamp(os.stat(path))
            entry = old.get(rel)
            if isinstance(entry, list) and len(entry) == 5 and entry[:4] == stamp:
                digest = entry[4]
            else:
                digest = file_digest(path)
            new[rel], out[rel] = [*stamp, digest], digest
        if new != old:  # files that are gone are dropped with the rest of the old entry
            self.sources[root] = new
            self.changed = True
        return out

    def save(self) -> None:
        """Write the cache atomically if anything changed (and a path was given)."""
        if self.path is not None and self.changed:
            doc = {"version": CACHE_VERSION, "sources": self.sources}
            write_text(self.path, json.dumps(doc, separators=(",", ":")))
            self.changed = False
