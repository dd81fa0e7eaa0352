# Chapter 2 style: DataBlock, resizing methods, augmentation, cleaning, export and inference
# ruff: noqa: F403, F405, F821, B018  (notebook-style: star import, bare expressions as cell outputs; COURSE_DATA is given)
from learnkit.vision.all import *
from learnkit.vision.widgets import *

path = Path(COURSE_DATA) / "bears"
fns = get_image_files(path)
failed = verify_images(fns)
failed.map(Path.unlink)
bears = DataBlock(
    blocks=(ImageBlock, CategoryBlock),
    get_items=get_image_files,
    splitter=RandomSplitter(valid_pct=0.2, seed=42),
    get_y=parent_label,
    item_tfms=Resize(32),
)
dls = bears.dataloaders(path, bs=16, num_workers=0)
dls.valid.show_batch(max_n=4, nrows=1)
bears = bears.new(item_tfms=Resize(32, ResizeMethod.Squish))
dls = bears.dataloaders(path, bs=16, num_workers=0)
dls.valid.show_batch(max_n=4, nrows=1)
bears = bears.new(item_tfms=Resize(32, ResizeMethod.Pad, pad_mode="zeros"))
dls = bears.dataloaders(path, bs=16, num_workers=0)
bears = bears.new(item_tfms=RandomResizedCrop(32, min_scale=0.3))
dls = bears.dataloaders(path, bs=16, num_workers=0)
dls.train.show_batch(max_n=4, nrows=1, unique=True)
bears = bears.new(item_tfms=Resize(32), batch_tfms=aug_transforms(mult=2))
dls = bears.dataloaders(path, bs=16, num_workers=0)
dls.train.show_batch(max_n=8, nrows=2, unique=True)
bears = bears.new(item_tfms=RandomResizedCrop(32, min_scale=0.5), batch_tfms=aug_transforms())
dls = bears.dataloaders(path, bs=16, num_workers=0)
learn = vision_learner(dls, resnet18, metrics=error_rate, pretrained=False)
learn.fine_tune(1)
interp = ClassificationInterpretation.from_learner(learn)
interp.plot_confusion_matrix()
interp.plot_top_losses(4, nrows=1)
cleaner = ImageClassifierCleaner(learn, max_n=6)
cleaner
for idx in cleaner.delete():
    cleaner.fns[idx].unlink()
for idx, cat in cleaner.change():
    shutil.move(str(cleaner.fns[idx]), path / cat)
learn.export()
path_here = Path()
path_here.ls(file_exts=".pkl")
learn_inf = load_learner(path_here / "export.pkl")
learn_inf.predict(fns[0])
learn_inf.dls.vocab
btn_upload = widgets.FileUpload()
out_pl = widgets.Output()
lbl_pred = widgets.Label()
btn_run = widgets.Button(description="Classify")
VBox([widgets.Label("Select your bear!"), btn_upload, btn_run, out_pl, lbl_pred])
