"""CLPI's long runs (issue 6): label noise, grading alone vs CLPI, real idrid_boxes photographs, and the notebook's demo.

    python nbs/results/clpi/run_experiments.py noise [--smoke] [--preset bench] [--size 256] [--epochs 8] [--seeds 0,1,2]
                                                     [--arch tf_efficientnet_lite0 --pretrained --max-train 300]
    python nbs/results/clpi/run_experiments.py ablation [--preset bench] [--size 256] [--epochs 8] [--seeds 0,1,2]
    python nbs/results/clpi/run_experiments.py idrid [--size 256] [--epochs 8] [--seeds 0,1,2]
    python nbs/results/clpi/run_experiments.py demo

Each writes a CSV next to this file (noise.csv, ablation.csv, idrid.csv; demo_history.csv + demo_maps.npz) and skips the
rows it already has, so an interrupted sweep resumes. `--smoke` runs a tiny version (tiny preset, 64 px, 1 epoch, one
seed, noise 0 and 40%) that only checks the script works: its rows carry smoke=1 and mean nothing.
Test metrics are on the clean test split (split 'test'; idrid: the seeded test split of read_idrid_boxes).
"""
import argparse, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch
warnings.filterwarnings('ignore')
from drnb.core import seed_everything, LESION_TYPES
from drnb.data.formats import limit_train
from drnb.metrics import quadratic_kappa, referable_auc, roc_auc
from fastai.losses import CrossEntropyLossFlat
from drnb.models.backbones import backbone_learner
from drnb.models.clpi import (clpi_tensors, tensor_dls, clpi_learner, fit_clpi, grade_probs, patch_probs, patch_auc, unlabel_patches)

HERE = Path(__file__).resolve().parent

def _done(csv, key):
    if not csv.exists(): return set()
    return set(pd.read_csv(csv)[list(key)].astype(str).apply(tuple, axis=1))

def _append(csv, row):
    "Add `row` to `csv`, rewriting it so that rows with different columns (grading alone has no patch AUC) stay aligned."
    old = pd.read_csv(csv) if csv.exists() else None
    pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(csv, index=False)
    print(row, flush=True)

def load(preset, size, grid=16, types=LESION_TYPES, source='auto'):
    "(X, G, P, splits) of a synthetic preset or of idrid_boxes."
    if preset == 'idrid':
        from drnb.data.formats import read_idrid_boxes
        df = read_idrid_boxes()
        df['grade'] = df['lesions_annotated'].astype(int)   # the weak label stands in for the grade (0/1)
        X, G, P = clpi_tensors(df, size, grid, types=types, source='boxes')
    else:
        from drnb.synth import synthetic_dataset
        df = synthetic_dataset(preset, verbose=True)
        X, G, P = clpi_tensors(df, size, grid, types=types, source=source)
    return X, G, P, df['split'].to_numpy()

def flip_grades(G, frac, seed, n=5):
    "A copy of `G` with a seeded `frac` of the grades replaced by another grade drawn uniformly."
    g = G.clone(); gen = torch.Generator().manual_seed(1000 + seed)
    idx = torch.randperm(len(g), generator=gen)[:int(round(frac*len(g)))]
    g[idx] = (g[idx] + torch.randint(1, n, (len(idx),), generator=gen)) % n
    return g

def train_eval(X, G, P, split, method='clpi', lam=1., loss='ce', noise=0., seed=0, epochs=8, lr=2e-3, bs=8,
               arch='resnet18', pretrain=0, n_grades=5, types=LESION_TYPES, pretrained=False, max_train=0):
    "Train on split 'train' (the first `max_train` of a seeded shuffle if > 0; + noisy grades), validate on 'valid', test on 'test': metrics dict."
    seed_everything(seed)
    tr, va, te = (np.where(split == s)[0] for s in ('train', 'valid', 'test'))
    if max_train: tr = limit_train(pd.DataFrame(dict(split=split)), max_train, seed).query("split == 'train'").index.to_numpy()
    if not len(te): te = va
    Gn = G.clone(); Gn[tr] = flip_grades(G[tr], noise, seed, n_grades)
    idx = np.concatenate([tr, va])
    sub = lambda t: None if t is None else t[idx]
    grids = P if method == 'clpi' else None
    dls = tensor_dls(sub(X), sub(Gn), sub(grids), valid_idx=range(len(tr), len(idx)), bs=bs, seed=seed)
    test = tensor_dls(X[te], G[te], None if grids is None else P[te], valid_idx=range(len(te)), bs=bs).valid
    t0 = time.time()
    if method == 'clpi':
        learn = clpi_learner(dls, arch, pretrained=pretrained, lam=lam, loss=loss, metrics=[])
        with learn.no_bar(), learn.no_logging(): fit_clpi(learn, epochs, lr, pretrain=pretrain)
    else:
        learn = backbone_learner(dls, arch, pretrained=pretrained, n_out=n_grades, loss_func=CrossEntropyLossFlat())
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr)
    p, y = learn.get_preds(dl=test) if method != 'clpi' else grade_probs(learn, test)
    p = torch.softmax(p, 1) if p.min() < 0 or not torch.allclose(p.sum(1), torch.ones(len(p)), atol=1e-3) else p
    out = dict(seconds=round(time.time() - t0, 1), kappa=quadratic_kappa(y, p.argmax(1), n_grades) if n_grades == 5 else np.nan,
               referable_auc=referable_auc(y, p) if n_grades == 5 else np.nan,
               weak_auc=roc_auc(y, p[:, 1]) if n_grades == 2 else np.nan)
    if method == 'clpi':
        pp, pg = patch_probs(learn, test)
        out.update({f'patch_auc_{k}': v for k, v in patch_auc(pp, pg, types).items()})
    return out, learn

def noise(a):
    csv = HERE/'noise.csv'
    X, G, P, split = load(a.preset, a.size)
    key = ('preset', 'size', 'epochs', 'noise', 'loss', 'lam', 'seed', 'smoke', 'arch', 'pretrained', 'max_train')
    done = _done(csv, key)
    for s in a.seeds:
        for nz in a.noise:
            for loss in ('ce', 'nl'):
                for lam in (0., 1.):
                    row = dict(preset=a.preset, size=a.size, epochs=a.epochs, noise=nz, loss=loss, lam=lam, seed=s, smoke=int(a.smoke),
                               arch=a.arch, pretrained=a.pretrained, max_train=a.max_train)
                    if tuple(str(row[k]) for k in key) in done: continue
                    m, _ = train_eval(X, G, P, split, 'clpi', lam, loss, nz, s, a.epochs, arch=a.arch, pretrained=a.pretrained, max_train=a.max_train)
                    _append(csv, {**row, **m})

def ablation(a):
    csv = HERE/'ablation.csv'
    X, G, P, split = load(a.preset, a.size)
    key = ('preset', 'size', 'epochs', 'method', 'seed', 'smoke')
    done = _done(csv, key)
    for s in a.seeds:
        for method in ('grading_alone', 'clpi'):
            row = dict(preset=a.preset, size=a.size, epochs=a.epochs, method=method, seed=s, smoke=int(a.smoke))
            if tuple(str(row[k]) for k in key) in done: continue
            m, _ = train_eval(X, G, P, split, method if method == 'clpi' else 'alone', seed=s, epochs=a.epochs)
            _append(csv, {**row, **m})

def idrid(a):
    csv = HERE/'idrid.csv'
    types = ('EX', 'HE')   # idrid_boxes: hard exudates, haemorrhages incl. microaneurysms
    X, G, P, split = load('idrid', a.size, types=types)
    key = ('size', 'epochs', 'method', 'seed', 'smoke')
    done = _done(csv, key)
    for s in a.seeds:
        row = dict(size=a.size, epochs=a.epochs, method='clpi', seed=s, smoke=int(a.smoke))
        if tuple(str(row[k]) for k in key) in done: continue
        seed_everything(s)
        tr, va, te = (np.where(split == k)[0] for k in ('train', 'valid', 'test'))
        idx = np.concatenate([tr, va])
        dls = tensor_dls(X[idx], G[idx], P[idx], valid_idx=range(len(tr), len(idx)), bs=8, seed=s)
        learn = clpi_learner(dls, 'resnet18', types=types, metrics=[])
        learn.model.fc = torch.nn.Linear(learn.model.fc.in_features, 2); learn.model.n_out = 2   # weak label: 2 classes
        with learn.no_bar(), learn.no_logging(): fit_clpi(learn, a.epochs, 2e-3)
        test = tensor_dls(X[te], G[te], P[te], valid_idx=range(len(te)), bs=8).valid
        p, y = grade_probs(learn, test)
        pp, pg = patch_probs(learn, test)
        _append(csv, {**row, 'weak_auc': roc_auc(y, p[:, 1]), **{f'patch_auc_{k}': v for k, v in patch_auc(pp, pg, types).items()}})

def demo(a):
    "The notebook's figure: CLPI on the tiny preset at 128 px, half the training images without patch labels."
    X, G, P, split = load('tiny', 128)
    tr, va = np.where(split == 'train')[0], np.where(split == 'valid')[0]
    Ps = P.clone(); Ps[tr] = unlabel_patches(P[tr], 0.5, seed=0)
    idx = np.concatenate([tr, va])
    seed_everything(0)
    dls = tensor_dls(X[idx], G[idx], Ps[idx], valid_idx=range(len(tr), len(idx)), bs=8, seed=0)
    learn = clpi_learner(dls, 'resnet18')
    with learn.no_bar(): fit_clpi(learn, a.epochs, 2e-3, pretrain=max(1, a.epochs//4))
    h = pd.DataFrame(learn.recorder.values, columns=learn.recorder.metric_names[1:-1]); h.insert(0, 'epoch', range(len(h)))
    h.to_csv(HERE/'demo_history.csv', index=False)
    pp, _ = patch_probs(learn)
    np.savez_compressed(HERE/'demo_maps.npz', probs=pp[:2].numpy().astype(np.float32), idx=va[:2], epochs=a.epochs)
    print(h.to_string(index=False))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('what', choices=('noise', 'ablation', 'idrid', 'demo'))
    ap.add_argument('--preset', default='bench'); ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--epochs', type=int, default=None); ap.add_argument('--seeds', default='0,1,2')
    ap.add_argument('--noise', default='0,0.1,0.2,0.4'); ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--arch', default='resnet18', help='grading backbone (noise runs)')
    ap.add_argument('--pretrained', action='store_true', help='ImageNet weights for the grading backbone (noise runs)')
    ap.add_argument('--max-train', type=int, default=0, help='train on this many training images (0: all; noise runs)')
    ap.add_argument('--smoke', action='store_true', help='tiny preset, 64 px, 1 epoch, seed 0, noise 0 and 0.4')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    a.seeds = [int(s) for s in a.seeds.split(',')]; a.noise = [float(s) for s in a.noise.split(',')]
    if a.smoke: a.preset, a.size, a.epochs, a.seeds, a.noise = 'tiny', 64, 1, [0], [0., 0.4]
    if a.epochs is None: a.epochs = 12 if a.what == 'demo' else 8
    dict(noise=noise, ablation=ablation, idrid=idrid, demo=demo)[a.what](a)
