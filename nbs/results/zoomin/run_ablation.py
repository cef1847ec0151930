"""Zoom-in-Net ablation (issue 5): M-Net, M+A, M+A+C on the synthetic `bench` preset, 3 seeds; localisation on
the synthetic test set and on the real idrid_boxes photographs (trained on their weak label "lesions annotated").

Each seed trains the stages one after the other (M, then A with M frozen, then C with M and A frozen) and is
evaluated on the test split after each stage, so one run gives the three rows of the ablation.

Run from the repository root (hours on a 2-core CPU; minutes on a GPU):
    python nbs/results/zoomin/run_ablation.py                 # bench preset, seeds 0 1 2, + idrid_boxes
    python nbs/results/zoomin/run_ablation.py --quick         # smoke test: tiny preset, 128 px, 1 seed, no idrid
    python nbs/results/zoomin/run_ablation.py --arch tf_efficientnet_lite0 --pretrained --size 128 --max-train 300 \
        --epochs 4 2 3 --no-idrid --no-residual               # the first CPU run (about eight minutes a seed)
    python nbs/results/zoomin/run_ablation.py --arch tf_efficientnet_lite0 --pretrained --size 128 --zoom 4 \
        --max-train 300 --epochs 4 2 3 --no-idrid --out nbs/results/zoomin/residual   # residual stages, 512 px twin
    ... the same with --att-stride 16 --out nbs/results/zoomin/residual_att16          # and an 8 x 8 attention grid
    ... --random-only (with the run's --size --zoom --att-stride --out): the chance floor, random_coverage.csv
    ... --idrid-only --idrid-epochs 6 2 3 --seeds 0: only the real photographs, idrid_localisation.csv (+ idrid_config.json)
Writes, next to this file: ablation_runs.csv (one row per seed and model), ablation_summary.csv (mean, std),
localisation.csv (coverage of lesions by the top-k boxes), ablation_config.json.
"""
import argparse, json, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from drnb.core import seed_everything
from drnb.metrics import grading_metrics, roc_auc
from drnb.synth import synthetic_dataset
from drnb.data.block import fundus_dataloaders
from drnb.data.formats import limit_train
from drnb.models.zoomin import zoomin_learner, fit_zoomin, zoomin_data, zoom_coverage, lesion_views, fov_cells, attention_boxes, boxes_coverage
from drnb.models.backbones import create_backbone, backbone_stats

HERE = Path(__file__).parent
MODELS = dict(M='M-Net', A='M-Net + A-Net', C='Zoom-in-Net (M+A+C)')

def test_probs(learn, dls, records):
    "Probabilities of the current stage on `records` (a test DataLoader built like the validation one)."
    dl = dls.test_dl(records.to_dict('records'), with_labels=True)
    with learn.no_bar(): probs, _ = learn.get_preds(dl=dl)
    return probs.numpy()

def coverage_rows(learn, records, size, square, types, what, seed, ks=range(1, 9), bs=32):
    rows = []
    for i in range(0, len(records), 256):   # keep memory bounded
        part = records.iloc[i:i+256]
        x, gt = lesion_views(part, size, square, types=types)
        rows.append(zoom_coverage(learn, x, gt, ks=tuple(ks), types=types, batch_size=bs)[['k', 'covered', 'lesions']])
    df = pd.concat(rows).groupby('k', as_index=False).sum()
    return df.assign(coverage=df.covered/df.lesions, dataset=what, seed=seed)

def chance_rows(a, records, square, types, what, seeds, ks=range(1, 9)):
    "The chance floor: coverage of the top-k boxes of a uniform random attention map on the model's grid, inside the eye."
    grid = a.size//(a.att_stride or create_backbone(a.arch).stride)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in backbone_stats('resnet18'))
    twin = (a.size*a.zoom,)*2
    x, gt = lesion_views(records, a.size, square, types=types)
    eye = fov_cells(x, (grid, grid), mean, std)[:, 0]
    rows = []
    for seed in seeds:
        att = torch.rand(len(x), grid, grid, generator=torch.Generator().manual_seed(seed))*eye
        b = attention_boxes(att, (a.size, a.size), twin, twin[0]//4, max(ks))
        cov = boxes_coverage(b, (a.size, a.size), gt, ks=tuple(ks), types=types)
        rows.append(cov[['k', 'covered', 'lesions', 'coverage']].assign(dataset=what, seed=seed, grid=grid))
    return pd.concat(rows)

def random_coverage(a, seeds):
    "The chance floor on the synthetic test set, for all lesions and for microaneurysms."
    df = synthetic_dataset(a.preset)
    test = df[(df.split == 'test') & df.grade.notna()].reset_index(drop=True)
    return pd.concat([chance_rows(a, test, 'pad', t, what, seeds) for t, what in
                      ((('MA', 'HE', 'EX', 'SE'), 'synthetic: all lesions'), (('MA',), 'synthetic: microaneurysms'))])

def net_options(a): return dict(residual=not a.no_residual, att_stride=a.att_stride)
def write_config(a, name): (a.out/name).write_text(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}, indent=1))

def run_synthetic(a, seed):
    df = synthetic_dataset(a.preset)
    df = df[df.grade.notna()]
    test = df[df.split == 'test'].reset_index(drop=True)
    df = limit_train(df, a.max_train, seed)    # `max_train` training images drawn with the run's seed; valid and test stay whole
    seed_everything(seed)
    dls = fundus_dataloaders(df, **zoomin_data(a.size, a.zoom), bs=a.bs, num_workers=a.workers)
    learn = zoomin_learner(dls, a.arch, pretrained=a.pretrained, model_kwargs=net_options(a))
    rows, y = [], test.grade.astype(int).to_numpy()
    for stage, ep in zip('MAC', a.epochs):
        t0 = time.time()
        with learn.no_bar(): fit_zoomin(learn, ep, lr=a.lr, stages=(stage,))
        m = grading_metrics(y, test_probs(learn, dls, test))
        rows.append(dict(seed=seed, model=MODELS[stage], stage=stage, epochs=ep, train_seconds=round(time.time() - t0),
                         **{k: m[k] for k in ('kappa', 'referable_auc', 'abnormal_auc', 'accuracy')}))
        print(rows[-1], flush=True)
    loc = [coverage_rows(learn, test, a.size, 'pad', ('MA', 'HE', 'EX', 'SE'), 'synthetic: all lesions', seed),
           coverage_rows(learn, test, a.size, 'pad', ('MA',), 'synthetic: microaneurysms', seed)]
    return rows, loc

def run_idrid(a, seed):
    from drnb.data.formats import read_idrid_boxes
    df = read_idrid_boxes()
    df['grade'] = df.lesions_annotated.astype(int)       # the weak label, not a DR grade
    test = df[df.split == 'test'].reset_index(drop=True)
    seed_everything(seed)
    dls = fundus_dataloaders(df, **zoomin_data(a.size, a.zoom), bs=a.bs, num_workers=a.workers, square='eye')
    learn = zoomin_learner(dls, a.arch, n_out=2, pretrained=a.pretrained, model_kwargs=net_options(a))
    for stage, ep in zip('MAC', a.idrid_epochs):
        with learn.no_bar(): fit_zoomin(learn, ep, lr=a.lr, stages=(stage,))
    p = test_probs(learn, dls, test)
    auc = roc_auc(test.grade.to_numpy() == 1, p[:, 1])
    print(f'idrid_boxes seed {seed}: AUC of "lesions annotated" {auc:.3f}', flush=True)
    loc = coverage_rows(learn, test[test.lesions_annotated], a.size, 'eye', ('EX', 'HE'), 'idrid_boxes: EX and HE boxes', seed)
    chance = chance_rows(a, test[test.lesions_annotated], 'eye', ('EX', 'HE'), 'idrid_boxes: random boxes', [seed]).drop(columns='grid')
    loc = pd.concat([loc, chance])
    return loc.assign(weak_label_auc=auc)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--preset', default='bench'); ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--size', type=int, default=256); ap.add_argument('--zoom', type=int, default=2)
    ap.add_argument('--arch', default='resnet18'); ap.add_argument('--bs', type=int, default=16)
    ap.add_argument('--lr', type=float, default=1e-3); ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--epochs', type=float, nargs=3, default=[20, 5, 10], metavar=('M', 'A', 'C'))
    ap.add_argument('--idrid-epochs', type=float, nargs=3, default=[20, 5, 10], metavar=('M', 'A', 'C'))
    ap.add_argument('--pretrained', action='store_true', help='ImageNet weights for M-Net and C-Net (shipped for tf_efficientnet_lite0/1/2)')
    ap.add_argument('--max-train', type=int, default=0, help='train on this many synthetic training images (0: all)')
    ap.add_argument('--no-residual', action='store_true', help='A averaged with M, C graded by its head alone (before 2026-12-05 the only variant)')
    ap.add_argument('--att-stride', type=int, default=None, help="stride of M-Net's level A-Net works on (default: the final map)")
    ap.add_argument('--random-only', action='store_true', help='only the chance floor: random attention on the grid, written to random_coverage.csv')
    ap.add_argument('--idrid-only', action='store_true', help='only the idrid_boxes part, written to idrid_localisation.csv')
    ap.add_argument('--no-idrid', action='store_true'); ap.add_argument('--quick', action='store_true')
    ap.add_argument('--out', type=Path, default=HERE)
    a = ap.parse_args()
    if a.quick: a.preset, a.seeds, a.size, a.epochs, a.no_idrid, a.bs, a.workers = 'tiny', a.seeds[:1], 128, [1, 1, 1], True, 8, 0
    a.out.mkdir(parents=True, exist_ok=True)
    if a.random_only: return random_coverage(a, a.seeds).to_csv(a.out/'random_coverage.csv', index=False)
    if a.idrid_only:
        write_config(a, 'idrid_config.json')
        loc = []
        for s in a.seeds: loc.append(run_idrid(a, s)); pd.concat(loc).to_csv(a.out/'idrid_localisation.csv', index=False)
        return print(pd.concat(loc).groupby(['dataset', 'k']).coverage.agg(['mean', 'std']).round(3).to_string())
    write_config(a, 'ablation_config.json')
    runs, loc = [], []
    for s in a.seeds:
        r, l = run_synthetic(a, s); runs += r; loc += l
        pd.DataFrame(runs).to_csv(a.out/'ablation_runs.csv', index=False)
        pd.concat(loc).to_csv(a.out/'localisation.csv', index=False)
    runs = pd.DataFrame(runs)
    summ = runs.groupby(['stage', 'model'], sort=False)[['kappa', 'referable_auc', 'abnormal_auc']].agg(['mean', 'std'])
    summ.columns = [f'{m}_{s}' for m, s in summ.columns]
    summ.reset_index().assign(seeds=len(a.seeds), preset=a.preset, size=a.size, zoom=a.zoom, arch=a.arch, pretrained=a.pretrained, residual=not a.no_residual, att_stride=a.att_stride, max_train=a.max_train, epochs=' '.join(map(str, a.epochs))).to_csv(a.out/'ablation_summary.csv', index=False)
    print(summ.round(3).to_string())
    if not a.no_idrid:
        for s in a.seeds:
            loc.append(run_idrid(a, s))
            pd.concat(loc).to_csv(a.out/'localisation.csv', index=False)
    print(pd.concat(loc).groupby(['dataset', 'k']).coverage.agg(['mean', 'std']).round(3).to_string())

if __name__ == '__main__': main()
