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
    """Skip the rest of the current batch; ``after_cancel_batch`` then ``after_batch`` run."""


class CancelBackwardException(Exception):
    """Skip the backward pass of this batch; ``after_cancel_backward`` then ``after_backward`` run."""


class CancelStepException(Exception):
    """Skip the optimizer step of this batch (``zero_grad`` still runs); ``after_cancel_step``, ``after_step`` run."""


class CancelTrainException(Exception):
    """End the training phase of this epoch; validation still runs."""


class CancelValidException(Exception):
    """End the validation phase of this epoch."""


class CancelEpochException(Exception):
    """End the current epoch; the next epoch starts."""


class CancelFitException(Exception):
    """End training; ``after_cancel_fit`` and ``after_fit`` run and ``fit`` returns normally."""


class LearnkitError(Exception):
    """Base class of the errors learnkit raises about user input."""


class DataError(LearnkitError, ValueError):
    """Something about the data (files, items, labels, loaders) is not what learnkit expected."""


class ModelError(LearnkitError, ValueError):
    """The model, its output or its weights do not fit what the loss or the data expect."""


class CheckpointError(LearnkitError, RuntimeError):
    """A checkpoint or weights file is missing, truncated, corrupted or belongs to another model."""


class UnsafeFileError(LearnkitError, RuntimeError):
    """A file would need unpickling arbitrary objects (which can run code) to load."""


class NonFiniteLossError(LearnkitError, FloatingPointError):
    """The training loss became NaN or infinite."""


class NonFiniteGradientError(NonFiniteLossError):
    """The gradients became NaN or infinite (with a finite loss, e.g. ``sqrt(0)`` in the model); the loop stops
    before the optimizer step, so the weights stay finite."""
