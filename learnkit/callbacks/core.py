"""The callback base class and the ordered list of training-loop events.

A callback implements any of the events below as a method with no arguments and reaches the
learner through ``self.learn``. Events nobody implements cost nothing: the learner builds, at the
start of each ``fit``, a table of the methods each event must call.

>>> class PrintEpoch(Callback):
...     def after_epoch(self):
...         print("finished epoch", self.learn.epoch)
"""

from __future__ import annotations

import re

__all__ = ["Callback", "EVENTS", "CANCEL_EVENTS", "ALL_EVENTS", "event_doc"]

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
ALL_EVENTS = EVENTS + CANCEL_EVENTS

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
}


def event_doc(event: str) -> str:
    """One line saying when ``event`` fires."""
    return _EVENT_DOCS.get(event, "after the phase was cancelled")


def _snake(name: str) -> str:
    name = re.sub(r"Callback$", "", name) or name
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


class Callback:
    """Base class for callbacks: override any event in :data:`EVENTS` (no arguments).

    Class attributes:
      - ``order``: callbacks run in increasing order at every event (ties keep insertion order).
      - ``run_train`` / ``run_valid``: set False to skip the per-batch events during training / validation.
      - ``remove_on_fit_end``: (for callbacks passed to one ``fit`` call) removed after that fit.

    A callback with state that must survive a checkpoint implements ``state_dict()`` and
    ``load_state_dict(d)`` returning/accepting plain data and tensors.
    """

    order: int = 0
    run_train: bool = True
    run_valid: bool = True
    learn = None

    @property
    def name(self) -> str:
        """Snake-case name without the ``Callback`` suffix (``ProgressCallback`` -> ``progress``)."""
        return _snake(type(self).__name__)

    def __repr__(self) -> str:
        return type(self).__name__

    def events(self) -> list[str]:
        """The events this callback implements."""
        return [e for e in ALL_EVENTS if callable(getattr(self, e, None))]
