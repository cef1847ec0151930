"""The check behind `LesionAttentiveGrader(prior=True)` (issue 7): G trained once, then three graders on its maps:
(a) without attention (alpha = m), (b) the plain learned attention (alpha ~ 0.5 at first), (b) with the prior (alpha = m at first).

    python nbs/results/collab/check_attention_prior.py demo 128 0.1 8 0     # preset, size, mask fraction, epochs, seed (about 4 min on 2 CPU cores)

Prints kappa and referable AUC on the validation split and appends them to attention_prior_check.csv beside this file.
"""
import copy, time, warnings, sys, json
warnings.filterwarnings('ignore')
import torch, pandas as pd
from drnb.core import seed_everything
from drnb.synth import synthetic_dataset
from drnb.models.collab import collab_dataloaders, collab_learner, fit_collab, phase_epochs, labelled_indices, collab_metrics
HERE = __import__("pathlib").Path(__file__).parent
preset, size, frac, epochs, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
recs = synthetic_dataset(preset)
seed_everything(seed)
dls = collab_dataloaders(recs, size, frac, 16, seed=seed)
dl_test = dls.valid
n, nl = len(dls.train_ds), len(labelled_indices(dls.train_ds)); ep = phase_epochs(n, nl, epochs)
base = collab_learner(dls, 'resnet18')
with base.no_bar(): fit_collab(base, epochs, 2e-3, phases=('seg',), epochs_per_phase=ep)
g = copy.deepcopy(base.model.seg.state_dict())
for name, kw in (('a', dict(attention=False)), ('b plain', dict(prior=False)), ('b prior', dict())):
    seed_everything(seed); t = time.time()
    l = collab_learner(dls, 'resnet18', **kw); l.model.seg.load_state_dict(g)
    with l.no_bar(): fit_collab(l, epochs, 2e-3, phases=('grade',), epochs_per_phase=ep)
    r = collab_metrics(l, dl_test)
    row = dict(preset=preset, size=size, mask_fraction=frac, epochs=epochs, seed=seed, variant=name, **{k: round(float(r[k]), 3) for k in ('kappa', 'referable_auc')}, seconds=round(time.time()-t))
    f = HERE/'attention_prior_check.csv'; pd.concat([pd.read_csv(f) if f.exists() else None, pd.DataFrame([row])]).to_csv(f, index=False)
    print(name, {k: round(float(r[k]), 3) for k in ('kappa', 'referable_auc') if k in r}, f'{time.time()-t:.0f}s', flush=True)
