"""Callbacks that are always on: train/eval switching, the Recorder, the progress display; and helpers
to gather predictions and summarise a model."""

from __future__ import annotations

import math
import sys
import time

import torch
from torch import nn

from ..device import to_cpu
from ..optim import get_mom
from ..utils import find_bs
from .core import Callback

__all__ = ["TrainEvalCallback", "Recorder", "ProgressCallback", "GatherPreds", "model_summary", "AvgLoss"]


class TrainEvalCallback(Callback):
    """Puts the model in train/eval mode for each phase and counts training iterations (``learn.train_iter``).

    Example: ``Learner(dls, model).cbs`` includes one; ``learn.train_iter`` counts the batches.
    """

    order = -10

    def before_train(self):
        self.learn.model.train()

    def before_validate(self):
        self.learn.model.eval()

    def after_batch(self):
        if self.learn.training:
            self.learn.train_iter += 1


class AvgLoss:
    """A loss averaged over items (``sum(loss * bs) / sum(bs)``), kept on the device until read.

    Implements the metric protocol's ``dist_state``/``load_dist_state`` so distributed runs reduce it.
    """

    name = "loss"
    higher_is_better = False

    def __init__(self):
        self.reset()

    def reset(self):
        self.total, self.count = None, 0

    def accumulate_loss(self, loss: torch.Tensor, bs: int):
        v = loss.detach()
        if v.ndim:  # per-item losses (get_preds(with_loss=True))
            v, bs = v.float().sum(), v.numel()
        else:
            v = v.float() * bs
        self.total = v if self.total is None else self.total + v
        self.count += bs

    @property
    def value(self):
        if self.total is None or not self.count:
            return None
        return float(self.total) / self.count

    def dist_state(self):
        t = self.total if self.total is not None else torch.zeros(())
        return {"total": (t.reshape(1).double(), "sum"), "count": (torch.tensor([float(self.count)]), "sum")}

    def load_dist_state(self, d):
        self.total, self.count = d["total"].reshape(()), int(d["count"].item())


class Recorder(Callback):
    """Records training losses (raw and smoothed), LRs and momentums per batch, and per epoch the train loss,
    valid loss and metrics (``learn.recorder.values``, with names in ``metric_names``).

    Plots: :meth:`plot_loss`, :meth:`plot_sched`, :meth:`plot_metrics`.

    Args:
        beta: smoothing of the displayed training loss (exponential moving average, debiased).
        train_metrics: also compute the metrics on the training set.

    Example: ``learn.fit(1); learn.recorder.values[-1]; learn.recorder.plot_loss()``.
    """

    order = 50

    def __init__(self, beta: float = 0.98, train_metrics: bool = False):
        self.beta, self.train_metrics = beta, train_metrics
        self.losses, self.smooth_losses, self.lrs, self.moms, self.values, self.log_rows = (
            [],
            [],
            [],
            [],
            [],
            [],
        )
        self._restored, self._smooth, self._n_smooth = False, 0.0, 0
        self._epoch_losses, self._train_loss, self._valid_loss = [], AvgLoss(), AvgLoss()
        self._train_metric_objs = None
        self.metric_names = ["epoch", "train_loss", "valid_loss", "time"]

    # -- events
    def before_fit(self):
        learn = self.learn
        if self._restored:
            self._restored = False
        else:
            self.losses, self.smooth_losses, self.lrs, self.moms, self.values, self.log_rows = (
                [],
                [],
                [],
                [],
                [],
                [],
            )
            self._smooth, self._n_smooth = 0.0, 0
        names = [m.name for m in learn.metrics]
        self._train_metric_objs = None
        if self.train_metrics:
            import copy

            self._train_metric_objs = [copy.deepcopy(m) for m in learn.metrics]
            names = [f"train_{n}" for n in names] + [f"valid_{n}" for n in names]
        self.metric_names = ["epoch", "train_loss", "valid_loss"] + names + ["time"]
        self._has_valid = learn.dls.valid is not None

    def before_epoch(self):
        self._t0 = time.perf_counter()
        self._epoch_losses = []
        self._train_loss.reset()
        self._valid_loss.reset()
        for m in self.learn.metrics:
            m.reset()
        for m in self._train_metric_objs or ():
            m.reset()

    def before_validate(self):
        self._valid_loss.reset()
        for m in self.learn.metrics:
            m.reset()

    def after_batch(self):
        learn = self.learn
        if learn.loss is None or not learn.yb:
            return
        if learn.training:
            self._epoch_losses.append(learn.loss)
            pg = learn.opt.param_groups[-1]
            self.lrs.append(pg["lr"])
            self.moms.append(pg["betas"][0] if "betas" in pg else pg.get("momentum"))
            if self._train_metric_objs:
                self._train_loss.accumulate_loss(learn.loss, find_bs(learn.yb))
                for m in self._train_metric_objs:
                    m.accumulate(learn.pred.detach(), *learn.yb)
        else:
            self._valid_loss.accumulate_loss(learn.loss, find_bs(learn.yb))
            for m in learn.metrics:
                m.accumulate(learn.pred, *learn.yb)

    def after_train(self):
        if not self._epoch_losses:
            return
        losses = self._epoch_losses
        try:  # one stack of the epoch's scalar losses, then one cast: two ops per epoch, not two per batch
            stacked = torch.stack(losses)
        except RuntimeError:  # mixed shapes or dtypes, e.g. () and (1,), or bf16 and float32
            stacked = None
        if stacked is None or stacked.numel() != len(losses):
            stacked = torch.stack([v.float().reshape(()) for v in losses])
        raw = stacked.float().reshape(-1).cpu().tolist()
        self.losses.extend(raw)
        b, s, n = self.beta, self._smooth, self._n_smooth
        for v in raw:
            s, n = b * s + (1 - b) * v, n + 1
            self.smooth_losses.append(s / (1 - b**n))
        self._smooth, self._n_smooth = s, n
        if not self._train_metric_objs:
            self._train_loss.total = torch.tensor(sum(raw), dtype=torch.float64)
            self._train_loss.count = len(raw)
        self._sync([self._train_loss] + list(self._train_metric_objs or ()))

    def after_validate(self):
        self._sync([self._valid_loss] + list(self.learn.metrics))

    def _sync(self, objs):
        from ..distributed import sync_metrics

        sync_metrics(objs)

    def after_epoch(self):
        learn = self.learn
        vals = [self._train_loss.value, self._valid_loss.value if self._has_valid else None]
        if self._train_metric_objs:
            vals += [m.value for m in self._train_metric_objs]
        vals += [m.value if self._has_valid else None for m in learn.metrics]
        self.values.append(vals)
        self.log_rows.append([learn.epoch] + vals + [time.perf_counter() - self._t0])

    # -- reading
    def last_valid_values(self) -> list:
        """``[valid_loss, *metrics]`` of the last validation."""
        return [self._valid_loss.value] + [m.value for m in self.learn.metrics]

    @property
    def final_record(self) -> list:
        """The last epoch's values ``[train_loss, valid_loss, *metrics]`` (fastai's ``recorder.final_record``).

        >>> # learn.fit(3); train_loss, valid_loss, acc = learn.recorder.final_record
        """
        if not self.values:
            raise ValueError(
                "Expected a finished epoch. Received: recorder.values is empty (no epoch recorded yet). "
                "Fix: call learn.fit(...) first."
            )
        return list(self.values[-1])

    @property
    def smooth_loss(self) -> float | None:
        return self.smooth_losses[-1] if self.smooth_losses else None

    def value(self, name: str, row: int = -1):
        """The value of column ``name`` (e.g. 'valid_loss', 'accuracy') in epoch row ``row``."""
        cols = self.metric_names[1:-1]
        if name not in cols:
            raise KeyError(name)
        return self.values[row][cols.index(name)]

    def state_dict(self) -> dict:
        return {
            "losses": list(self.losses),
            "smooth_losses": list(self.smooth_losses),
            "lrs": list(self.lrs),
            "moms": [m if m is not None else float("nan") for m in self.moms],
            "values": [[v if v is not None else float("nan") for v in r] for r in self.values],
            "log_rows": [[v if v is not None else float("nan") for v in r] for r in self.log_rows],
            "smooth": self._smooth,
            "n_smooth": self._n_smooth,
        }

    def load_state_dict(self, d: dict) -> None:
        self.losses, self.smooth_losses, self.lrs = (
            list(d["losses"]),
            list(d["smooth_losses"]),
            list(d["lrs"]),
        )
        self.moms, self.values, self.log_rows = (
            list(d["moms"]),
            [list(r) for r in d["values"]],
            [list(r) for r in d["log_rows"]],
        )
        self._smooth, self._n_smooth, self._restored = d["smooth"], d["n_smooth"], True

    # -- plots
    def plot_loss(self, skip_start: int = 5, with_valid: bool = True, ax=None):
        """Training loss per batch (smoothed) and validation loss per epoch."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        ax.plot(
            list(range(skip_start, len(self.smooth_losses))), self.smooth_losses[skip_start:], label="train"
        )
        if with_valid and self.values:
            n_per = len(self.losses) / max(1, len(self.values))
            xs = [round(n_per * (i + 1)) - 1 for i in range(len(self.values))]
            vs = [r[1] for r in self.values]
            if any(v is not None and not math.isnan(v) for v in vs):
                ax.plot(xs, vs, marker="o", label="valid")
        ax.set_xlabel("batch")
        ax.set_ylabel("loss")
        ax.legend()
        return ax

    def plot_lr_find(self, skip_end: int = 5, ax=None):
        """The loss against the learning rate of the last :meth:`~learnkit.Learner.lr_find` (log scale), with
        its suggestions marked; ``skip_end`` drops the last points (the blow-up)."""
        finder = getattr(self.learn, "lr_finder", None) if self.learn is not None else None
        if finder is None or not finder.lrs:
            raise ValueError(
                "Expected a finished learn.lr_find(). Received: no learning-rate sweep recorded. "
                "Fix: call learn.lr_find() first."
            )
        return finder.plot(finder.suggestions, ax=ax, skip_end=skip_end)

    def plot_sched(self, keys=("lr", "mom"), figsize=None):
        """Learning rate and momentum per training batch."""
        import matplotlib.pyplot as plt

        keys = [k for k in keys if k == "lr" or any(m is not None for m in self.moms)]
        fig, axs = plt.subplots(1, len(keys), figsize=figsize or (5 * len(keys), 3.5))
        axs = [axs] if len(keys) == 1 else list(axs)
        for ax, k in zip(axs, keys):
            ax.plot(self.lrs if k == "lr" else self.moms)
            ax.set_title(k)
            ax.set_xlabel("batch")
        return axs

    def plot_metrics(self, nrows=None, ncols=None, figsize=None):
        """Every recorded column (losses and metrics) per epoch."""
        import matplotlib.pyplot as plt

        names = self.metric_names[1:-1]
        n = len(names)
        ncols = ncols or min(3, n)
        nrows = nrows or math.ceil(n / ncols)
        fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (4 * ncols, 3 * nrows), squeeze=False)
        for i, (ax, name) in enumerate(zip(axs.flat, names)):
            ax.plot([r[i] for r in self.values], marker="o")
            ax.set_title(name)
            ax.set_xlabel("epoch")
        for ax in list(axs.flat)[n:]:
            ax.axis("off")
        return axs


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.6f}" if abs(v) < 1e4 else f"{v:.4g}"


def _fmt_time(t: float) -> str:
    m, s = divmod(int(round(t)), 60)
    return f"{m:02d}:{s:02d}"


def _in_notebook() -> bool:
    if "IPython" not in sys.modules:  # never import IPython just to find out (it costs ~0.1 s)
        return False
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and "IPKernelApp" in ip.config
    except Exception:
        return False


class ProgressCallback(Callback):
    """Progress bars (tqdm.auto) for epochs and batches, and a table of metrics per epoch.

    In a notebook the table is a live-updating HTML table. Silent under ``fit(..., quiet=True)``,
    ``learn.no_bar()``, with ``$LEARNKIT_QUIET=1``, and on every rank but 0 in distributed runs.

    ``bars`` / ``table`` switch either part off alone (``learn.no_mbar()`` and ``learn.no_logging()`` do it for a
    block). ``refresh_every``: batches between updates of the bar's loss; ``mininterval``: the least seconds
    between two redraws of the batch bar (raise it for slow terminals or remote logs).

    Example: every ``Learner`` has one (``learn.cbs``); ``learn.fit(1, quiet=True)`` hides it.
    """

    order = 60

    def __init__(
        self, refresh_every: int = 25, bars: bool = True, table: bool = True, mininterval: float = 0.2
    ):
        if not (isinstance(refresh_every, int) and refresh_every > 0):
            raise ValueError(
                f"Expected refresh_every to be a positive whole number of batches. Received: {refresh_every!r}. "
                "Fix: ProgressCallback(refresh_every=25)."
            )
        if not (isinstance(mininterval, (int, float)) and mininterval >= 0):
            raise ValueError(
                f"Expected mininterval to be seconds >= 0. Received: {mininterval!r}. Fix: ProgressCallback(mininterval=0.2)."
            )
        self.refresh_every, self.bars, self.table, self.mininterval = (
            refresh_every,
            bars,
            table,
            float(mininterval),
        )
        self.mbar = self.pbar = None

    def _active(self) -> bool:
        import os

        from ..distributed import rank_distrib

        quiet = getattr(self.learn, "_quiet", None)
        return not quiet and os.environ.get("LEARNKIT_QUIET", "0") in ("", "0") and rank_distrib() == 0

    def before_fit(self):
        self.on = self._active()
        if not self.on:
            return
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.notebook = _in_notebook()
        self._printed_header, self._handle = False, None
        # disable=None: no bars when stdout is not a terminal (a log file keeps just the table)
        self.mbar = tqdm(
            total=self.learn.n_epoch,
            initial=self.learn.start_epoch,
            desc="epochs",
            leave=False,
            file=sys.stdout,
            dynamic_ncols=True,
            disable=None if self.bars else True,
            position=0,
        )

    def before_train(self):
        self._start_bar("train")

    def before_validate(self):
        self._start_bar("valid")

    def _start_bar(self, desc):
        if (
            not getattr(self, "on", False) or not self.bars or not self._active()
        ):  # e.g. validate() after a fit
            self.pbar = None
            return
        self.pbar = self._tqdm(
            total=len(self.learn.dl),
            desc=desc,
            leave=False,
            file=sys.stdout,
            dynamic_ncols=True,
            disable=None,
            position=1,
            mininterval=self.mininterval,
        )
        self._i = 0

    def after_batch(self):
        if not getattr(self, "on", False) or self.pbar is None:
            return
        self.pbar.update(1)
        self._i += 1
        if self.learn.training and self._i % self.refresh_every == 0:
            self.pbar.set_postfix(loss=f"{float(self.learn.loss):.4f}", refresh=False)

    def _close_bar(self):
        if self.pbar is not None:
            self.pbar.close()
            self.pbar = None

    def after_train(self):
        self._close_bar()

    def after_validate(self):
        self._close_bar()

    def after_epoch(self):
        if not getattr(self, "on", False):
            return
        rec = getattr(self.learn, "recorder", None)
        if rec is None or not rec.log_rows:  # the Recorder was removed: bars only
            return
        if self.mbar is not None:
            self.mbar.update(1)
        if not self.table:
            return
        names, row = rec.metric_names, rec.log_rows[-1]
        cells = [str(row[0])] + [_fmt(v) for v in row[1:-1]] + [_fmt_time(row[-1])]
        if self.notebook:
            self._show_html(
                names, [[str(r[0])] + [_fmt(v) for v in r[1:-1]] + [_fmt_time(r[-1])] for r in rec.log_rows]
            )
            return
        widths = [max(len(n), 8) for n in names]
        if not self._printed_header:
            self._tqdm.write("  ".join(n.ljust(w) for n, w in zip(names, widths)), file=sys.stdout)
            self._printed_header = True
        self._tqdm.write("  ".join(c.ljust(w) for c, w in zip(cells, widths)), file=sys.stdout)

    def _show_html(self, names, rows):
        from IPython.display import HTML, display

        head = "".join(f"<th>{n}</th>" for n in names)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        html = HTML(
            f"<table border='1' class='dataframe'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
        if self._handle is None:
            self._handle = display(html, display_id=True)
        else:
            self._handle.update(html)

    def after_fit(self):
        self._close_bar()
        if self.mbar is not None:
            self.mbar.close()
            self.mbar = None


class GatherPreds(Callback):
    """Collects predictions, targets (and inputs, per-item losses) on the CPU during validation."""

    order = 70
    run_train = False

    def __init__(self, with_input: bool = False, with_loss: bool = False):
        self.with_input, self.with_loss = with_input, with_loss
        self._p, self._t, self._i, self._l = [], [], [], []

    def before_validate(self):
        self._p, self._t, self._i, self._l = [], [], [], []

    def after_batch(self):
        learn = self.learn
        self._p.append(to_cpu(learn.pred))
        if learn.yb:
            self._t.append(to_cpu(learn.yb[0] if len(learn.yb) == 1 else learn.yb))
        if self.with_input:
            self._i.append(to_cpu(learn.xb[0] if len(learn.xb) == 1 else learn.xb))
        if self.with_loss and learn.loss is not None:
            self._l.append(to_cpu(learn.loss))

    @staticmethod
    def _cat(xs):
        if not xs:
            return None
        if isinstance(xs[0], torch.Tensor):
            return torch.cat([x.reshape(1) if x.ndim == 0 else x for x in xs])
        if isinstance(xs[0], (tuple, list)):
            return type(xs[0])(GatherPreds._cat([x[i] for x in xs]) for i in range(len(xs[0])))
        if isinstance(xs[0], dict):
            return {k: GatherPreds._cat([x[k] for x in xs]) for k in xs[0]}
        return xs

    def gather_across_ranks(self, all_gather_objects) -> None:
        """Merge every rank's gathered batches (the :class:`~learnkit.distributed.GathersAcrossRanks`
        protocol, called by the distributed trainer after a sharded validation)."""
        local = [self._cat(xs) for xs in (self._p, self._t, self._i, self._l)]
        parts = all_gather_objects(local)
        for j, attr in enumerate(("_p", "_t", "_i", "_l")):
            pieces = [p[j] for p in parts if p[j] is not None]
            setattr(self, attr, [self._cat(pieces)] if pieces else [])

    def preds(self):
        return self._cat(self._p)

    def targs(self):
        return self._cat(self._t)

    def inputs(self):
        return self._cat(self._i)

    def losses(self):
        return self._cat(self._l)


def model_summary(learn) -> str:
    """A table of the model's layers with output shapes for one batch and parameter counts."""
    model = learn.model
    rows, hooks = [], []

    def hook(m, inp, out):
        shape = (
            tuple(out.shape)
            if isinstance(out, torch.Tensor)
            else (
                tuple(out[0].shape)
                if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor)
                else "-"
            )
        )
        n = sum(p.numel() for p in m.parameters(recurse=False))
        trainable = any(p.requires_grad for p in m.parameters(recurse=False)) if n else None
        rows.append((type(m).__name__, shape, n, trainable))

    for m in model.modules():
        if len(list(m.children())) == 0 or isinstance(m, (nn.MultiheadAttention,)):
            hooks.append(m.register_forward_hook(hook))
    dl = learn.dls.train or learn.dls.valid
    bs_shape = None
    try:
        if dl is not None:
            b = next(iter(dl))
            learn._split(b)
            bs_shape = [tuple(x.shape) for x in learn.xb if isinstance(x, torch.Tensor)]
            was = model.training
            model.eval()
            with torch.no_grad():
                learn._forward()
            model.train(was)
    finally:
        for h in hooks:
            h.remove()
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    w = max([len(r[0]) for r in rows] + [10])
    lines = [
        f"{type(model).__name__} (input shapes: {bs_shape})",
        "=" * (w + 40),
        f"{'Layer (type)':<{w}}  {'Output Shape':<22} {'Param #':>10}  Trainable",
        "=" * (w + 40),
    ]
    for name, shape, n, tr in rows:
        lines.append(f"{name:<{w}}  {str(shape):<22} {n:>10,}  {'' if tr is None else tr}")
    lines += [
        "=" * (w + 40),
        f"Total params: {total:,}",
        f"Trainable params: {train:,}",
        f"Frozen params: {total - train:,}",
        "",
        f"Optimizer: {type(learn.opt).__name__ if learn.opt is not None else learn.opt_func}",
        f"Loss: {type(learn.loss_func).__name__}",
        f"Device: {learn.device}",
        f"Callbacks: {', '.join(type(c).__name__ for c in learn._sorted_cbs())}",
    ]
    if learn.frozen_idx:
        lines.insert(-4, f"Model frozen up to parameter group #{learn.frozen_idx}")
    return "\n".join(lines)


_ = get_mom
