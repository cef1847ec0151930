"""The documentation's leaderboard: every method, 3 seeds, on the real idrid_boxes photographs and the synthetic bench preset.

Run from the repository root: `python nbs/results/leaderboard/run_leaderboard.py` (about 2 hours on a 2-core CPU).
Run folders go to runs/leaderboard/<dataset>/ (resumable: finished runs are skipped); the merged results table,
the leaderboard in markdown and its figure are written beside this script and committed.
"""
import sys
from pathlib import Path
import pandas as pd, matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from drnb.experiment import TEMPLATE, available_methods, sweep, collect_results, leaderboard, leaderboard_markdown, plot_leaderboard

here = Path(__file__).resolve().parent
runs = Path('runs/leaderboard')
# The budget that fits this CPU: pretrained EfficientNet-Lite0 (the one offline ImageNet checkpoint), 128 px views,
# 3 epochs; on bench the first 300 of its 1200 training images (and all 300 validation, 1000 test images).
BASE = dict(backbone='tf_efficientnet_lite0', pretrained=True, image_size=128, epochs=3, batch_size=16, lr=2e-3)
DATASETS = {'idrid_boxes': {}, 'synthetic:bench': dict(max_train=300)}
METRICS = ('kappa', 'referable_auc', 'weak_label_auc')

def main(datasets=tuple(DATASETS), seeds=(0, 1, 2)):
    "Seed by seed, so that an interrupted leaderboard still covers every method on every dataset."
    for seed in seeds:
        for ds in datasets:
            sweep(TEMPLATE, dict(method=available_methods(), seed=[seed]), runs/ds.replace(':', '_'), base={**BASE, **DATASETS[ds], 'dataset': ds})
            write(pd.concat([collect_results(runs/d.replace(':', '_')) for d in datasets if (runs/d.replace(':', '_')).exists()], ignore_index=True))

def write(results):
    results.to_csv(here/'results.csv', index=False)
    lb = leaderboard(results, metrics=METRICS)
    (here/'leaderboard.md').write_text(leaderboard_markdown(lb))
    sets = list(results.dataset.unique())
    fig, axs = plt.subplots(1, len(sets), figsize=(6*len(sets), 3.2), squeeze=False)
    for ax, ds in zip(axs[0], sets):
        sub = lb[lb.dataset == ds].drop(columns='dataset')
        metric = 'kappa' if 'kappa_mean' in sub and sub['kappa_mean'].notna().any() else 'weak_label_auc'
        if not sub.empty: plot_leaderboard(sub.sort_values(f'{metric}_mean', ascending=False), metric, ax=ax)
        ax.set_title(f'{ds}: {metric} (mean ± std over seeds)')
    fig.tight_layout(); fig.savefig(here/'leaderboard.png', dpi=90)

if __name__ == '__main__': main(tuple(sys.argv[1:]) or tuple(DATASETS))
