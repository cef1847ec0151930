"""Every attribution method on a trained classifier, scored against lesion ground truth (issue 4, acceptance 3).

For each dataset: train the leaderboard's baseline (tf_efficientnet_lite0 with the shipped ImageNet weights, a
fastai head, `fit_one_cycle`) at `--size` px, then on `--n` test images (two in three with lesions) compute each
method's heatmaps for the target "referable" (sum of the probabilities of grades 2-4) and score them:

- localisation against the lesions (`evaluate_heatmaps`): pointing game, pixel-level AUC, hit rate and coverage of
  the top-4 boxes, FROC score (lesion level: mean sensitivity at 1/8 ... 8 false positives per image);
- faithfulness: area under the deletion curve, the referable score as the most-attributed pixels are blurred away
  (lower = the heatmap found what the model uses; `intact_score` is the mean score before any deletion);
- the model-randomisation sanity check (Adebayo et al. 2018): mean Spearman rank correlation between the absolute
  heatmaps of the trained model and of the same network with all its weights re-drawn (near 0 = the heatmap depends
  on what was learnt; near 1 = it would look the same for any weights; NaN = the randomised network's heatmaps are
  constant, which also fails to resemble the trained ones);
- seconds per image for the heatmaps alone (this machine, `torch.get_num_threads()` threads).

Datasets: the synthetic `bench` preset (first 300 training images; exact lesion masks) and idrid_boxes (IDRiD
images, Porwal et al. 2018, CC BY 4.0; CODRAS boxes, C. von Csefalvay 2019, CC BY-SA 4.0), where the weak label
"lesions annotated" is trained as grade 0 / 2 so that "referable" means "lesions annotated", scored against the
hard-exudate and haemorrhage/microaneurysm boxes. Writes comparison.csv (one row per dataset and method, rewritten
as each dataset finishes) and heatmaps_<dataset>.png beside this script.

    python nbs/results/attribution/run_comparison.py                       # both (about 30 min on a 2-core CPU)
    python nbs/results/attribution/run_comparison.py --part idrid --n 8
"""
import argparse, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch, matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from drnb.core import seed_everything, get_device
from drnb.metrics import MetricWarning, roc_auc
from drnb.data.block import fundus_dataloaders
from drnb.models.backbones import backbone_stats
from drnb.models.mining import fundus_tensors
from drnb.experiment import baseline_learner
from drnb.interpret.attribution import attribute, referable_score
from drnb.interpret.evaluate import evaluate_heatmaps, deletion_curve, curve_auc, sanity_check, as_lesions, show_heatmap

HERE = Path(__file__).resolve().parent
METHODS = ('saliency', 'integrated_gradients', 'smoothgrad', 'guided_backprop', 'deeplift', 'occlusion', 'gradcam', 'guided_gradcam')
ARCH = 'tf_efficientnet_lite0'

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--part', choices=('all', 'synthetic', 'idrid'), default='all')
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--n', type=int, default=16, help='test images whose heatmaps are scored')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)

def pick_images(has_lesion:np.ndarray, n:int, seed:int=0)->np.ndarray:
    "Up to n indices: two in three with lesions (more if there are too few lesion-free images), the rest without."
    rng = np.random.default_rng(seed)
    pos, neg = rng.permutation(np.flatnonzero(has_lesion)), rng.permutation(np.flatnonzero(~has_lesion))
    k = min(len(pos), max(n - len(neg), (2*n)//3))
    return np.sort(np.r_[pos[:k], neg[:n - k]]).astype(int)

def train(records, a):
    seed_everything(a.seed)
    dls = fundus_dataloaders(records[records.split != 'test'], targets=('grade',), size=a.size, bs=16, num_workers=0,
                             normalize=backbone_stats(ARCH), seed=a.seed)
    learn = baseline_learner(dls, ARCH, pretrained=True)
    t0 = time.time()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(a.epochs, a.lr)
    return learn.model.eval(), time.time() - t0

def normalise(x):
    st = backbone_stats(ARCH)
    return (x - torch.tensor(st[0]).view(1, 3, 1, 1))/torch.tensor(st[1]).view(1, 3, 1, 1)

def compare(model, x, gt, types, name):
    "One row per method: localisation, deletion AUC, sanity check, seconds per image."
    rows, maps = [], {}
    score = lambda out: referable_score(out)
    with torch.no_grad(): intact = float(score(model(x)).mean())
    for m in METHODS:
        kw = dict(n_steps=32) if m == 'integrated_gradients' else {}
        fn = lambda mod, imgs: attribute(mod, imgs, m, target='referable', batch_size=8, **kw).cpu()
        t0 = time.time(); h = fn(model, x); secs = (time.time() - t0)/len(x)
        maps[m] = h.numpy()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', MetricWarning)
            loc = evaluate_heatmaps(h, gt, types=types)
        dele = deletion_curve(model, x, h, target=score, steps=16, bs=16)
        sane = sanity_check(fn, model, x, mode='full')
        rows.append(dict(dataset=name, method=m, n_images=len(x), **loc, deletion_auc=float(np.mean(curve_auc(dele))), intact_score=intact,
                         sanity_spearman=float(sane.spearman_abs.iloc[0]), seconds_per_image=round(secs, 3)))
        print(name, rows[-1], flush=True)
    return pd.DataFrame(rows), maps

def figure(x01, gt, types, maps, name, k=3):
    "k images (those with the most lesions) x (image + each method), ground truth outlined."
    lesions = as_lesions(gt, (len(x01), *x01.shape[-2:]), types)
    idx = np.argsort([-len(l) for l in lesions])[:k]
    fig, axs = plt.subplots(k, len(maps) + 1, figsize=(2.1*(len(maps) + 1), 2.3*k), squeeze=False)
    for r, i in enumerate(idx):
        img = x01[i].permute(1, 2, 0).numpy()
        show_heatmap(img, np.zeros(img.shape[:2]), lesions[i], ax=axs[r, 0], alpha=0., title='image' if r == 0 else None)
        for c, (m, h) in enumerate(maps.items()):
            show_heatmap(img, h[i], lesions[i], ax=axs[r, c + 1], title=m if r == 0 else None)
    for ax in axs.flat: ax.set_axis_off()
    fig.suptitle(f'{name}: heatmaps for "referable", ground truth outlined', fontsize=10); fig.tight_layout()
    fig.savefig(HERE/f"heatmaps_{name.replace(':', '_')}.png", dpi=80); plt.close(fig)

def run(name, records, types, masks_or_boxes, a):
    model, secs = train(records, a)
    t = fundus_tensors(records[records.split == 'test'], a.size, types=types)
    x01 = t['x']
    with torch.no_grad(): p = referable_score(torch.cat([model(normalise(x01[i:i+16])) for i in range(0, len(x01), 16)]))
    auc = roc_auc((t['y'].numpy() >= 2), p.numpy())
    has = t['masks'].flatten(1).any(1).numpy() if masks_or_boxes == 'masks' else np.array([len(b) > 0 for b in t['boxes']])
    idx = pick_images(has, a.n, a.seed)
    gt = t['masks'][idx] if masks_or_boxes == 'masks' else [t['boxes'][i] for i in idx]
    res, maps = compare(model, normalise(x01[idx]), gt, types, name)
    res = res.assign(arch=ARCH, size=a.size, epochs=a.epochs, train_seconds=round(secs), test_referable_auc=round(auc, 3),
                     threads=torch.get_num_threads(), device=str(get_device()))
    figure(x01[idx], gt, types, maps, name)
    return res

def main(argv=None):
    a = parse(argv)
    out = HERE/'comparison.csv'
    old = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=['dataset'])
    parts = []
    if a.part in ('all', 'synthetic'):
        from drnb.synth import synthetic_dataset
        df = synthetic_dataset('bench')
        df = pd.concat([df[df.split == 'train'].head(300), df[df.split != 'train']])
        parts.append(('synthetic:bench', df, ('MA', 'HE', 'EX', 'SE'), 'masks'))
    if a.part in ('all', 'idrid'):
        from drnb.data.formats import read_idrid_boxes
        df = read_idrid_boxes()
        df['grade'] = 2*df['lesions_annotated'].astype(int)   # weak label as a grade: 'referable' = lesions annotated
        parts.append(('idrid_boxes', df, ('EX', 'HE'), 'boxes'))
    for name, df, types, kind in parts:
        res = run(name, df, types, kind, a)
        old = pd.concat([old[old.dataset != name], res], ignore_index=True)
        old.to_csv(out, index=False)

if __name__ == '__main__': main()
