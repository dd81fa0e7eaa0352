"""The callback base class and the ordered list of training-loop events.

A callback implements any of the events below as a method with no arguments and reaches the
learner through ``self.learn``. Events nobody implements cost nothing: the learner builds, at the
start of each ``fit``, a table of the methods each event must call.

>>> class PrintEpoch(Callback):
...     def after_epoch(self):
...         print("finished epoch", self.learn.epoch)
"""

from __future__ import annotations

import inspect
import re

__all__ = [
    "Callback",
    "EVENTS",
    "CANCEL_EVENTS",
    "EXCEPTION_EVENTS",
    "ALL_EVENTS",
    "BATCH_EVENTS",
    "event_doc",
    "loop_events",
    "sort_callbacks",
]

#: The loop's events, in the order they fire within one ``fit``.
EVENTS = (
    "before_fit",
    "before_epoch",
    "before_train",
    "before_batch",
    "after_pred",
    "after_loss",
    "before_backward",
    "after_backward",
    "before_step",
    "after_step",
    "after_batch",
    "after_train",
    "before_validate",
    "after_validate",
    "after_epoch",
    "after_fit",
)
#: Events that fire when a phase is cancelled (before that phase's ``after_*`` event).
CANCEL_EVENTS = (
    "after_cancel_batch",
    "after_cancel_backward",
    "after_cancel_step",
    "after_cancel_train",
    "after_cancel_validate",
    "after_cancel_epoch",
    "after_cancel_fit",
)
#: Fires once when ``fit`` ends with an exception that is not a cancel (KeyboardInterrupt, an error), before
#: ``after_fit``; the exception is in ``learn.exception``.
EXCEPTION_EVENTS = ("on_exception",)
ALL_EVENTS = EVENTS + CANCEL_EVENTS + EXCEPTION_EVENTS
#: The per-batch events (``run_train`` / ``run_valid`` filter only these; the others always run).
BATCH_EVENTS = frozenset(
    {
        "before_batch",
        "after_pred",
        "after_loss",
        "before_backward",
        "after_backward",
        "before_step",
        "after_step",
        "after_batch",
        "after_cancel_batch",
        "after_cancel_backward",
        "after_cancel_step",
    }
)

_EVENT_DOCS = {
    "before_fit": "start of fit: optimizer exists, callbacks set up",
    "before_epoch": "start of each epoch",
    "before_train": "start of the training phase (model.train())",
    "before_batch": "a batch is on the device in learn.xb / learn.yb; may change them",
    "after_pred": "learn.pred holds the model output; may change it",
    "after_loss": "learn.loss / learn.loss_grad hold the loss; may change it",
    "before_backward": "just before learn.loss_grad.backward()",
    "after_backward": "gradients are computed (clip or unscale here)",
    "before_step": "just before opt.step()",
    "after_step": "the optimizer stepped (zero_grad comes next)",
    "after_batch": "end of a batch (training or validation)",
    "after_train": "end of the training phase",
    "before_validate": "start of validation (model.eval(), no_grad)",
    "after_validate": "end of validation; learn.recorder has the epoch's numbers",
    "after_epoch": "end of each epoch",
    "after_fit": "end of fit (also after an interruption)",
    "on_exception": "fit is ending with an exception (in learn.exception); after_fit follows",
}


def _phase(event: str) -> str:
    return event.split("_", 2)[-1] if event.startswith("after_cancel_") else event.split("_", 1)[1]


def loop_events() -> list[tuple[str, int]]:
    """Every event of :data:`ALL_EVENTS` in the order it can fire, with its nesting depth (0 = fit ... 3 = batch).

    Each ``after_cancel_<phase>`` comes right before ``after_<phase>``; ``on_exception`` before ``after_fit``.
    """
    depth = {
        "fit": 0,
        "epoch": 1,
        "train": 2,
        "validate": 2,
        "batch": 3,
        "pred": 3,
        "loss": 3,
        "backward": 4,
        "step": 4,
        "exception": 0,
    }
    out = []
    for ev in EVENTS:
        ph = _phase(ev)
        if ev.startswith("after_"):
            out += [(c, depth[ph]) for c in CANCEL_EVENTS if _phase(c) == ph]
            if ph == "fit":
                out += [(e, 0) for e in EXCEPTION_EVENTS]
        out.append((ev, depth[ph]))
    return out


def event_doc(event: str) -> str:
    """One line saying when ``event`` fires."""
    return _EVENT_DOCS.get(event, "after the phase was cancelled")


def _snake(name: str) -> str:
    name = (re.sub(r"Callback$", "", name) or name).replace("NaN", "Nan")
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


_PLAIN = (str, int, float, bool, type(None))


def _loop_state(name: str, doc: str) -> property:
    """A read-through property: the learner's ``name`` unless the callback assigned its own value."""

    def get(self):
        own = self.__dict__
        if name in own:
            return own[name]
        if self.learn is None:
            raise AttributeError(
                f"{type(self).__name__}.{name} is the learner's state, and this callback is not "
                "attached to a Learner yet. Fix: learn.add_cb(cb) (or read it during fit)."
            )
        return getattr(self.learn, name)

    def set_(self, value):
        self.__dict__[name] = value

    return property(get, set_, doc=doc)


class Callback:
    """Base class for callbacks: override any event in :data:`EVENTS` (no arguments).

    Class attributes:
      - ``order``: callbacks run in increasing order at every event (ties keep insertion order).
      - ``run_before`` / ``run_after``: a callback class (or its name, or a list of them) this callback must run
        before / after at every event, whatever the ``order``s say.
      - ``run_train`` / ``run_valid``: set False to skip the per-batch events during training / validation.
      - ``remove_on_fit_end``: (for callbacks passed to one ``fit`` call) removed after that fit.

    The loop's state reads as ``self.learn.<name>`` or, as in fastai, directly on the callback: ``self.model,
    self.opt, self.dls, self.dl, self.xb, self.yb, self.pred, self.loss, self.loss_grad, self.loss_func,
    self.epoch, self.n_epoch, self.iter, self.n_iter, self.train_iter, self.training``. These are explicit
    properties (no attribute forwarding); assigning one on the callback stores the callback's own value and
    leaves the loop alone: to change the loop's state assign ``self.learn.pred = ...``.

    A callback with state that must survive a checkpoint implements ``state_dict()`` and
    ``load_state_dict(d)`` returning/accepting plain data and tensors; checkpoints key it by
    :attr:`state_key`.

    >>> class LossPrinter(Callback):
    ...     def after_batch(self):
    ...         if self.training:
    ...             print(self.epoch, self.iter, float(self.loss))
    """

    order: int = 0
    run_before = None
    run_after = None
    run_train: bool = True
    run_valid: bool = True
    learn = None

    model = _loop_state("model", "The learner's model.")
    opt = _loop_state("opt", "The learner's optimizer.")
    dls = _loop_state("dls", "The learner's DataLoaders.")
    dl = _loop_state("dl", "The loader of the current phase.")
    xb = _loop_state("xb", "The inputs of the current batch (a tuple).")
    yb = _loop_state("yb", "The targets of the current batch (a tuple).")
    pred = _loop_state("pred", "The model output of the current batch.")
    loss = _loop_state("loss", "The detached loss of the current batch.")
    loss_grad = _loop_state("loss_grad", "The loss of the current batch that backward() runs on.")
    loss_func = _loop_state("loss_func", "The learner's loss function.")
    epoch = _loop_state("epoch", "The current epoch (from 0).")
    n_epoch = _loop_state("n_epoch", "The number of epochs of this fit.")
    iter = _loop_state("iter", "The batch number within the current phase (from 0).")
    n_iter = _loop_state("n_iter", "The number of batches of the current phase.")
    train_iter = _loop_state("train_iter", "Training batches done since the start of the fit.")
    training = _loop_state("training", "True in the training phase, False in validation.")

    @property
    def name(self) -> str:
        """Snake-case name without the ``Callback`` suffix (``ProgressCallback`` -> ``progress``)."""
        return _snake(type(self).__name__)

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint: the class name (override it to choose another).

        When one learner holds several callbacks with the same key, checkpoints tell them apart by
        :meth:`init_args` (``EarlyStopping(monitor='accuracy', patience=3)``), then by ``#2``, ``#3`` suffixes
        in the order the callbacks were added.
        """
        return type(self).__name__

    def init_args(self) -> str:
        """The constructor arguments (plain values) that differ from their defaults, e.g. ``"monitor='accuracy'"``;
        read from the attributes of the same names."""
        try:
            params = list(inspect.signature(type(self).__init__).parameters.values())[1:]
        except (TypeError, ValueError):
            return ""
        parts = []
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name not in self.__dict__:
                continue
            v = self.__dict__[p.name]
            if isinstance(v, _PLAIN) and (p.default is p.empty or v != p.default):
                parts.append(f"{p.name}={v!r}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return type(self).__name__

    def events(self) -> list[str]:
        """The events this callback implements."""
        return [e for e in ALL_EVENTS if callable(getattr(self, e, None))]


def _names(spec) -> set[str]:
    out = set()
    for s in spec if isinstance(spec, (list, tuple, set)) else [spec]:
        if s is not None:
            out.add(s if isinstance(s, str) else s.__name__)
    return out


def _matches(cb: Callback, names: set[str]) -> bool:
    return any(c.__name__ in names for c in type(cb).__mro__)


def sort_callbacks(cbs: list[Callback]) -> list[Callback]:
    """``cbs`` by ``order`` (ties keep their order), then moved as ``run_before`` / ``run_after`` require.

    Raises ``ValueError`` naming the callbacks when the constraints contradict each other.
    """
    base = sorted(cbs, key=lambda c: getattr(c, "order", 0))
    after = {i: set() for i in range(len(base))}  # i must run after every index in after[i]
    for i, c in enumerate(base):
        for j, d in enumerate(base):
            if i == j:
                continue
            if _matches(d, _names(getattr(c, "run_before", None))) or _matches(
                c, _names(getattr(d, "run_after", None))
            ):
                after[j].add(i)
    if not any(after.values()):
        return base
    out, done = [], set()
    while len(out) < len(base):
        ready = [i for i in range(len(base)) if i not in done and after[i] <= done]
        if not ready:
            left = [type(base[i]).__name__ for i in range(len(base)) if i not in done]
            raise ValueError(
                f"The run_before / run_after constraints of the callbacks {left} contradict each other. "
                "Expected an order that satisfies all of them. Fix: drop one of the constraints."
            )
        done.add(ready[0])
        out.append(base[ready[0]])
    return out
