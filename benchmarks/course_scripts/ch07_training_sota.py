# Chapter 7 style: a model from scratch, normalisation, progressive resizing, TTA, MixUp, label smoothing
# ruff: noqa: F403, F405, F821, B018  (notebook-style: star import, bare expressions as cell outputs; COURSE_DATA is given)
from learnkit.vision.all import *

path = Path(COURSE_DATA) / "bears"
dblock = DataBlock(
    blocks=(ImageBlock(), CategoryBlock()),
    get_items=get_image_files,
    get_y=parent_label,
    splitter=GrandparentSplitter(valid_name="valid"),
    item_tfms=Resize(32),
    batch_tfms=aug_transforms(size=24, min_scale=0.75),
)
dls = dblock.dataloaders(path, bs=16, num_workers=0)
model = xresnet18(n_out=dls.c)
learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)
learn.fit_one_cycle(1, 3e-3)
x, y = dls.one_batch()
x.mean(dim=[0, 2, 3]), x.std(dim=[0, 2, 3])


def get_dls(bs, size):
    dblock = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_items=get_image_files,
        get_y=parent_label,
        splitter=GrandparentSplitter(valid_name="valid"),
        item_tfms=Resize(32),
        batch_tfms=[*aug_transforms(size=size, min_scale=0.75), Normalize.from_stats(*imagenet_stats)],
    )
    return dblock.dataloaders(path, bs=bs, num_workers=0)


dls = get_dls(16, 24)
x, y = dls.one_batch()
x.mean(dim=[0, 2, 3]), x.std(dim=[0, 2, 3])
model = xresnet18(n_out=dls.c, c_in=3)
learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)
learn.fit_one_cycle(1, 3e-3)
dls = get_dls(16, 16)
learn = Learner(dls, xresnet18(n_out=dls.c), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
learn.fit_one_cycle(1, 3e-3)
learn.dls = get_dls(16, 24)
learn.fine_tune(1, 1e-3)
preds, targs = learn.tta()
accuracy(preds, targs).item()
model = xse_resnext18(n_out=dls.c)
learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, cbs=MixUp())
learn.fit_one_cycle(1, 3e-3)
model = xresnext18(n_out=dls.c, act_cls=nn.Mish)
learn = Learner(dls, model, loss_func=LabelSmoothingCrossEntropy(), metrics=accuracy)
learn.fit_one_cycle(1, 3e-3)
church = PILImage.create(get_image_files(path)[0])
mixed = church.to_thumb(24)
