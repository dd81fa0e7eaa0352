"""Getters and labellers: find the items of a data set and read each item's input and label.

* :func:`get_files`, :func:`get_image_files`, :func:`get_text_files` list files under a folder, fast
  (``os.scandir``: no ``stat`` per file) and in a deterministic, sorted order.
* :class:`FileGetter` / :class:`ImageGetter` are the same as picklable objects with fixed arguments
  (for ``DataBlock(get_items=...)``).
* :func:`parent_label`, :class:`RegexLabeller`, :class:`ColReader`, :func:`using_attr` read a label (or an
  input) from one item.

Every getter here is a plain function or a picklable object, so it works in spawned DataLoader workers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..exceptions import DataError
from ..utils import L, LPath, listify

__all__ = [
    "image_extensions",
    "text_extensions",
    "get_files",
    "get_image_files",
    "get_text_files",
    "FileGetter",
    "ImageGetter",
    "parent_label",
    "grandparent_label",
    "RegexLabeller",
    "ColReader",
    "using_attr",
]

#: File extensions (lower case, with the dot) that :func:`get_image_files` picks up.
image_extensions: set[str] = {
    ".bmp", ".dib", ".gif", ".ico", ".jfif", ".jpe", ".jpeg", ".jpg", ".pbm", ".pgm", ".png",
    ".pnm", ".ppm", ".ras", ".sgi", ".tga", ".tif", ".tiff", ".webp", ".xbm", ".xpm",
}  # fmt: skip

#: File extensions (lower case, with the dot) that :func:`get_text_files` picks up.
text_extensions: set[str] = {".txt", ".text", ".md", ".rst", ".csv", ".tsv", ".json", ".jsonl"}


def _norm_exts(extensions) -> frozenset[str] | None:
    if extensions is None:
        return None
    exts = set()
    for e in listify(extensions):
        if not isinstance(e, str):
            raise DataError(
                f"Expected file extensions as strings such as '.png'. Received: extensions={extensions!r}. "
                "Fix: get_files(path, extensions=['.png', '.jpg'])."
            )
        e = e.lower()
        exts.add(e if e.startswith(".") else "." + e)
    return frozenset(exts)


def _walk(
    top: str,
    real_top: str,
    exts,
    recurse: bool,
    folders,
    followlinks: bool,
    out: list[str],
    seen: set,
    files_seen: set,
) -> None:
    """Depth-first walk with ``os.scandir``: sorted files of ``top``, then its sorted sub-folders.

    ``seen`` holds the real paths of the folders visited and ``files_seen`` those of the files listed, so a
    symlink loop, or a link to a folder or file listed elsewhere, never lists a file twice (the first path
    in the walk's order wins; real sub-folders are walked before linked ones). ``real_top`` is
    ``realpath(top)``; a plain (non-link) entry's real path is ``real_top/name``, with no system call.
    """
    files, dirs, linked = [], [], []
    try:
        it = os.scandir(top)
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return
    with it:
        for e in it:
            name = e.name
            if name.startswith("."):
                continue
            try:
                if e.is_dir(follow_symlinks=followlinks):
                    (linked if e.is_symlink() else dirs).append(name)
                    continue
                link = e.is_symlink()
            except OSError:
                continue
            if exts is None:
                ok = True
            else:
                dot = name.rfind(".")
                ok = dot > 0 and name[dot:].lower() in exts
            if ok:
                files.append((name, link))
    files.sort()
    sep = top if top.endswith(os.sep) else top + os.sep
    real_sep = real_top if real_top.endswith(os.sep) else real_top + os.sep
    for f, link in files:
        real = os.path.realpath(sep + f) if link else real_sep + f
        if real in files_seen:
            continue
        files_seen.add(real)
        out.append(sep + f)
    if not recurse:
        return
    dirs.sort()
    linked.sort()
    if folders is not None:
        dirs = [d for d in dirs if d in folders]
        linked = [d for d in linked if d in folders]
    for d, link in [(d, False) for d in dirs] + [(d, True) for d in linked]:
        sub = sep + d
        real = os.path.realpath(sub) if link else real_sep + d
        if real in seen:  # a loop, or a folder reached by another path
            continue
        seen.add(real)
        _walk(sub, real, exts, recurse, None, followlinks, out, seen, files_seen)


def get_files(
    path: str | os.PathLike,
    extensions: Iterable[str] | str | None = None,
    recurse: bool = True,
    folders: Iterable[str] | str | None = None,
    followlinks: bool = True,
    allow_empty: bool = False,
) -> L:
    """All files under ``path`` whose extension is in ``extensions`` (any file when ``None``), sorted.

    Hidden files and folders (name starting with ``.``) are skipped. ``recurse=False`` looks only in
    ``path`` itself; ``folders`` keeps only those sub-folders of ``path`` (at the top level). Extensions
    match case-insensitively, with or without the dot. The order is deterministic: each folder's files
    by name, then its sub-folders by name.

    Returns an :class:`~learnkit.utils.L` (a list with ``sorted``/``map``/``filter``...) of
    :class:`~learnkit.utils.LPath` (paths with ``ls()``).

    Raises :class:`~learnkit.exceptions.DataError` when ``path`` does not exist, and when nothing is
    found (unless ``allow_empty=True``); the message names the path and the extensions.

    >>> files = get_files("data/mnist", extensions=".png")  # doctest: +SKIP
    >>> files[0]  # doctest: +SKIP
    PosixPath('data/mnist/train/3/7.png')
    """
    root = os.fspath(path)
    if not os.path.isdir(root):
        what = "a file, not a folder" if os.path.exists(root) else "no such folder"
        raise DataError(
            f"Expected an existing folder to search for files. Received: path={root!r} ({what}). "
            "Fix: check the path (e.g. Path(path).resolve()), or pass the folder that contains the files."
        )
    exts = _norm_exts(extensions)
    folder_set = set(listify(folders)) if folders is not None else None
    out: list[str] = []
    real_root = os.path.realpath(root)
    _walk(root, real_root, exts, recurse, folder_set, followlinks, out, {real_root}, set())
    if not out and not allow_empty:
        shown = sorted(exts) if exts is not None else "any"
        where = f" in sub-folders {sorted(folder_set)}" if folder_set is not None else ""
        raise DataError(
            f"Expected files with extensions {shown} under {root!r}{where}"
            f"{'' if recurse else ' (recurse=False)'}. Received: no matching files. "
            "Fix: check the path and the extensions (e.g. extensions=['.png', '.jpg']), or recurse=True."
        )
    return L(LPath(p) for p in out)


def get_image_files(
    path: str | os.PathLike, recurse: bool = True, folders: Iterable[str] | str | None = None, **kwargs
) -> L:
    """Image files (extensions in :data:`image_extensions`) under ``path``, sorted.

    >>> get_image_files("data/pets/images")[:2]  # doctest: +SKIP
    [PosixPath('data/pets/images/Abyssinian_1.jpg'), PosixPath('data/pets/images/Abyssinian_10.jpg')]
    """
    return get_files(path, extensions=image_extensions, recurse=recurse, folders=folders, **kwargs)


def get_text_files(
    path: str | os.PathLike, recurse: bool = True, folders: Iterable[str] | str | None = None, **kwargs
) -> L:
    """Text files (extensions in :data:`text_extensions`) under ``path``, sorted.

    Example: ``get_text_files(path, folders=['train', 'valid'])`` -> an ``L`` of ``Path``s.
    """
    return get_files(path, extensions=text_extensions, recurse=recurse, folders=folders, **kwargs)


class FileGetter:
    """A picklable ``get_items``: ``FileGetter(extensions=['.png'])(path)`` is ``get_files(path/suffix, ...)``.

    >>> get_items = FileGetter(extensions=".png", folders=["train", "valid"])
    >>> get_items("data/digits")  # doctest: +SKIP
    """

    def __init__(
        self, suffix: str = "", extensions=None, recurse: bool = True, folders=None, followlinks=True
    ):
        self.suffix, self.extensions, self.recurse = suffix, extensions, recurse
        self.folders, self.followlinks = folders, followlinks

    def __call__(self, path) -> list[Path]:
        return get_files(
            Path(path) / self.suffix, self.extensions, self.recurse, self.folders, self.followlinks
        )

    def __repr__(self) -> str:
        return f"FileGetter(suffix={self.suffix!r}, extensions={self.extensions!r}, folders={self.folders!r})"


class ImageGetter(FileGetter):
    """A picklable ``get_items`` listing image files: ``ImageGetter(folders=['train', 'valid'])(path)``.

    Example: ``DataBlock(..., get_items=ImageGetter(folders=['train', 'valid']))``.
    """

    def __init__(self, suffix: str = "", recurse: bool = True, folders=None, followlinks=True):
        super().__init__(suffix, image_extensions, recurse, folders, followlinks)

    def __repr__(self) -> str:
        return f"ImageGetter(suffix={self.suffix!r}, folders={self.folders!r})"


def parent_label(o) -> str:
    """The name of the folder holding file ``o`` (labels from ``train/cat/1.jpg`` -> ``'cat'``).

    >>> parent_label("train/cat/1.jpg")
    'cat'
    """
    return os.path.basename(os.path.dirname(os.fspath(o)))


def grandparent_label(o) -> str:
    """The name of the folder two levels above file ``o`` (``'data/train/cat/1.jpg'`` -> ``'train'``).

    >>> grandparent_label("data/train/cat/1.jpg")
    'train'
    """
    return os.path.basename(os.path.dirname(os.path.dirname(os.fspath(o))))


class RegexLabeller:
    """Label = the first group of regular expression ``pat`` found in the item's path (as a string).

    ``match=True`` anchors the expression at the start of the string (``re.match``) instead of
    searching anywhere in it (``re.search``). A path without a match raises
    :class:`~learnkit.exceptions.DataError` naming the file and the pattern.

    >>> RegexLabeller(r"([^/]+)_\\d+\\.jpg$")("images/great_pyrenees_12.jpg")
    'great_pyrenees'
    """

    def __init__(self, pat: str, match: bool = False):
        try:
            self.regex = re.compile(pat)
        except re.error as e:
            raise DataError(
                f"Expected a valid regular expression. Received: pat={pat!r} ({e}). "
                r"Fix: escape special characters, e.g. r'([^/]+)_\d+\.jpg$'."
            ) from e
        self.pat, self.match = pat, match
        self._find = self.regex.match if match else self.regex.search

    def __call__(self, o) -> str:
        s = os.fspath(o) if isinstance(o, (str, os.PathLike)) else str(o)
        m = self._find(s)
        if m is None:
            raise DataError(
                f"Expected the pattern {self.pat!r} to {'match the start of' if self.match else 'be found in'} "
                f"every item. Received: item={s!r} with no match. Fix: check the pattern against this name "
                f"with re.{'match' if self.match else 'search'}(pat, name)"
                f"{', or use match=False to search anywhere in it' if self.match else ''}."
            )
        return m.group(1) if m.groups() else m.group(0)

    def __getstate__(self):
        return {"pat": self.pat, "match": self.match}

    def __setstate__(self, state):
        self.__init__(state["pat"], state["match"])

    def __repr__(self) -> str:
        return f"RegexLabeller(pat={self.pat!r}, match={self.match})"


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


class ColReader:
    """Read column(s) ``cols`` (names or positions) of a row: a dict, a pandas row or a sequence.

    With one column the value is returned, with several a list. ``pref``/``suff`` are added around
    string values (e.g. ``pref=path/'images'`` turns file names into paths); ``label_delim`` splits a
    string into a list of labels (for :class:`~learnkit.data.block.MultiCategoryBlock`).

    >>> ColReader("label")({"fname": "a.png", "label": "cat"})
    'cat'
    >>> ColReader("tags", label_delim=" ")({"tags": "cat dog"})
    ['cat', 'dog']
    >>> ColReader("fname", pref="imgs/")({"fname": "a.png"})
    'imgs/a.png'
    """

    def __init__(self, cols, pref: str | os.PathLike = "", suff: str = "", label_delim: str | None = None):
        self.cols = listify(cols)
        if not self.cols:
            raise DataError("Expected at least one column. Received: cols=[]. Fix: ColReader('label').")
        self.pref = os.fspath(pref) if isinstance(pref, os.PathLike) else pref
        if isinstance(pref, os.PathLike) and not self.pref.endswith(os.sep):
            self.pref += os.sep
        self.suff, self.label_delim = suff, label_delim

    def _read(self, row, c):
        try:
            if isinstance(c, int) and isinstance(row, Mapping) and c not in row:
                return list(row.values())[c]
            if isinstance(c, int) and hasattr(row, "iloc") and c not in getattr(row, "index", ()):
                return row.iloc[c]
            return row[c]
        except (KeyError, IndexError, TypeError) as e:
            cols = list(row.keys()) if hasattr(row, "keys") else None
            raise DataError(
                f"Expected column {c!r} in every row. Received: a row of type {type(row).__name__}"
                f"{f' with columns {cols}' if cols is not None else ''}. Fix: check the column name"
                f"{_suggest_col(c, cols)}."
            ) from e

    def _post(self, v):
        if isinstance(v, str):
            if self.pref or self.suff:
                v = f"{self.pref}{v}{self.suff}"
            if self.label_delim is not None:
                v = [s for s in v.split(self.label_delim) if s != ""]
        elif self.label_delim is not None and _is_missing(v):
            v = []
        return v

    def __call__(self, row):
        if len(self.cols) == 1:
            return self._post(self._read(row, self.cols[0]))
        return [self._post(self._read(row, c)) for c in self.cols]

    def __repr__(self) -> str:
        c = self.cols[0] if len(self.cols) == 1 else self.cols
        extra = "".join(f", {k}={v!r}" for k, v in (("pref", self.pref), ("suff", self.suff)) if v) + (
            f", label_delim={self.label_delim!r}" if self.label_delim is not None else ""
        )
        return f"ColReader({c!r}{extra})"


def _suggest_col(c, cols) -> str:
    from ..utils import suggest

    return suggest(str(c), [str(x) for x in cols]) if cols else ""


class _UsingAttr:
    def __init__(self, f: Callable, attr: str):
        self.f, self.attr = f, attr

    def __call__(self, o):
        return self.f(getattr(o, self.attr))

    def __repr__(self) -> str:
        return f"using_attr({getattr(self.f, '__name__', self.f)!r}, {self.attr!r})"


def using_attr(f: Callable, attr: str) -> Callable:
    """A picklable function applying ``f`` to attribute ``attr`` of its argument.

    >>> from pathlib import Path
    >>> using_attr(RegexLabeller(r"^([a-z]+)"), "name")(Path("imgs/cat_1.png"))
    'cat'
    """
    if not callable(f):
        raise DataError(f"Expected a callable f. Received: f={f!r}. Fix: using_attr(my_function, 'name').")
    return _UsingAttr(f, attr)
