# Chapter 6 style: multi-label classification from a CSV, thresholds, then key-point regression
# ruff: noqa: F403, F405, F821, B018  (notebook-style: star import, bare expressions as cell outputs; COURSE_DATA is given)
from learnkit.vision.all import *

path = Path(COURSE_DATA) / "multi"
df = pd.read_csv(path / "train.csv")
df.head()
df.iloc[0, :]
df["fname"]
dblock = DataBlock()
dsets = dblock.datasets(df)
len(dsets.train), len(dsets.valid)


def get_x(r):
    return path / "images" / r["fname"]


def get_y(r):
    return r["labels"].split(" ")


def splitter(df):
    train = df.index[~df["is_valid"]].tolist()
    valid = df.index[df["is_valid"]].tolist()
    return train, valid


dblock = DataBlock(
    blocks=(ImageBlock, MultiCategoryBlock),
    splitter=splitter,
    get_x=get_x,
    get_y=get_y,
    item_tfms=RandomResizedCrop(24, min_scale=0.35),
)
dsets = dblock.datasets(df)
dsets.train[0]
dsets.train.vocab
dls = dblock.dataloaders(df, bs=16, num_workers=0)
dls.show_batch(nrows=1, ncols=3)
learn = vision_learner(dls, resnet18, metrics=partial(accuracy_multi, thresh=0.2), pretrained=False)
learn.fine_tune(1, base_lr=3e-3, freeze_epochs=1)
learn.metrics = partial(accuracy_multi, thresh=0.1)
learn.validate()
learn.metrics = partial(accuracy_multi, thresh=0.99)
learn.validate()
preds, targs = learn.get_preds()
accuracy_multi(preds, targs, thresh=0.9, sigmoid=False)
xs = torch.linspace(0.05, 0.95, 29)
accs = [accuracy_multi(preds, targs, thresh=i, sigmoid=False) for i in xs]
plt.plot(xs, accs)

ppath = Path(COURSE_DATA) / "points"
img_files = get_image_files(ppath)


def img2pose(x):
    return x.with_suffix(".txt")


def get_ctr(f):
    x, y = [float(v) for v in img2pose(f).read_text().split()]
    return tensor([x, y])


get_ctr(img_files[0])
points = DataBlock(
    blocks=(ImageBlock, PointBlock),
    get_items=get_image_files,
    get_y=get_ctr,
    splitter=FuncSplitter(lambda o: int(o.stem) % 4 == 0),
    batch_tfms=aug_transforms(size=(24, 32), max_rotate=0),
)
dls = points.dataloaders(ppath, bs=8, num_workers=0)
dls.show_batch(max_n=4, figsize=(6, 4))
xb, yb = dls.one_batch()
xb.shape, yb.shape
yb[0]
learn = vision_learner(dls, resnet18, y_range=(-1, 1), pretrained=False)
learn.lr_find()
learn.fine_tune(1, 2e-2)
math.sqrt(learn.validate()[0])
learn.show_results(ds_idx=1, nrows=1, figsize=(6, 3))
pred_pt = learn.predict(img_files[0])[0]
assert float(pred_pt.max()) > 1.5, pred_pt  # pixel coordinates, not [-1, 1]
