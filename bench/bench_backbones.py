"""Training and inference images/s of every registered backbone at 224 and 512 px on this machine's CPU.

One training step = forward, cross-entropy on a pooled linear head (5 grades), backward, SGD step; one inference
step = forward in eval mode without gradients. Batch 2; one warm-up step, then 2 timed steps (1 when the warm-up
took more than 10 s, so the big models at 512 px stay bounded). Figures only: nothing is asserted.

Environment: DRNB_BENCH_BACKBONES=resnet18,tf_efficientnet_lite0 (a subset; default all),
DRNB_BENCH_SIZES=224,512, DRNB_BENCH_BATCH=2, DRNB_BENCH_THREADS=1 (torch threads; default torch's own:
on a CPU shared with other jobs, 1 thread is far steadier than OpenMP threads waiting for busy cores). Rows are merged into nbs/results/backbones/bench_cpu.csv
(rows of the backbones and sizes measured now replace older ones).
"""
import os, time, platform
from pathlib import Path
import torch, torch.nn as nn, pandas as pd
from drnb.models.backbones import create_backbone, list_backbones
LOAD_AT_START = round(os.getloadavg()[0], 2)   # the 1-minute load before this benchmark ran (above 1.5: figures are wrong)

OUT = Path(__file__).resolve().parent.parent/'nbs'/'results'/'backbones'/'bench_cpu.csv'

def _env_list(k, default): return [s.strip() for s in os.environ.get(k, default).split(',') if s.strip()]

def timed_steps(step, warm_budget=10.):
    "Seconds per step: one warm-up, then 2 timed steps (1 when the warm-up was slow)."
    t = time.perf_counter(); step(); warm = time.perf_counter() - t
    n = 2 if warm < warm_budget else 1
    t = time.perf_counter()
    for _ in range(n): step()
    return (time.perf_counter() - t) / n, n

def bench_one(name, size, bs):
    body = create_backbone(name)
    model = nn.Sequential(body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(body.channels, 5))
    x, y = torch.randn(bs, 3, size, size), torch.arange(bs) % 5
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    def train_step():
        opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    def infer_step():
        with torch.no_grad(): model(x)
    model.train(); t_train, n_train = timed_steps(train_step)
    model.eval(); t_inf, n_inf = timed_steps(infer_step)
    return [dict(backbone=name, size=size, mode='train', img_per_s=bs / t_train, steps=n_train),
            dict(backbone=name, size=size, mode='inference', img_per_s=bs / t_inf, steps=n_inf)]

def main():
    names = _env_list('DRNB_BENCH_BACKBONES', ','.join(list_backbones()))
    sizes = [int(s) for s in _env_list('DRNB_BENCH_SIZES', '224,512')]
    bs = int(os.environ.get('DRNB_BENCH_BATCH', '2'))
    if os.environ.get('DRNB_BENCH_THREADS'): torch.set_num_threads(int(os.environ['DRNB_BENCH_THREADS']))
    unknown = [n for n in names if n not in list_backbones()]
    if unknown: raise SystemExit(f"DRNB_BENCH_BACKBONES names unknown backbone(s) {unknown}; known: {', '.join(list_backbones())}")
    torch.manual_seed(0)
    print(f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}), torch {torch.__version__}, {torch.get_num_threads()} threads, batch {bs}")
    print(f"{'backbone':24s} {'size':>5s} {'train img/s':>12s} {'infer img/s':>12s}")
    rows, t0 = [], time.perf_counter()
    for n in names:
        for s in sizes:
            r = bench_one(n, s, bs); rows += r
            print(f"{n:24s} {s:5d} {r[0]['img_per_s']:12.2f} {r[1]['img_per_s']:12.2f}", flush=True)
    new = pd.DataFrame(rows).assign(batch=bs, threads=torch.get_num_threads(), load_avg=LOAD_AT_START, torch=torch.__version__)
    if OUT.exists():
        old = pd.read_csv(OUT)
        old = old[~(old.backbone.isin(names) & old['size'].isin(sizes))]
        new = pd.concat([old, new])
    order = {n: i for i, n in enumerate(list_backbones())}
    new = new.sort_values(['backbone', 'size', 'mode'], key=lambda c: c.map(order) if c.name == 'backbone' else c)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    new.round(3).to_csv(OUT, index=False)
    print(f"total {time.perf_counter() - t0:.0f} s; table written to {OUT.relative_to(OUT.parents[3])}")

if __name__ == '__main__': main()
