"Speed of drnb.metrics and drnb.interpret.evaluate on this machine: grading metrics on many images, lesion AUPR on masks, FROC/coverage and deletion curves on heatmaps."
import time, warnings
import numpy as np, torch, torch.nn as nn
from sklearn.metrics import cohen_kappa_score, roc_auc_score, average_precision_score
from drnb.metrics import quadratic_kappa, referable_auc, lesion_aupr, optimise_thresholds
from drnb.interpret.evaluate import froc_curve, box_coverage, pointing_game, deletion_curve

def timed(fn, reps=3):
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    return best

rng = np.random.default_rng(0)
n = 100_000
g = rng.integers(0, 5, n); p = rng.dirichlet(np.ones(5), n); out = g + rng.normal(0, 0.7, n)
print(f"quadratic_kappa, {n} images: drnb {timed(lambda: quadratic_kappa(g, p.argmax(1)))*1e3:.1f} ms, "
      f"sklearn {timed(lambda: cohen_kappa_score(g, p.argmax(1), weights='quadratic'))*1e3:.1f} ms")
print(f"referable_auc, {n} images: drnb {timed(lambda: referable_auc(g, p))*1e3:.1f} ms, "
      f"sklearn {timed(lambda: roc_auc_score(g >= 2, p[:, 2:].sum(1)))*1e3:.1f} ms")
print(f"optimise_thresholds (coordinate), 5000 validation images: {timed(lambda: optimise_thresholds(out[:5000], g[:5000]), 1):.2f} s")

masks = rng.random((8, 4, 512, 512)) < 0.01; probs = np.where(masks, 0.6, 0.3) + 0.2*rng.random(masks.shape)
t = timed(lambda: lesion_aupr(probs, masks), 1)
ts = timed(lambda: [average_precision_score(masks[:, i].ravel(), probs[:, i].ravel()) for i in range(4)], 1)
print(f"lesion_aupr, 8 images x 4 types at 512 px: drnb {t:.2f} s, sklearn {ts:.2f} s")

yy, xx = np.mgrid[:512, :512]; N = 16
heat = np.zeros((N, 512, 512)); gt = []
for i in range(N):
    c = rng.integers(20, 492, (10, 2)); gt.append([['HE', x-6, y-6, x+6, y+6] for y, x in c])
    for y, x in c[:7]: heat[i] += np.exp(-((yy-y)**2 + (xx-x)**2)/50)
    heat[i] += 0.1*rng.random((512, 512))
for name, fn in [('pointing_game', lambda: pointing_game(heat, gt)), ('froc_curve', lambda: froc_curve(heat, gt)),
                 ('box_coverage k<=10', lambda: box_coverage(heat, gt, box_size=64))]:
    print(f"{name}, {N} heatmaps at 512 px: {timed(fn, 1)/N*1e3:.1f} ms/image")

torch.set_num_threads(2)
model = nn.Sequential(nn.Conv2d(3, 16, 3, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=4), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5)).eval()
imgs, hm = torch.rand(4, 3, 256, 256), torch.rand(4, 256, 256)
for bs in (8, 32):
    t = timed(lambda: deletion_curve(model, imgs, hm, steps=20, bs=bs), 1)
    print(f"deletion_curve, 4 images at 256 px, 21 steps, bs={bs}: {t/4:.2f} s/image ({4*21/t:.0f} perturbed images/s)")
