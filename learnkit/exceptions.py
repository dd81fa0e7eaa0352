"""Cancellation exceptions for the training loop and the user-facing error types.

Raising a cancel exception from a callback stops the current phase; control then goes to the
phase's ``after_cancel_*`` event and then its ``after_*`` event, which always runs:

========================  ================================================================
``CancelBatchException``  skip the rest of this batch (no backward/step); ``after_cancel_batch``, ``after_batch``, next batch
``CancelBackwardException`` skip ``loss.backward()``; ``after_cancel_backward``, ``after_backward``, then the step
``CancelStepException``   skip ``opt.step()`` (``zero_grad`` still runs); ``after_cancel_step``, ``after_step``
``CancelTrainException``  end the training phase of this epoch; ``after_cancel_train``, ``after_train``, validation
``CancelValidException``  end validation; ``after_cancel_validate``, ``after_validate``
``CancelEpochException``  end this epoch; ``after_cancel_epoch``, ``after_epoch``, next epoch
``CancelFitException``    end training; ``after_cancel_fit``, ``after_fit``, ``fit`` returns
========================  ================================================================
"""

from __future__ import annotations

__all__ = [
    "CancelBatchException",
    "CancelBackwardException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidException",
    "CancelEpochException",
    "CancelFitException",
    "LearnkitError",
    "DataError",
    "ModelError",
    "CheckpointError",
    "UnsafeFileError",
    "NonFiniteLossError",
    "NonFiniteGradientError",
]


class CancelBatchException(Exception):
    """Skip the rest of the current batch; ``after_cancel_batch`` then ``after_batch`` run.

    Example: ``def before_batch(self): raise CancelBatchException()`` in a :class:`Callback`.
    """


class CancelBackwardException(Exception):
    """Skip the backward pass of this batch; ``after_cancel_backward`` then ``after_backward`` run.

    Example: ``def after_loss(self): raise CancelBackwardException()`` in a :class:`Callback`.
    """


class CancelStepException(Exception):
    """Skip the optimizer step of this batch (``zero_grad`` still runs); ``after_cancel_step``, ``after_step`` run.

    Example: ``def after_backward(self): raise CancelStepException()`` in a :class:`Callback`.
    """


class CancelTrainException(Exception):
    """End the training phase of this epoch; validation still runs.

    Example: ``def after_batch(self): raise CancelTrainException()`` in a :class:`Callback`.
    """


class CancelValidException(Exception):
    """End the validation phase of this epoch.

    Example: ``def before_validate(self): raise CancelValidException()`` in a :class:`Callback`.
    """


class CancelEpochException(Exception):
    """End the current epoch; the next epoch starts.

    Example: ``def after_batch(self): raise CancelEpochException()`` in a :class:`Callback`.
    """


class CancelFitException(Exception):
    """End training; ``after_cancel_fit`` and ``after_fit`` run and ``fit`` returns normally.

    Example: ``def after_epoch(self): raise CancelFitException()`` stops ``fit`` early.
    """


class LearnkitError(Exception):
    """Base class of the errors learnkit raises about user input.

    Example: ``try: learn.fit(1)`` / ``except LearnkitError as e: print(e)``.
    """


class DataError(LearnkitError, ValueError):
    """Something about the data (files, items, labels, loaders) is not what learnkit expected.

    Example: ``try: dls = block.dataloaders(path)`` / ``except DataError as e: print(e)``.
    """


class ModelError(LearnkitError, ValueError):
    """The model, its output or its weights do not fit what the loss or the data expect.

    Example: ``try: learn.fit(1)`` / ``except ModelError as e: print(e)`` (e.g. a head of the wrong size).
    """


class CheckpointError(LearnkitError, RuntimeError):
    """A checkpoint or weights file is missing, truncated, corrupted or belongs to another model.

    Example: ``try: learn.load('model')`` / ``except CheckpointError as e: print(e)``.
    """


class UnsafeFileError(LearnkitError, RuntimeError):
    """A file would need unpickling arbitrary objects (which can run code) to load.

    Example: ``try: load_learner('export.pkl')`` / ``except UnsafeFileError as e: print(e)``.
    """


class NonFiniteLossError(LearnkitError, FloatingPointError):
    """The training loss became NaN or infinite.

    Example: ``try: learn.fit(1, lr=1e3)`` / ``except NonFiniteLossError: ...``.
    """


class NonFiniteGradientError(NonFiniteLossError):
    """The gradients became NaN or infinite (with a finite loss, e.g. ``sqrt(0)`` in the model); the loop stops
    before the optimizer step, so the weights stay finite.

    Example: ``try: learn.fit(1)`` / ``except NonFiniteGradientError: ...``.
    """
