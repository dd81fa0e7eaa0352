# Course lesson style: segmentation with a U-Net, plain functions as transforms, custom augmentation
# ruff: noqa: F403, F405, F821, B018  (notebook-style: star import, bare expressions as cell outputs; COURSE_DATA is given)
from learnkit.vision.all import *

path = Path(COURSE_DATA) / "seg"
codes = np.loadtxt(path / "codes.txt", dtype=str)
fnames = get_image_files(path / "images")


def label_func(fn):
    return path / "labels" / f"{fn.stem}_P{fn.suffix}"


dls = SegmentationDataLoaders.from_label_func(
    path, bs=8, fnames=fnames, label_func=label_func, codes=codes, num_workers=0
)
dls.show_batch(max_n=4)
learn = unet_learner(dls, resnet18, pretrained=False, blur=True, blur_final=False, self_attention=False)
learn.fine_tune(1)
learn.show_results(max_n=2, figsize=(6, 6))
learn = unet_learner(dls, resnet18, pretrained=False, act_cls=nn.LeakyReLU, norm_type=NormType.Weight)
learn.fit_one_cycle(1, 1e-3)

bpath = Path(COURSE_DATA) / "bears"


def grey(img):
    return img.convert("L").convert("RGB")


def darker(x):
    return x * 0.9


dls = ImageDataLoaders.from_folder(
    bpath,
    item_tfms=[grey, Resize(24)],
    batch_tfms=[darker, *aug_transforms(xtra_tfms=[Saturation(), Hue(max_hue=0.05)]), RandomErasing(p=0.5)],
    bs=16,
    num_workers=0,
)
dls.show_batch(unique=True, max_n=4)
tfms = setup_aug_tfms([Rotate(draw=10, p=1.0), Flip(p=0.5), Brightness(draw=0.6, p=1.0), Contrast()])
learn = vision_learner(dls, "resnet18", metrics=accuracy, pretrained=False)
learn.fine_tune(1)
interp = ClassificationInterpretation.from_learner(learn)
interp.plot_confusion_matrix(normalize=True, norm_dec=2, title="bears", cmap="Blues", plot_txt=True)
interp.print_classification_report()
