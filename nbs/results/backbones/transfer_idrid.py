"""Transfer experiment on the real idrid_boxes photographs (issue 12, acceptance 3, real-data half).

ImageNet-pretrained tf_efficientnet_lite0 (shipped weights, `fine_tune`: 1 frozen epoch then all layers) vs the same
network from scratch vs resnet18 from scratch (`fit_one_cycle`), same epochs, 224 px, on the weak image label
"lesions annotated" (the image has at least one hard-exudate or haemorrhage/microaneurysm box). One stratified
80/20 split with a fixed seed; three training seeds; test ROC AUC after the last epoch (no model selection on
the test images). Rows are appended to transfer_idrid.csv beside this file as each run ends.

Data: IDRiD images (Porwal et al. 2018, IEEE DataPort, CC BY 4.0) with CODRAS boxes (C. von Csefalvay 2019,
CC BY-SA 4.0), found through drnb.core.idrid_boxes_path(); a 256 px copy for speed is written to a temporary
folder outside the project and deleted at the end.

    python nbs/results/backbones/transfer_idrid.py [--epochs 4] [--seeds 0 1 2] [--threads 1]
"""
import argparse, time, tempfile, shutil
from pathlib import Path
import pandas as pd, torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from fastai.vision.all import DataBlock, ImageBlock, CategoryBlock, ColReader, IndexSplitter, Resize, aug_transforms
from drnb.core import idrid_boxes_path, seed_everything
from drnb.models.backbones import backbone_learner

OUT = Path(__file__).resolve().parent/'transfer_idrid.csv'
CONFIGS = [('lite0 ImageNet', 'tf_efficientnet_lite0', True), ('lite0 scratch', 'tf_efficientnet_lite0', False),
           ('resnet18 scratch', 'resnet18', False)]

def idrid_records(root:Path)->pd.DataFrame:
    "Minimal record table of idrid_boxes: image path and the weak label `lesions_annotated` (any class 1 or 2 box)."
    rows = []
    for img in sorted((root/'images').glob('*.jpg')):
        txt = img.with_suffix('.txt')
        if not txt.exists(): raise FileNotFoundError(f"{txt}: box file missing for {img.name}")
        classes = {int(l.split()[0]) for l in txt.read_text().splitlines() if l.strip()}
        rows.append(dict(image=str(img), lesions_annotated=bool(classes & {1, 2})))
    return pd.DataFrame(rows)

def shrink(df:pd.DataFrame, dest:Path, short:int=256)->pd.DataFrame:
    "Copy of `df` whose images are resized (short side `short`) into `dest`, so decoding is cheap."
    paths = []
    for p in df.image:
        im = Image.open(p).convert('RGB'); r = short/min(im.size)
        q = dest/Path(p).name; im.resize((round(im.width*r), round(im.height*r)), Image.BICUBIC).save(q, quality=95); paths.append(str(q))
    return df.assign(image=paths)

def run(df, test_idx, name, arch, pretrained, seed, epochs, size, bs, lr):
    seed_everything(seed)
    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('image'), get_y=ColReader('lesions_annotated'),
                    splitter=IndexSplitter(test_idx), item_tfms=Resize(size),
                    batch_tfms=aug_transforms(size=size, flip_vert=True, max_rotate=15., max_zoom=1.1, max_warp=0.)
                   ).dataloaders(df, bs=bs, num_workers=0)
    learn = backbone_learner(dls, arch, pretrained=pretrained, normalize=True)
    t = time.time()
    with learn.no_logging(), learn.no_bar():
        if pretrained: learn.fine_tune(epochs - 1, base_lr=lr, freeze_epochs=1)
        else: learn.fit_one_cycle(epochs, lr)
    secs = time.time() - t
    with learn.no_bar(): probs, targs = learn.get_preds(dl=dls.valid)
    pos = list(dls.vocab).index(True)
    return dict(model=name, backbone=arch, pretrained=pretrained, seed=seed, epochs=epochs, size=size, n_train=len(dls.train_ds),
                n_test=len(dls.valid_ds), test_positive_rate=round(float((targs == pos).float().mean()), 3),
                auc=round(roc_auc_score((targs == pos).numpy(), probs[:, pos].numpy()), 4), train_seconds=round(secs))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--epochs', type=int, default=4); ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--size', type=int, default=224); ap.add_argument('--bs', type=int, default=16)
    ap.add_argument('--lr', type=float, default=2e-3); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--split-seed', type=int, default=0); ap.add_argument('--limit', type=int, default=0, help='use only the first N images (smoke test)')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    df = idrid_records(idrid_boxes_path())
    if a.limit: df = df.iloc[:a.limit]
    _, test_idx = train_test_split(range(len(df)), test_size=0.2, random_state=a.split_seed, stratify=df.lesions_annotated)
    tmp = Path(tempfile.mkdtemp(prefix='drnb_idrid256_'))
    try:
        small = shrink(df, tmp)
        for seed in a.seeds:
            for name, arch, pre in CONFIGS:
                r = run(small, sorted(test_idx), name, arch, pre, seed, a.epochs, a.size, a.bs, a.lr)
                print(r, flush=True)
                if not a.limit: pd.DataFrame([r]).to_csv(OUT, mode='a', header=not OUT.exists(), index=False)
    finally: shutil.rmtree(tmp)

if __name__ == '__main__': main()
