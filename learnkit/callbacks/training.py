"""Training recipes as callbacks: gradient accumulation, gradient clipping, mixed precision, channels-last
memory format, frozen BatchNorm statistics, and short epochs for quick checks.

They compose; at the events they share they run in this order (their ``order``):

===================  =====  ===========================================================================
callback             order  what it does at which event
===================  =====  ===========================================================================
GradientAccumulation     5  scales ``loss_grad`` (before_backward); skips step + zero_grad on accumulating
                            batches (CancelBatchException in after_backward); evens out the last step
                            (before_step)
GradientClip            20  clips the gradient norm in before_step, i.e. after the grad scaler unscaled
MixedPrecision          30  autocast around forward + loss; with fp16 a GradScaler: scale (before_backward),
                            unscale (after_backward), ``scaler.step`` + ``update`` (before_step, last)
===================  =====  ===========================================================================

>>> import torch
>>> from torch import nn
>>> from learnkit import Learner, DataLoaders
>>> x = torch.randn(256, 8); y = (x.sum(1) > 0).long()
>>> dls = DataLoaders.from_tensors((x[:200], y[:200]), (x[200:], y[200:]), bs=16, device="cpu")
>>> learn = Learner(dls, nn.Linear(8, 2), loss_func=nn.CrossEntropyLoss(),
...                 cbs=[GradientAccumulation(64), GradientClip(1.0), MixedPrecision("bf16")])
>>> learn.fit(1, quiet=True)
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..device import autocast_dtype
from ..exceptions import (
    CancelBatchException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    CheckpointError,
)
from ..utils import find_bs
from .core import Callback

__all__ = ["GradientAccumulation", "GradientClip", "MixedPrecision", "ChannelsLast", "BnFreeze", "ShortEpoch"]


def _opt_params(learn) -> list[nn.Parameter]:
    """The optimizer's parameters, in a stable order (param groups, then order within each group)."""
    return [p for g in learn.opt.param_groups for p in g["params"]]


def _ddp_model(learn):
    """The learner's DistributedDataParallel wrapper (``learn.ddp_model`` set by the distributed trainer, or a
    DDP module passed as the model), or None when not training with DDP."""
    from torch.nn.parallel import DistributedDataParallel

    for m in (getattr(learn, "ddp_model", None), getattr(learn, "model", None), getattr(learn, "_fwd", None)):
        if isinstance(m, DistributedDataParallel):
            return m
    return None


# ----------------------------------------------------------------------------------------------- accumulation
class GradientAccumulation(Callback):
    """Accumulate gradients over several batches until ``n_acc`` samples were seen, then take one optimizer step.

    The result is the step one batch of ``n_acc`` samples would give: each batch's (mean-reduced) loss is scaled
    by ``bs / n_acc`` before backward, and when the accumulated count is not exactly ``n_acc`` (``n_acc`` not a
    multiple of the batch size, or the short last batch of an epoch) the gradients are rescaled before the step
    so that they are the mean over the samples actually accumulated. A loss with ``reduction='sum'`` is left
    unscaled (sums add up by themselves). The last batch of each epoch always steps, like a big-batch loader
    with ``drop_last=False``. Under distributed training ``n_acc`` counts this process's samples, so one
    step covers ``n_acc * world_size`` samples in all.

    On accumulating batches the step and ``zero_grad`` are skipped by raising
    :class:`~learnkit.exceptions.CancelBatchException` after backward (``after_cancel_batch`` and
    ``after_batch`` still run; callbacks ordered after this one do not see that batch's ``after_backward``).
    Under DistributedDataParallel the forward and backward of accumulating batches run inside
    ``model.no_sync()``, so gradients are all-reduced only once per step.

    The partially accumulated gradients are part of :meth:`state_dict`, so a checkpoint written mid-accumulation
    resumes exactly.

    Args:
        n_acc: number of samples per optimizer step (the "big batch" size).

    >>> cb = GradientAccumulation(n_acc=64)   # with bs=16: one step every 4 batches
    """

    order = 5
    run_valid = False

    def __init__(self, n_acc: int = 32):
        if isinstance(n_acc, bool) or not isinstance(n_acc, int) or n_acc < 1:
            raise ValueError(
                f"Expected n_acc to be a positive number of samples. Received: n_acc={n_acc!r}. "
                "Fix: GradientAccumulation(n_acc=64) steps once every 64 samples."
            )
        self.n_acc = n_acc
        self.count = 0
        self._no_sync = None
        self._restored = None
        self._will_step = True
        self._bs = 0

    # -- helpers
    def _exit_no_sync(self) -> None:
        ctx, self._no_sync = self._no_sync, None
        if ctx is not None:
            ctx.__exit__(None, None, None)

    # -- events
    def before_fit(self):
        learn = self.learn
        self._exit_no_sync()
        self._scale_loss = getattr(learn.loss_func, "reduction", "mean") != "sum"
        if self._restored is not None:
            d, self._restored = self._restored, None
            self.count = int(d["count"])
            if self.count and d["grads"]:
                params = _opt_params(learn)
                if len(params) != len(d["grads"]):
                    raise CheckpointError(
                        f"Expected accumulated gradients for {len(params)} parameters. Received: "
                        f"{len(d['grads'])} in the checkpoint. Fix: resume with the same model and "
                        "optimizer setup."
                    )
                for p, g in zip(params, d["grads"]):
                    p.grad = None if g is None else g.to(device=p.device, dtype=p.dtype)
        else:
            # leftovers of an earlier fit that stopped mid-accumulation are dropped
            if self.count and learn.opt is not None:
                learn.opt.zero_grad(set_to_none=True)
            self.count = 0

    def before_batch(self):
        learn = self.learn
        self._bs = find_bs(learn.yb) or find_bs(learn.xb)
        try:
            last = learn.iter >= len(learn.dl) - 1
        except TypeError:  # a loader without a length: never force a step at the end
            last = False
        self._will_step = last or self.count + self._bs >= self.n_acc
        if not self._will_step:
            ddp = _ddp_model(learn)
            if ddp is not None:  # the forward must run inside no_sync too (DDP prepares the reducer there)
                self._exit_no_sync()
                self._no_sync = ddp.no_sync()
                self._no_sync.__enter__()

    def before_backward(self):
        learn = self.learn
        if self._scale_loss:
            learn.loss_grad = learn.loss_grad * (self._bs / self.n_acc)
        self.count += self._bs

    def after_backward(self):
        self._exit_no_sync()
        if not self._will_step:
            learn = self.learn
            # This batch is applied (its gradients are in p.grad): Checkpoint's interrupt path counts it as done.
            learn.mark_stepped()
            raise CancelBatchException()

    def before_step(self):
        if self._scale_loss and self.count and self.count != self.n_acc:
            f = self.n_acc / self.count
            for p in _opt_params(self.learn):
                if p.grad is not None:
                    p.grad.mul_(f)

    def after_step(self):
        self.count = 0

    def after_cancel_batch(self):
        self._exit_no_sync()

    def after_batch(self):
        self._exit_no_sync()

    def after_fit(self):
        self._exit_no_sync()

    # -- checkpoints
    def state_dict(self) -> dict:
        """``n_acc``, the samples accumulated since the last step, and (mid-accumulation) the gradients."""
        grads = []
        if self.count and self.learn is not None and self.learn.opt is not None:
            grads = [None if p.grad is None else p.grad.detach().clone() for p in _opt_params(self.learn)]
        return {"n_acc": self.n_acc, "count": self.count, "grads": grads}

    def load_state_dict(self, d: dict) -> None:
        """Restore the accumulation state; the gradients are put back at the start of the next ``fit``."""
        self.n_acc = int(d.get("n_acc", self.n_acc))
        self.count = int(d["count"])
        self._restored = d


# ----------------------------------------------------------------------------------------------- clipping
class GradientClip(Callback):
    """Clip the norm of all gradients to ``max_norm`` before each optimizer step.

    Runs in ``before_step``, after :class:`MixedPrecision` unscaled the gradients and after
    :class:`GradientAccumulation` evened them out, so the norm is that of the real gradients.
    ``self.last_norm`` holds the total norm before clipping (a tensor; reading it as a float syncs the GPU).

    Args:
        max_norm: the largest allowed total norm. norm_type: the p of the p-norm (``float('inf')`` for max-norm).

    >>> cb = GradientClip(max_norm=1.0)
    """

    order = 20
    run_valid = False

    def __init__(self, max_norm: float = 1.0, norm_type: float = 2.0):
        if not (isinstance(max_norm, (int, float)) and max_norm > 0):
            raise ValueError(
                f"Expected max_norm > 0. Received: max_norm={max_norm!r}. Fix: GradientClip(1.0)."
            )
        self.max_norm, self.norm_type = float(max_norm), float(norm_type)
        self.last_norm = None

    def before_step(self):
        params = [p for p in _opt_params(self.learn) if p.grad is not None]
        if params:
            self.last_norm = nn.utils.clip_grad_norm_(params, self.max_norm, norm_type=self.norm_type)


# ----------------------------------------------------------------------------------------------- precision
class MixedPrecision(Callback):
    """Mixed-precision training: autocast around the forward pass and the loss, and a gradient scaler for fp16.

    ``dtype=None`` (the default) picks fp16 with a gradient scaler on CUDA. On any other device (CPU, MPS) it
    never slows training down: it trains in float32 and warns once, because reduced precision there is a
    trade you choose explicitly. Pass ``'bf16'`` / ``'fp16'`` (or a torch dtype) to ask for it anywhere.

    When it pays: on CUDA GPUs with tensor cores (Volta and newer) fp16 is usually 1.5-3x faster and halves
    activation memory; ``'bf16'`` needs Ampere or newer and no scaler. On CPUs bf16 autocast is faster only
    with native bf16 matrix units (Intel AMX / AVX512-BF16, e.g. Sapphire Rapids); elsewhere it emulates bf16
    and an epoch can be 10x slower or more, which is why the default leaves CPUs in float32.

    With fp16 a ``torch.amp.GradScaler`` scales the loss before backward, unscales the gradients after
    backward (so :class:`GradientClip` sees real gradients) and steps the optimizer itself (skipping steps
    whose gradients overflowed); bf16 needs no scaler.

    Autocast is entered in ``before_batch`` and left in ``after_loss`` (and on any cancel, at ``after_batch``
    and ``after_fit``), so backward, the optimizer and the metrics run outside it. During validation the
    predictions are cast back to float32 before metrics and :meth:`~learnkit.Learner.get_preds` see them.

    The scaler's state is part of :meth:`state_dict`, so checkpoints resume with the same loss scale.
    ``self.enabled`` says whether autocast is on for the current device (set at ``before_fit``).

    Args:
        dtype: ``None``, ``'fp16'``, ``'bf16'``, ``torch.float16`` or ``torch.bfloat16``.
        init_scale, growth_interval: passed to ``torch.amp.GradScaler`` (fp16 only).

    >>> cb = MixedPrecision("bf16")   # bf16 autocast on any device, asked for explicitly
    >>> cb = MixedPrecision()         # fp16 + GradScaler on CUDA; float32 (no slowdown) on a CPU
    """

    order = 30

    def __init__(
        self, dtype: str | torch.dtype | None = None, init_scale: float = 2.0**16, growth_interval: int = 2000
    ):
        if dtype is not None:
            dt = autocast_dtype(torch.device("cpu"), dtype)
            if dt not in (torch.float16, torch.bfloat16):
                raise ValueError(
                    f"Expected dtype to be torch.float16 or torch.bfloat16. Received: dtype={dtype!r}. "
                    "Fix: MixedPrecision('bf16') or MixedPrecision('fp16')."
                )
        self.requested_dtype, self.init_scale, self.growth_interval = dtype, init_scale, growth_interval
        self.dtype, self.device_type, self.scaler, self._scaler_device = None, None, None, None
        self._ctx, self._pending, self._unscaled = None, None, False
        self.enabled, self._ready, self._warned = False, False, False

    # -- setup
    def _setup(self) -> None:
        dev = torch.device(self.learn.device)
        self.device_type, self._ready = dev.type, True
        if self.requested_dtype is None and dev.type != "cuda":
            # reduced precision off CUDA only when asked: bf16 autocast on most CPUs is many times slower
            self.dtype, self.enabled, self.scaler, self._unscaled = None, False, None, False
            if not self._warned:
                warnings.warn(
                    f"MixedPrecision() on device {dev.type!r}: training in float32, since reduced precision "
                    "here is often slower. Fix: MixedPrecision('bf16') (or learn.to_bf16()) to use bf16 "
                    "autocast anyway, e.g. on CPUs with AMX; fp16 is the default on CUDA only.",
                    stacklevel=2,
                )
                self._warned = True
            return
        self.enabled = True
        self.dtype = autocast_dtype(dev, self.requested_dtype)
        if self.dtype != torch.float16:
            self.scaler = None
        elif self.scaler is None or self._scaler_device != dev.type:
            try:
                self.scaler = torch.amp.GradScaler(
                    dev.type, init_scale=self.init_scale, growth_interval=self.growth_interval
                )
                self._scaler_device = dev.type
            except Exception as e:  # a backend without a grad scaler
                warnings.warn(
                    f"No gradient scaler for device {dev.type!r} ({e}); training fp16 without loss scaling."
                )
                self.scaler = None
        if self.scaler is not None and self._pending is not None:
            self.scaler.load_state_dict(self._pending)
            self._pending = None
        self._unscaled = False

    def _exit(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            ctx.__exit__(None, None, None)

    @property
    def autocast_active(self) -> bool:
        """True between ``before_batch`` and ``after_loss`` (the forward pass and the loss)."""
        return self._ctx is not None

    # -- events
    def before_fit(self):
        self._exit()
        self._setup()

    def before_batch(self):
        self._exit()  # a stale context from an interrupted batch
        if not self._ready:  # validate()/get_preds() without a fit
            self._setup()
        if not self.enabled:
            return
        self._ctx = torch.autocast(self.device_type, dtype=self.dtype)
        self._ctx.__enter__()

    def after_loss(self):
        self._exit()
        learn = self.learn
        pred = learn.pred
        if not learn.training and isinstance(pred, torch.Tensor) and pred.dtype == self.dtype:
            learn.pred = pred.float()

    def before_backward(self):
        if self.scaler is not None:
            self.learn.loss_grad = self.scaler.scale(self.learn.loss_grad)

    def after_backward(self):
        if self.scaler is not None:
            self.scaler.unscale_(self.learn.opt)
            self._unscaled = True

    def before_step(self):
        if self.scaler is None:
            return
        learn = self.learn
        learn.in_step = (
            True  # as the loop's own step: Checkpoint keeps the last good file if interrupted here
        )
        self.scaler.step(learn.opt)  # skipped when the unscaled gradients hold inf/NaN
        learn.in_step = False
        learn.mark_stepped()
        self.scaler.update()
        self._unscaled = False
        raise CancelStepException()  # the loop must not step again; zero_grad still runs

    def _finish_scaler(self) -> None:
        if self._unscaled and self.scaler is not None:  # unscaled but the step was cancelled by someone else
            self.scaler.update()
        self._unscaled = False

    def after_step(self):
        self._finish_scaler()

    def after_cancel_batch(self):
        self._exit()

    def after_batch(self):
        self._exit()
        self._finish_scaler()

    def after_cancel_train(self):
        self._exit()

    def after_train(self):
        self._exit()

    def after_cancel_validate(self):
        self._exit()

    def after_validate(self):
        self._exit()

    def after_fit(self):
        self._exit()

    # -- checkpoints
    def state_dict(self) -> dict:
        """The autocast dtype and the grad scaler's state (scale, growth tracker)."""
        scaler = self.scaler.state_dict() if self.scaler is not None else self._pending
        return {
            "dtype": str(self.dtype).replace("torch.", "") if self.dtype is not None else None,
            "scaler": scaler,
        }

    def load_state_dict(self, d: dict) -> None:
        """Restore the scaler's state (now if the scaler exists, else when it is created in ``before_fit``)."""
        st = d.get("scaler")
        if st is None:
            return
        if self.scaler is not None:
            self.scaler.load_state_dict(st)
        else:
            self._pending = dict(st)


# ----------------------------------------------------------------------------------------------- memory format
class ChannelsLast(Callback):
    """Put the model and 4D (image) inputs in ``torch.channels_last`` memory format.

    Convolutions are faster in NHWC on recent GPUs, above all with mixed precision; on the CPU it works
    (and often helps oneDNN too). The model is converted once at ``before_fit``, each batch in ``before_batch``.

    >>> cb = ChannelsLast()
    """

    order = -5

    def before_fit(self):
        self.learn.model.to(memory_format=torch.channels_last)

    def before_batch(self):
        learn = self.learn
        learn.xb = tuple(
            x.contiguous(memory_format=torch.channels_last)
            if isinstance(x, torch.Tensor) and x.ndim == 4
            else x
            for x in learn.xb
        )


# ----------------------------------------------------------------------------------------------- batchnorm
class BnFreeze(Callback):
    """Keep BatchNorm layers of frozen parameter groups in eval mode during training.

    After ``learn.freeze()`` (or ``freeze_to(n)``), BatchNorm layers whose parameters belong to the frozen groups
    use and keep their running statistics (``running_mean`` / ``running_var`` do not change), as they were when
    the pretrained body was trained. Their affine weights still train if ``learn.train_bn`` is True; set it to
    False to freeze those too. Layers without affine parameters cannot be attributed to a group and are left alone.

    >>> cb = BnFreeze()
    """

    order = -9  # right after TrainEvalCallback put the model in train mode

    def before_train(self):
        learn = self.learn
        n = getattr(learn, "frozen_idx", 0)
        groups = getattr(learn, "_groups", None)
        if not n or not groups:
            return
        frozen = {id(p) for g in groups[:n] for p in g}
        for m in learn.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                ps = list(m.parameters(recurse=False))
                if ps and all(id(p) in frozen for p in ps):
                    m.eval()


# ----------------------------------------------------------------------------------------------- quick runs
class ShortEpoch(Callback):
    """Run only a fraction ``pct`` of each training epoch (and of validation with ``short_valid``): for quick checks.

    >>> cb = ShortEpoch(0.1)   # 10% of the batches, at least one
    """

    order = 95

    def __init__(self, pct: float = 0.01, short_valid: bool = True):
        if not (0 < pct <= 1):
            raise ValueError(f"Expected 0 < pct <= 1. Received: pct={pct!r}. Fix: ShortEpoch(0.1) for 10%.")
        self.pct, self.short_valid = pct, short_valid

    def after_batch(self):
        learn = self.learn
        if not learn.training and not self.short_valid:
            return
        if learn.iter + 1 >= max(1, math.ceil(self.pct * learn.n_iter)):
            raise CancelTrainException() if learn.training else CancelValidException()
