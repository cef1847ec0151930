"""Transfer experiment (issue 12): does the shipped ImageNet checkpoint help where data is scarce?

Three networks, trained by the same `baseline` experiment as the leaderboard (same template, `fit_one_cycle`, 128 px
views, 3 epochs, batch 16, lr 2e-3; on bench the first 300 of its training images), three seeds each:
tf_efficientnet_lite0 with the shipped ImageNet weights, the same network from scratch, resnet18 from scratch.
Scored on idrid_boxes by the weak-label ROC AUC (514 real photographs, clinician boxes) and on the synthetic bench
preset by quadratic weighted kappa (1000 test images).

The pretrained arm *is* the leaderboard's baseline (identical parameters), so its rows are read from
`nbs/results/leaderboard/results.csv` rather than trained twice; the scratch arms run here, into runs/transfer/<dataset>/
(resumable: finished runs are skipped). Writes transfer.csv beside this script.

    python nbs/results/backbones/run_transfer.py [dataset ...]     # about 45 minutes on a 2-core CPU
"""
import sys
from pathlib import Path
import pandas as pd
from drnb.experiment import TEMPLATE, sweep, collect_results

here = Path(__file__).resolve().parent
leaderboard_csv = here.parent/'leaderboard'/'results.csv'
runs = Path('runs/transfer')
BASE = dict(method='baseline', image_size=128, epochs=3, batch_size=16, lr=2e-3)   # as in run_leaderboard.py
DATASETS = {'idrid_boxes': {}, 'synthetic:bench': dict(max_train=300)}
SCRATCH = {'lite0 scratch': dict(backbone='tf_efficientnet_lite0', pretrained=False),
           'resnet18 scratch': dict(backbone='resnet18', pretrained=False)}
COLS = ['arm', 'dataset', 'backbone', 'pretrained', 'seed', 'device', 'status', 'kappa', 'referable_auc', 'weak_label_auc', 'train_seconds']

def main(datasets=tuple(DATASETS), seeds=(0, 1, 2)):
    for seed in seeds:
        for ds in datasets:
            for arm, cfg in SCRATCH.items():
                sweep(TEMPLATE, dict(seed=[seed]), runs/ds.replace(':', '_'), base={**BASE, **DATASETS[ds], **cfg, 'dataset': ds})
            write()

def write():
    lb = pd.read_csv(leaderboard_csv)
    rows = [lb[(lb.method == 'baseline')].assign(arm='lite0 ImageNet')]
    for d in runs.glob('*'):
        if (d/'results.csv').exists() or any(d.iterdir()):
            r = collect_results(d)
            if len(r): rows.append(r.assign(arm=[('resnet18' if b == 'resnet18' else 'lite0') + ' scratch' for b in r.backbone]))
    res = pd.concat(rows, ignore_index=True)
    res[[c for c in COLS if c in res]].to_csv(here/'transfer.csv', index=False)

if __name__ == '__main__': main(tuple(sys.argv[1:]) or tuple(DATASETS))
