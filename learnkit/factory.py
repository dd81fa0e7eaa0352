"""The shared finishing step of every ``*_learner`` factory (vision, text, tabular, collab).

An application's factory builds its model, then calls :func:`finish_learner`, which makes the
:class:`~learnkit.Learner` with the factory's default splitter, the data's path and the user's Learner
keyword arguments, and freezes the body of a pretrained model. :func:`n_out_from_data` sizes the head from
the data (``dls.c``) and refuses a different ``n_out`` with both numbers.

>>> from learnkit.factory import finish_learner, n_out_from_data  # doctest: +SKIP
>>> learn = finish_learner(dls, model, default_splitter=my_splitter, freeze=True, metrics=accuracy)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

from .exceptions import ModelError
from .learner import Learner

__all__ = ["finish_learner", "n_out_from_data"]


def n_out_from_data(dls, n_out: int | None = None, what: str = "n_out", allow_other: bool = False) -> int:
    """How many outputs the model's head needs: ``n_out`` when given, else ``dls.c``.

    A given ``n_out`` that differs from the data's is an error (a head of the wrong size trains without a
    word on broadcasting losses) unless ``allow_other=True`` (e.g. a custom loss that wants more outputs).

    Example: ``n_out_from_data(dls)`` -> ``dls.c``; ``n_out_from_data(dls, 2 * dls.c, allow_other=True)``.
    """
    c = getattr(dls, "c", None)
    if n_out is None:
        if c is None:
            raise ModelError(
                "Expected the data to say how many outputs the model needs, or n_out. Received: DataLoaders with "
                f"no target block that knows its size (dls.c is None) and n_out=None. Fix: pass {what}=<number of "
                "classes or targets>."
            )
        return int(c)
    if isinstance(n_out, bool) or not isinstance(n_out, int) or n_out < 1:
        raise ModelError(f"Expected {what} to be a positive int. Received: {what}={n_out!r}.")
    if c is not None and int(c) != n_out and not allow_other:
        vocab = getattr(dls, "vocab", None)
        shown = ""
        if vocab is not None:
            v = list(vocab[-1] if vocab and isinstance(vocab[0], (list, tuple)) else vocab)
            shown = f" (classes {v[:10]}{' ...' if len(v) > 10 else ''})"
        raise ModelError(
            f"Expected {what} to match the data, which has {c} targets{shown}. Received: {what}={n_out}. "
            f"Fix: leave {what}=None to take it from the data, or pass a loss_func that expects {n_out} outputs."
        )
    return n_out


def finish_learner(
    dls,
    model,
    default_splitter: Callable | None = None,
    freeze: bool = False,
    splitter: Callable | None = None,
    path=None,
    learner_cls: type[Learner] = Learner,
    **learner_kw,
) -> Learner:
    """Make the factory's :class:`~learnkit.Learner`: the user's ``splitter`` or the factory's default, the
    data's path unless ``path`` is given, and the body frozen when ``freeze`` (a pretrained model), so
    ``fit`` trains the head and ``fine_tune`` does both stages. ``learner_kw`` go to ``Learner``;
    ``learner_cls`` is the class to make (an application's ``Learner`` subclass, e.g. ``CollabLearner``).

    Example: ``learn = finish_learner(dls, model, default_splitter=my_splitter, freeze=True)``.
    """
    learn = learner_cls(
        dls,
        model,
        splitter=splitter or default_splitter,
        path=path if path is not None else getattr(dls, "path", "."),
        **learner_kw,
    )
    if freeze:
        learn.freeze()
    return learn
