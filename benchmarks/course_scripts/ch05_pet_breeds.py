# Chapter 5 style: regex labels, presizing, the learning-rate finder, unfreezing, discriminative rates
# ruff: noqa: F403, F405, F821, B018  (notebook-style: star import, bare expressions as cell outputs; COURSE_DATA is given)
from learnkit.vision.all import *

path = Path(COURSE_DATA) / "pets"
Path.BASE_PATH = path
(path / "images").ls()
fname = (path / "images").ls()[0]
re.findall(r"(.+)_\d+.png$", fname.name)
pets = DataBlock(
    blocks=(ImageBlock, CategoryBlock),
    get_items=get_image_files,
    splitter=RandomSplitter(seed=42),
    get_y=using_attr(RegexLabeller(r"(.+)_\d+.png$"), "name"),
    item_tfms=Resize(32),
    batch_tfms=aug_transforms(size=24, min_scale=0.75),
)
dls = pets.dataloaders(path / "images", bs=16, num_workers=0)
dls.show_batch(nrows=1, ncols=3)
pets.summary(path / "images")
learn = vision_learner(dls, resnet18, metrics=error_rate, pretrained=False)
learn.fine_tune(1, base_lr=1e-3)
x, y = dls.one_batch()
dls.vocab
preds, _ = learn.get_preds(dl=[(x, y)])
preds[0].sum()
acts = torch.randn((6, 2)) * 2
sm_acts = torch.softmax(acts, dim=1)
loss_func = nn.CrossEntropyLoss()
loss_func(acts, tensor([0, 1, 0, 1, 1, 0]))
F.cross_entropy(acts, tensor([0, 1, 0, 1, 1, 0]))
interp = ClassificationInterpretation.from_learner(learn)
interp.plot_confusion_matrix(figsize=(6, 6), dpi=60)
interp.most_confused(min_val=1)
learn = vision_learner(dls, resnet18, metrics=error_rate, pretrained=False)
lr_min, lr_steep = learn.lr_find(suggest_funcs=(minimum, steep))
print(f"Minimum/10: {lr_min:.2e}, steepest point: {lr_steep:.2e}")
learn.fit_one_cycle(1, 3e-3)
learn.unfreeze()
learn.lr_find()
learn.fit_one_cycle(1, lr_max=slice(1e-6, 1e-4))
learn.recorder.plot_loss()
learn = vision_learner(dls, resnet18, metrics=error_rate, pretrained=False).to_fp16()
learn.fine_tune(1, freeze_epochs=1)
learn.to_fp32()
