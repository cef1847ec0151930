"""Quellec et al. 2017 (drnb.models.mining): the comparison experiments of issue 8.

1. Synthetic `bench` preset, seeds 0 1 2, base net without (lam = 0) and with heatmap-oriented training: referable
   AUC and quadratic kappa on the test split (`grading.csv`), and lesion detection from heatmaps on the same test
   images, the net's own heatmap ('mining', its backward rule) against Captum Saliency, Integrated Gradients and
   Grad-CAM on the same model: FROC score over all lesions and per type, lesion-type image AUC (`lesions.csv`).
2. Real photographs `idrid_boxes` (IDRiD, Porwal et al. 2018, CC BY 4.0; boxes CODRAS, von Csefalvay 2019,
   CC BY-SA 4.0): the net trained on the weak label "lesions annotated" (as grade 0 / 2, so that "referable"
   means "lesions annotated"), then the same lesion-detection comparison against the EX and HE boxes
   (`idrid_lesions.csv`, `idrid_grading.csv`).

Rows are appended after every run, so an interrupted sweep keeps what it finished; a run already in the CSV
(same part, seed, lam) is skipped. Goal (the paper's claim, tested on our data): the heatmap-trained net's own
heatmaps detect lesions better than the other methods at equal false positives per image, losing at most 0.01
referable AUC.

    python nbs/results/mining/run_experiments.py                 # everything (hours on a CPU; use a GPU)
    python nbs/results/mining/run_experiments.py --part synthetic --seeds 0
    python nbs/results/mining/run_experiments.py --smoke         # minutes: tiny preset, 1 epoch, writes smoke/
"""
import argparse, json, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch
from drnb.core import seed_everything, LESION_TYPES, get_device
from drnb.metrics import grading_metrics, roc_auc, MetricWarning
from drnb.interpret.attribution import attribute
from drnb.models.mining import (mining_learner, fit_mining, mining_data, fundus_tensors, heatmap_lesion_metrics)

HERE = Path(__file__).resolve().parent
METHODS = ('mining', 'saliency', 'integrated_gradients', 'gradcam')

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--part', choices=('all', 'synthetic', 'idrid'), default='all')
    p.add_argument('--preset', default='bench', help='synthetic preset (drnb.synth.SYNTH_PRESETS)')
    p.add_argument('--arch', default='o_O', help='registered backbone of the base net')
    p.add_argument('--size', type=int, default=448, help='view side in pixels (the paper: 448)')
    p.add_argument('--pretrained', action='store_true', help='ImageNet weights for the body (tf_efficientnet_lite0/1/2 ship offline): 1 epoch with the body frozen, then all of it')
    p.add_argument('--max-train', type=int, default=0, help='train on this many synthetic training images, drawn with the seed (0: all)')
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--bs', type=int, default=16)
    p.add_argument('--lam', type=float, default=1e-2, help='weight of the heatmap sparsity term of the heatmap-trained net')
    p.add_argument('--rule', default='mining', help='backward rule of the heatmaps (training and evaluation)')
    p.add_argument('--start', type=float, default=0.3, help='fraction of training before the sparsity term starts')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--n-heat', type=int, default=200, help='test images whose heatmaps are evaluated')
    p.add_argument('--ig-steps', type=int, default=32)
    p.add_argument('--workers', type=int, default=None)
    p.add_argument('--out', type=Path, default=None, help='folder of the CSVs (default: next to this script)')
    p.add_argument('--smoke', action='store_true', help='tiny preset, 128 px, 1 epoch, seed 0, few images; writes to smoke/')
    a = p.parse_args(argv)
    if a.smoke:
        a.preset, a.size, a.epochs, a.seeds, a.n_heat, a.ig_steps, a.bs, a.arch = 'tiny', 128, 1, [0], 8, 8, 8, 'o_O_small'
        a.start, a.workers = 0., 0
    a.out = a.out or (HERE/'smoke' if a.smoke else HERE)
    return a

def predict(model, x, bs=16):
    "Regression outputs (N,) of `model` on images `x`, in eval mode."
    model.eval(); dev = next(model.parameters()).device
    with torch.no_grad(): return torch.cat([model(x[i:i+bs].to(dev)).float().cpu().flatten() for i in range(0, len(x), bs)])

def heatmaps(model, x, method, a):
    kw = dict(rule=a.rule) if method == 'mining' else dict(n_steps=a.ig_steps) if method == 'integrated_gradients' else {}
    return attribute(model, x, method, batch_size=max(1, a.bs//2), **kw).cpu()

def pick_images(gt, n, seed=0):
    "Up to n images: those with lesions first (two in three), then lesion-free ones (for false positives and AUCs)."
    has = np.array([bool(len(g)) for g in gt]) if isinstance(gt, list) else gt.reshape(len(gt), -1).any(1).numpy()
    rng = np.random.default_rng(seed)
    pos, neg = rng.permutation(np.flatnonzero(has)), rng.permutation(np.flatnonzero(~has))
    k = min(len(pos), max(n - len(neg), (2*n)//3))
    return np.sort(np.r_[pos[:k], neg[:n - k]]).astype(int)

def append(rows, f):
    f.parent.mkdir(parents=True, exist_ok=True)
    d = pd.DataFrame(rows)
    d.to_csv(f, mode='a', header=not f.exists(), index=False)

def done(f, **key):
    if not f.exists(): return False
    d = pd.read_csv(f)
    if not set(key) <= set(d.columns): return False
    return bool(((d[list(key)] == pd.Series(key)).all(axis=1)).any())

def lesion_rows(model, t, idx, types, a, **key):
    gt = t['masks'][idx] if t['masks'] is not None else [t['boxes'][i] for i in idx]
    rows = []
    for m in METHODS:
        t0 = time.time()
        h = heatmaps(model, t['x'][idx], m, a)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', MetricWarning)
            res = heatmap_lesion_metrics(h, gt, types)
        rows.append(dict(key, method=m + (f' ({a.rule})' if m == 'mining' else ''), n_images=len(idx), seconds=round(time.time() - t0, 1), **res))
    return rows

def train(dls, seed, lam, a):
    seed_everything(seed)
    learn = mining_learner(dls, a.arch, a.pretrained, lam=lam, rule=a.rule, start=a.start)
    t0 = time.time()
    with learn.no_bar(), learn.no_logging():
        if a.pretrained:                      # the head first, on the frozen body; then everything
            fit_mining(learn, 1, a.lr); learn.unfreeze()
        fit_mining(learn, a.epochs - bool(a.pretrained), a.lr)
    return learn, time.time() - t0

def run_synthetic(a):
    from drnb.synth import synthetic_dataset
    from drnb.data.block import fundus_dataloaders
    from drnb.data.formats import limit_train
    df = synthetic_dataset(a.preset)
    t = fundus_tensors(df[df.split == 'test'], a.size)
    idx = pick_images(t['masks'], a.n_heat)
    gf, lf = a.out/'grading.csv', a.out/'lesions.csv'
    for seed in a.seeds:
        for lam in (0., a.lam):
            key = dict(preset=a.preset, arch=a.arch, size=a.size, epochs=a.epochs, seed=seed, lam=lam)
            if a.pretrained or a.max_train: key.update(pretrained=a.pretrained, max_train=a.max_train)
            if done(gf, **key): print('skip', key); continue
            dls = fundus_dataloaders(limit_train(df, a.max_train, seed), **mining_data(size=a.size), bs=a.bs, num_workers=a.workers, seed=0)
            learn, secs = train(dls, seed, lam, a)
            y = predict(learn.model, t['x'], a.bs)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', MetricWarning)
                g = grading_metrics(t['y'].numpy(), y.numpy())
            append(lesion_rows(learn.model, t, idx, LESION_TYPES, a, **key), lf)
            append([dict(key, train_seconds=round(secs, 1), **{k: g[k] for k in ('n', 'referable_auc', 'kappa', 'accuracy', 'abnormal_auc')})], gf)
            print(key, f"referable AUC {g['referable_auc']:.3f} kappa {g['kappa']:.3f} ({secs:.0f} s)")

def run_idrid(a):
    from drnb.data.formats import read_idrid_boxes
    from drnb.data.block import fundus_dataloaders
    df = read_idrid_boxes()
    df['grade'] = 2.0*df['lesions_annotated'].astype(float)   # weak label as a grade: 'referable' = lesions annotated
    if a.smoke: df = pd.concat([df[df.split == s].head(n) for s, n in (('train', 32), ('valid', 8), ('test', 8))])
    dls = fundus_dataloaders(df, **mining_data(size=a.size), bs=a.bs, num_workers=a.workers, seed=0)
    types = ('EX', 'HE')
    t = fundus_tensors(df[df.split == 'test'], a.size, types=types)
    idx = pick_images(t['boxes'], a.n_heat)
    gf, lf = a.out/'idrid_grading.csv', a.out/'idrid_lesions.csv'
    for seed in a.seeds:
        for lam in (0., a.lam):
            key = dict(dataset='idrid_boxes', arch=a.arch, size=a.size, epochs=a.epochs, seed=seed, lam=lam)
            if a.pretrained: key.update(pretrained=a.pretrained)
            if done(gf, **key): print('skip', key); continue
            learn, secs = train(dls, seed, lam, a)
            y = predict(learn.model, t['x'], a.bs)
            auc = roc_auc(t['y'].numpy() > 0, y.numpy())
            append(lesion_rows(learn.model, t, idx, types, a, **key), lf)
            append([dict(key, train_seconds=round(secs, 1), n=len(y), weak_label_auc=auc)], gf)
            print(key, f"weak-label AUC {auc:.3f} ({secs:.0f} s)")

def main(argv=None):
    a = parse(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"device {get_device()}; writing to {a.out.name}/")
    if a.part in ('all', 'synthetic'): run_synthetic(a)
    if a.part in ('all', 'idrid'): run_idrid(a)
    (a.out/f'settings_{a.part}.json').write_text(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != 'out'}, indent=1))

if __name__ == '__main__': main()
