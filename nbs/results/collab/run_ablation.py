"""Ablation of Zhou et al. (issue 7) on drnb's synthetic benchmark, and G on the real idrid_boxes photographs.

Synthetic part (`bench` preset, 3 seeds, mask fractions 2/5/20%): for each (seed, fraction)
  phase 1   G supervised on the masked training images                          (shared by every variant)
  (a)       + grader without attention (alpha_l = m_l), phase 2                 -> kappa; G's AUPR = phase 1's
  (b)       + learned lesion attention, phase 2 from the same G                 -> kappa; G's AUPR = phase 1's
  (c)       (b) + collaborative phase with pseudo-masks only                    -> kappa, AUPR of the fine-tuned G
  (d)       (b) + collaborative phase with pseudo-masks and the adversarial D   -> kappa, AUPR
(with --n-grade 1, the default, the grader keeps training on G's improving maps in (c) and (d); 0 freezes it)
so each step's effect is measured against the step before it, paired by seed. Metrics on the first --eval-n
test images: quadratic kappa, referable AUC, per-lesion AUPR (pixels pooled). Rows go to ablation.csv (a run
already there is skipped, so the script resumes), then ablation_summary.csv (mean, std over seeds) and
ablation_effects.csv (paired differences b-a, c-b, d-c per seed fraction: mean and std).

idrid_boxes part: G trained on the real photographs' training split with boxes as coarse masks for EX and HE
(MA, SE unknown; no grades exist), evaluated on the held-out test split by the box-level hit rate of the top-k
peaks of max(EX, HE) (drnb.interpret.evaluate.hit_rate) against a uniform-noise heatmap; idrid_boxes.csv and
idrid_boxes_maps.png (IDRiD images CC BY 4.0, Porwal et al. 2018; boxes CODRAS CC BY-SA 4.0, von Csefalvay 2019).

    python nbs/results/collab/run_ablation.py            # the full runs: hours on a CPU, minutes on a GPU (--device cuda)
    python nbs/results/collab/run_ablation.py --smoke    # a minute or two: tiny preset, 64 px, one seed, writes under smoke/
"""
import argparse, copy, json, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch

HERE = Path(__file__).resolve().parent
VARIANTS = dict(a='supervised G + grader without attention', b='+ lesion attention', c='+ pseudo-mask fine-tuning', d='+ adversarial')

def parse():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--smoke', action='store_true', help='tiny preset, 64 px, 1 seed, 1 fraction; results under smoke/')
    p.add_argument('--preset', default='bench'); p.add_argument('--size', type=int, default=256)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--fractions', type=float, nargs='+', default=[0.02, 0.05, 0.2])
    p.add_argument('--epochs', type=int, default=10, help='passes over the training images per variant, all phases together')
    p.add_argument('--arch', default='resnet18'); p.add_argument('--bs', type=int, default=16)
    p.add_argument('--pretrained', action='store_true', help="ImageNet weights for the grader's backbone (tf_efficientnet_lite0/1/2 ship offline)")
    p.add_argument('--max-train', type=int, default=0, help='train on this many synthetic training images, drawn with the seed (0: all)')
    p.add_argument('--seg-steps', type=int, default=0, help="phase 1: this many of G's gradient steps at every mask fraction (0: the epochs share of `phase_epochs`)")
    p.add_argument('--lr', type=float, default=2e-3); p.add_argument('--eval-n', type=int, default=300)
    p.add_argument('--n-grade', type=int, default=1, help='grader steps per G/D cycle in (c), (d); 0 freezes the grader there (kappa = b)')
    p.add_argument('--device', default=None); p.add_argument('--no-idrid', action='store_true')
    p.add_argument('--idrid-size', type=int, default=256); p.add_argument('--idrid-epochs', type=int, default=30)
    p.add_argument('--out', default=None, help='folder for the results (default: beside this script)')
    a = p.parse_args()
    if a.smoke:
        a.preset, a.size, a.seeds, a.fractions, a.epochs, a.bs, a.eval_n = 'tiny', 64, [0], [0.1], 1, 8, 12
        a.idrid_size, a.idrid_epochs = 64, 1
    a.out = Path(a.out) if a.out else HERE/'smoke' if a.smoke else HERE
    return a

def test_loader(dls, recs, args):
    from drnb.models.collab import records_dataset
    te = recs[recs['split'] == 'test'].head(args.eval_n)
    return dls.valid.new(dataset=records_dataset(te, args.size, 1.), shuffle=False, drop_last=False)

def evaluate(learn, dl):
    from drnb.models.collab import collab_metrics
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        r = collab_metrics(learn, dl)
    keep = ('kappa', 'accuracy', 'referable_auc', 'aupr_MA', 'aupr_HE', 'aupr_EX', 'aupr_SE')
    return {k: float(r[k]) for k in keep if k in r}

def run_synthetic(args):
    from drnb.core import seed_everything
    from drnb.synth import synthetic_dataset
    from drnb.data.formats import limit_train
    from drnb.models.collab import collab_dataloaders, collab_learner, fit_collab, phase_epochs, labelled_indices
    all_recs = synthetic_dataset(args.preset)
    f = args.out/'ablation.csv'
    done = pd.read_csv(f) if f.exists() else pd.DataFrame(columns=['seed', 'mask_fraction', 'variant'])
    rows = done.to_dict('records')
    for frac in args.fractions:
        for seed in args.seeds:
            todo = [v for v in VARIANTS if not ((done.seed == seed) & np.isclose(done.mask_fraction.astype(float), frac) & (done.variant == v)).any()]
            if not todo: continue
            recs = limit_train(all_recs, args.max_train, seed)
            seed_everything(seed)
            dls = collab_dataloaders(recs, args.size, frac, args.bs, seed=seed, device=args.device)
            dl_test = test_loader(dls, recs, args)
            n, nl = len(dls.train_ds), len(labelled_indices(dls.train_ds))
            ep = phase_epochs(n, nl, args.epochs)
            if args.seg_steps: ep['seg'] = int(np.ceil(args.seg_steps / np.ceil(nl / args.bs)))
            t0 = time.time()
            base = collab_learner(dls, args.arch, args.pretrained)
            fit_collab(base, args.epochs, args.lr, phases=('seg',), epochs_per_phase=ep)
            g_state = copy.deepcopy(base.model.seg.state_dict())
            def record(v, learn, secs):
                r = dict(seed=seed, mask_fraction=frac, variant=v, description=VARIANTS[v], n_train=n, n_masked=nl, size=args.size,
                         arch=args.arch, pretrained=args.pretrained, max_train=args.max_train, epochs=args.epochs, seg_epochs=ep['seg'], seconds=round(secs, 1), **evaluate(learn, dl_test))
                rows.append(r); pd.DataFrame(rows).to_csv(f, index=False)
                print(json.dumps({k: (round(x, 3) if isinstance(x, float) else x) for k, x in r.items() if k != 'description'}))
            # (a) grader without attention on phase 1's G
            seed_everything(seed)
            la = collab_learner(dls, args.arch, args.pretrained, attention=False); la.model.seg.load_state_dict(g_state)
            t = time.time(); fit_collab(la, args.epochs, args.lr, phases=('grade',), epochs_per_phase=ep)
            if 'a' in todo: record('a', la, time.time() - t + (t - t0))
            # (b) with attention
            seed_everything(seed)
            lb = collab_learner(dls, args.arch, args.pretrained); lb.model.seg.load_state_dict(g_state)
            t = time.time(); fit_collab(lb, args.epochs, args.lr, phases=('grade',), epochs_per_phase=ep)
            if 'b' in todo: record('b', lb, time.time() - t)
            b_state = copy.deepcopy(lb.model.state_dict())
            # (c) pseudo-masks, (d) pseudo-masks + adversarial, both from (b)
            for v, adv in (('c', False), ('d', True)):
                if v not in todo: continue
                seed_everything(seed)
                lv = collab_learner(dls, args.arch, args.pretrained); lv.model.load_state_dict(b_state)
                t = time.time(); fit_collab(lv, args.epochs, args.lr, phases=('collab',), adversarial=adv, n_grade=args.n_grade, epochs_per_phase=ep)
                record(v, lv, time.time() - t)
    df = pd.DataFrame(rows)
    mets = [c for c in ('kappa', 'referable_auc', 'aupr_MA', 'aupr_HE', 'aupr_EX', 'aupr_SE') if c in df]
    df.groupby(['mask_fraction', 'variant'])[mets].agg(['mean', 'std']).round(4).to_csv(args.out/'ablation_summary.csv')
    eff = []
    for (frac, seed), g in df.groupby(['mask_fraction', 'seed']):
        g = g.set_index('variant')
        for a, b in (('a', 'b'), ('b', 'c'), ('c', 'd')):
            if a in g.index and b in g.index:
                eff.append(dict(mask_fraction=frac, seed=seed, step=f'{b}-{a}', **{m: g.loc[b, m] - g.loc[a, m] for m in mets}))
    if eff:
        pd.DataFrame(eff).groupby(['mask_fraction', 'step'])[mets].agg(['mean', 'std']).round(4).to_csv(args.out/'ablation_effects.csv')
    print(df.groupby(['mask_fraction', 'variant'])[mets].mean().round(3).to_string())

def view_boxes_px(r, size, types=('EX', 'HE'), square='pad'):
    from drnb.data.block import fundus_square
    x0, y0, s, w, h = fundus_square(str(r['image']), square)
    return [[t, (bx0 - x0)*size/s, (by0 - y0)*size/s, (bx1 - x0)*size/s, (by1 - y0)*size/s] for t, bx0, by0, bx1, by1 in r['boxes'] if t in types]

def run_idrid(args):
    from drnb.core import seed_everything, idrid_boxes_path
    from drnb.data.formats import read_idrid_boxes
    from drnb.interpret.evaluate import hit_rate
    from drnb.models.collab import collab_dataloaders, collab_learner, fit_collab, collab_outputs, records_dataset
    if idrid_boxes_path(required=False) is None: print('idrid_boxes not found: skipped'); return
    recs = read_idrid_boxes()
    if args.smoke: recs = pd.concat([recs[recs.split == s].head(n) for s, n in (('train', 16), ('valid', 4), ('test', 8))])
    rows = []
    for seed in args.seeds:
        seed_everything(seed)
        dls = collab_dataloaders(recs, args.idrid_size, 1., args.bs, seed=seed, device=args.device, boxes_as_masks=('EX', 'HE'))
        learn = collab_learner(dls, args.arch)
        t = time.time()
        fit_collab(learn, args.idrid_epochs, args.lr, phases=('seg',), epochs_per_phase=dict(seg=args.idrid_epochs))
        te = recs[recs.split == 'test']
        dl = dls.valid.new(dataset=records_dataset(te, args.idrid_size, 1., boxes_as_masks=('EX', 'HE')), shuffle=False, drop_last=False)
        o = collab_outputs(learn, dl)
        heat = o['maps'][:, [1, 2]].amax(1)                      # max of HE, EX
        gt = [view_boxes_px(r, args.idrid_size) for r in te.to_dict('records')]
        noise = torch.rand(heat.shape, generator=torch.Generator().manual_seed(seed))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for k in (1, 4, 8):
                rows.append(dict(seed=seed, k=k, heatmap='G max(EX, HE)', hit_rate=hit_rate(heat, gt, k=k, types=('EX', 'HE')),
                                 n_test=len(te), size=args.idrid_size, epochs=args.idrid_epochs, seconds=round(time.time() - t, 1)))
                rows.append(dict(seed=seed, k=k, heatmap='uniform noise', hit_rate=hit_rate(noise, gt, k=k, types=('EX', 'HE')),
                                 n_test=len(te), size=args.idrid_size))
        pd.DataFrame(rows).to_csv(args.out/'idrid_boxes.csv', index=False)
        if seed == args.seeds[0]: figure(te, o, gt, args)
    print(pd.DataFrame(rows).groupby(['heatmap', 'k']).hit_rate.agg(['mean', 'std']).round(3).to_string())

def figure(te, o, gt, args, n=4):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    order = np.argsort([-len(g) for g in gt])[:n]
    fig, axs = plt.subplots(2, n, figsize=(3.2*n, 6.6))
    for j, i in enumerate(order):
        from drnb.data.block import load_view
        img = load_view(te.iloc[i]['image'], args.idrid_size)
        for r, (t, c) in enumerate((('EX', 2), ('HE', 1))):
            mx = max(0.1, float(o['maps'][i, c].max()))
            ax = axs[r, j]; ax.imshow(img); ax.imshow(o['maps'][i, c], cmap='magma', alpha=0.55, vmin=0, vmax=mx)
            for b in gt[i]:
                if b[0] == t: ax.add_patch(Rectangle((b[1], b[2]), b[3]-b[1], b[4]-b[2], fill=False, ec='cyan', lw=0.8))
            ax.set_title(f'G: {t} map (0 to {mx:.2f}), boxes {t}', fontsize=9); ax.axis('off')
    fig.suptitle('G trained with boxes as coarse masks, held-out idrid_boxes photographs\n'
                 'Images: IDRiD (Porwal et al. 2018, CC BY 4.0); boxes: CODRAS (von Csefalvay 2019, CC BY-SA 4.0)', fontsize=9)
    plt.tight_layout(); fig.savefig(args.out/'idrid_boxes_maps.png', dpi=90); plt.close(fig)

if __name__ == '__main__':
    args = parse()
    args.out.mkdir(parents=True, exist_ok=True)
    run_synthetic(args)
    if not args.no_idrid: run_idrid(args)
