"""CLPI training-step time against the grading network alone at the same size (issue 6, acceptance 5; goal <= 1.6x).

One training step = forward, loss, backward, SGD step, batch of random images:
- grading alone: the registered backbone (RGB input) + global pooling + linear head, cross-entropy;
- CLPI: lesion net + lesion attention + the same backbone widened to 3K input channels + fusion with 1 - P_0 + head,
  grade cross-entropy + patch cross-entropy on a 16x16 grid (`ClpiModel`, `patch_loss`).
One warm-up step, then the median of DRNB_BENCH_STEPS (3) timed steps, alternating the two models so load from other
jobs on a shared CPU hits both alike. Figures only, nothing asserted.

Environment: DRNB_BENCH_CLPI_ARCHS=resnet18 (comma list), DRNB_BENCH_CLPI_SIZES=256, DRNB_BENCH_BATCH=4,
DRNB_BENCH_STEPS=3, DRNB_BENCH_THREADS=1. Rows go to nbs/results/clpi/bench_cpu.csv (same arch/size rows replaced).
"""
import os, time, platform, statistics
from pathlib import Path
import torch, torch.nn as nn, torch.nn.functional as F, pandas as pd
from drnb.models.backbones import create_backbone
from drnb.models.clpi import ClpiModel, patch_loss
LOAD_AT_START = round(os.getloadavg()[0], 2)   # the 1-minute load before this benchmark ran (above 1.5: figures are wrong)

OUT = Path(__file__).resolve().parent.parent/'nbs'/'results'/'clpi'/'bench_cpu.csv'
def _env(k, d): return [s.strip() for s in os.environ.get(k, d).split(',') if s.strip()]

class Alone(nn.Module):
    def __init__(self, arch):
        super().__init__(); self.body = create_backbone(arch); self.fc = nn.Linear(self.body.channels, 5)
    def forward(self, x): return self.fc(self.body(x).mean((-2, -1)))

def stepper(model, x, y, grids):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    def step():
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out[0], y) + patch_loss(out[1], grids) if isinstance(out, tuple) else F.cross_entropy(out, y)
        loss.backward(); opt.step()
    return step

def bench(arch, size, bs, steps):
    torch.manual_seed(0)
    x, y, g = torch.randn(bs, 3, size, size), torch.randint(0, 5, (bs,)), torch.randint(0, 5, (bs, 16, 16))
    runs = dict(alone=stepper(Alone(arch).train(), x, y, g), clpi=stepper(ClpiModel(arch, size).train(), x, y, g),
                clpi_half=stepper(ClpiModel(arch, size, grade_size=size//2).train(), x, y, g))
    for f in runs.values(): f()
    ts = {k: [] for k in runs}
    for _ in range(steps):
        for k, f in runs.items():
            t = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in ts.items()}
    return dict(arch=arch, size=size, batch=bs, steps=steps, threads=torch.get_num_threads(),
                alone_s=round(med['alone'], 3), clpi_s=round(med['clpi'], 3), ratio=round(med['clpi']/med['alone'], 2),
                clpi_half_grade_s=round(med['clpi_half'], 3), ratio_half_grade=round(med['clpi_half']/med['alone'], 2),
                machine=platform.processor() or platform.machine(), load_1min=LOAD_AT_START)

if __name__ == '__main__':
    torch.set_num_threads(int(os.environ.get('DRNB_BENCH_THREADS', 1)))
    bs, steps = int(os.environ.get('DRNB_BENCH_BATCH', 4)), int(os.environ.get('DRNB_BENCH_STEPS', 3))
    rows = []
    for arch in _env('DRNB_BENCH_CLPI_ARCHS', 'resnet18'):
        for size in map(int, _env('DRNB_BENCH_CLPI_SIZES', '256')):
            r = bench(arch, size, bs, steps); rows.append(r)
            print(f"{arch:>22} {size:4d} px batch {bs}: grading alone {r['alone_s']:.3f} s/step, CLPI {r['clpi_s']:.3f} s/step "
                  f"-> {r['ratio']:.2f}x (goal <= 1.6x); CLPI grading at {size//2} px (the paper's half size): {r['ratio_half_grade']:.2f}x", flush=True)
    new = pd.DataFrame(rows)
    if OUT.exists():
        old = pd.read_csv(OUT)
        old = old[~old.set_index(['arch', 'size']).index.isin(new.set_index(['arch', 'size']).index)]
        new = pd.concat([old, new], ignore_index=True)
    OUT.parent.mkdir(parents=True, exist_ok=True); new.to_csv(OUT, index=False)
    print(f"written {OUT.relative_to(OUT.parents[3])}")
