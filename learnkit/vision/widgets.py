"""Notebook widgets for vision (needs the ``widgets`` extra: ``pip install learnkit[widgets]``).

:class:`ImageClassifierCleaner` is the data-cleaning step of the course: it shows the images of one
category of the training or validation set, highest loss first, each with a dropdown to keep it, mark it
for deletion or give it another label; then ``cleaner.delete()`` and ``cleaner.change()`` say what to do::

    from learnkit.vision.widgets import ImageClassifierCleaner
    cleaner = ImageClassifierCleaner(learn, max_n=30)
    cleaner                                     # displays the widget in a notebook
    for idx in cleaner.delete(): cleaner.fns[idx].unlink()
    for idx, cat in cleaner.change(): shutil.move(str(cleaner.fns[idx]), path / cat)

ipywidgets is imported here only, so ``learnkit.vision`` works without it; ``widgets``, ``VBox``, ``HBox``,
``Button``, ``Dropdown``, ``FileUpload``, ``Output``, ``Label`` and ``Layout`` are re-exported for the
course's small apps.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image as PILImageModule

from ..exceptions import DataError
from ..utils import L, LPath

try:
    import ipywidgets as widgets
    from ipywidgets import Button, Dropdown, FileUpload, HBox, Label, Layout, Output, VBox
except ImportError:  # the widgets extra is not installed: the names below raise a clear error when used
    widgets = None
    HBox = VBox = Button = Dropdown = FileUpload = Output = Label = Layout = None

__all__ = [
    "ImageClassifierCleaner",
    "widgets",
    "VBox",
    "HBox",
    "Button",
    "Dropdown",
    "FileUpload",
    "Output",
    "Label",
    "Layout",
]

KEEP, DELETE = "<Keep>", "<Delete>"


def _require_widgets() -> None:
    if widgets is None:
        raise ImportError(
            "Expected ipywidgets for learnkit.vision.widgets. Received: ipywidgets is not installed. "
            "Fix: pip install learnkit[widgets] (or pip install 'ipywidgets>=8')."
        )


def _thumb_png(path, height: int, width: int) -> bytes:
    img = PILImageModule.open(path)
    img.thumbnail((width, height))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


class ImageClassifierCleaner:
    """Review the highest-loss images of each category and split, as fastai's ``ImageClassifierCleaner``.

    Pick a category and ``Train``/``Valid`` in the two dropdowns at the top; the images of that category
    (by their current label) are shown highest loss first, at most ``max_n``, each with a dropdown:
    ``<Keep>``, ``<Delete>`` or another category. Choices are remembered per file while you switch views;
    files deleted or moved since are no longer shown.
    :attr:`fns` are the shown files; :meth:`delete` gives the indices (into :attr:`fns`) marked for
    deletion and :meth:`change` the ``(index, new_label)`` pairs of the current view.

    >>> # cleaner = ImageClassifierCleaner(learn); cleaner.fns[cleaner.delete()[0]].unlink()
    """

    def __init__(self, learn, max_n: int = 30, opts=(), height: int = 128, width: int = 256, **kwargs):
        _require_widgets()
        self.learn, self.max_n, self.height, self.width = learn, int(max_n), int(height), int(width)
        vocab = learn.dls.vocab
        if vocab is None:
            raise DataError(
                "Expected a single-label image classifier (DataLoaders with a vocab). Received: DataLoaders "
                "without one. Fix: build the learner on ImageDataLoaders or a DataBlock with a CategoryBlock."
            )
        self.vocab = [str(v) for v in vocab]
        self._splits = {}  # split name -> (files, labels (int), losses)
        for name, ds_idx in (("Train", 0), ("Valid", 1)):
            self._splits[name] = self._rank(ds_idx)
        self._choices: dict = {}  # (category, split) -> list of dropdown values
        self.cat_dd = widgets.Dropdown(options=self.vocab, value=self.vocab[0], description="Category")
        self.split_dd = widgets.Dropdown(options=["Train", "Valid"], value="Train", description="Split")
        self.cat_dd.observe(self._on_view, names="value")
        self.split_dd.observe(self._on_view, names="value")
        self.grid = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([widgets.HBox([self.cat_dd, self.split_dd]), self.grid])
        self._show()

    # ------------------------------------------------------------------ data
    def _rank(self, ds_idx: int):
        dl = self.learn.dls[ds_idx]
        items = list(getattr(getattr(dl, "dataset", None), "items", []) or [])
        files = [Path(it) for it in items if isinstance(it, (str, Path))]
        if len(files) != len(items):
            raise DataError(
                "Expected image files as the items of the data (as from get_image_files). Received: items of "
                f"type {type(items[0]).__name__ if items else 'none'}. Fix: use ImageDataLoaders.from_folder, "
                "from_name_func or a DataBlock over image files."
            )
        if not files:
            return [], torch.zeros(0, dtype=torch.long), torch.zeros(0)
        tdl = self.learn.dls.test_dl(files, with_labels=True)
        _, targs, losses = self.learn.get_preds(dl=tdl, with_loss=True)
        return files, targs.long().view(-1), losses.view(-1)

    # ------------------------------------------------------------------ view
    @property
    def _key(self):
        return self.cat_dd.value, self.split_dd.value

    def _view(self):
        """Positions (into the split's files) of the current category, highest loss first, at most max_n."""
        files, targs, losses = self._splits[self.split_dd.value]
        c = self.vocab.index(self.cat_dd.value)
        idx = (targs == c).nonzero().view(-1)
        order = losses[idx].argsort(descending=True)
        keep = [
            int(p) for p in idx[order] if files[int(p)].exists()
        ]  # files deleted or moved meanwhile: gone
        return keep[: self.max_n]

    def _on_view(self, change=None) -> None:
        self._show()

    def _show(self) -> None:
        pos = self._view()
        files = self._splits[self.split_dd.value][0]
        self._fns = L(LPath(files[p]) for p in pos)
        saved = self._choices.get(self._key, {})
        opts = [KEEP, DELETE] + [v for v in self.vocab if v != self.cat_dd.value]
        self.dropdowns = []
        cells = []
        for f in self._fns:
            dd = widgets.Dropdown(options=opts, value=saved.get(f, KEEP), layout={"width": "max-content"})
            dd.observe(self._remember, names="value")
            self.dropdowns.append(dd)
            img = widgets.Image(value=_thumb_png(f, self.height, self.width), format="png")
            cells.append(widgets.VBox([img, dd]))
        self.grid.children = tuple(cells)
        self._remember()

    def _remember(self, change=None) -> None:
        self._choices[self._key] = {f: d.value for f, d in zip(self._fns, self.dropdowns)}

    # ------------------------------------------------------------------ results (fastai's API)
    @property
    def fns(self) -> L:
        """The files shown now (current category and split), in display order."""
        return self._fns

    def values(self) -> list[str]:
        """The dropdown value of each shown image."""
        return [d.value for d in self.dropdowns]

    def delete(self) -> L:
        """Indices into :attr:`fns` of the images marked ``<Delete>``."""
        return L(i for i, v in enumerate(self.values()) if v == DELETE)

    def change(self) -> L:
        """``(index into fns, new label)`` for the images given another category."""
        return L((i, v) for i, v in enumerate(self.values()) if v not in (KEEP, DELETE))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
