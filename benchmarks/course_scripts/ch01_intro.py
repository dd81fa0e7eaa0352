# Chapter 1 style: a first image classifier from file names (offline stand-in data in COURSE_DATA)
# ruff: noqa: F403, F405, F821, B018  (notebook-style: star import, bare expressions as cell outputs; COURSE_DATA is given)
from learnkit.vision.all import *

path = Path(COURSE_DATA) / "pets"
files = get_image_files(path / "images")
len(files), files[0].name


def is_cat(x):
    return x[0].isupper()


dls = ImageDataLoaders.from_name_func(
    path, files, valid_pct=0.2, seed=42, label_func=is_cat, item_tfms=Resize(24), bs=16, num_workers=0
)
dls.show_batch(max_n=4)
learn = vision_learner(dls, resnet18, metrics=error_rate, pretrained=False)
learn.fine_tune(1)
img = PILImage.create(files[0])
img.to_thumb(48)
is_cat_pred, _, probs = learn.predict(img)
print(f"Is this a cat?: {is_cat_pred}.")
print(f"Probability it's a cat: {probs[1].item():.6f}")
learn.show_results(max_n=4)
learn.recorder.values[-1]
