"""Quellec et al. heatmaps and heatmap-oriented training (drnb.models.mining): speed on this machine.

1. Heatmap images/s at 512 px on the o_O base net (eval mode, batch 2): `attribute(..., 'mining')` with the
   plain and the generalised rule, against Captum `Saliency` through the same `attribute` call (goal: the
   mining heatmap within 1.2x of Saliency's time).
2. Training step time (forward, loss, backward, SGD step; batch 4 at 256 px, train mode) with heatmap-oriented
   training (heatmap by double backpropagation, as `HeatmapSparsity` does it) over without (goal: <= 3x); for
   'o_O' also without batch norm, whose double backward (train-mode statistics) is what costs most.

One warm-up, then the median of timed repeats, in CPU seconds of this process (`time.process_time`, all its
threads): on a CPU shared with other jobs, wall-clock ratios swing with their load, CPU time much less (on a GPU,
the ratios are of CPU-side time only). Figures only: nothing is asserted.
Environment: DRNB_BENCH_ARCH=o_O (any registered backbone), DRNB_BENCH_REPEATS=5.
"""
import os, time, platform, statistics
import torch, torch.nn.functional as F
from drnb.interpret.attribution import attribute
from drnb.models.mining import mining_model, backward_rule, rule_gradient, heatmap_l1, MiningNet, OOBody, FUNDUS_STATS

def timed(fs:dict, repeats):
    "Median CPU seconds per call of each function of `fs` after one warm-up each, the calls interleaved (so drifting load hits all alike)."
    for f in fs.values(): f()
    ts = {k: [] for k in fs}
    for _ in range(repeats):
        for k, f in fs.items():
            t = time.process_time(); f(); ts[k].append(time.process_time() - t)
    return {k: statistics.median(v) for k, v in ts.items()}

def bench_heatmaps(arch, repeats, size=512, bs=2):
    model = mining_model(arch).eval()
    x = torch.rand(bs, 3, size, size)
    calls = {name: (lambda kw=kw: attribute(model, x, **kw)) for name, kw in
             [('saliency', dict(method='saliency')), ('mining (gradient rule)', dict(method='mining', rule='gradient')),
              ('mining (mining rule)', dict(method='mining', rule='mining'))]}
    return {k: bs/t for k, t in timed(calls, repeats).items()}

def bench_training(arch, repeats, size=256, bs=4, lam=1e-2, rule='mining', bn=True):
    model = mining_model(arch).train() if bn else MiningNet(OOBody(bn=False), FUNDUS_STATS).train()
    x, y = torch.rand(bs, 3, size, size), torch.arange(bs).float() % 5
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    def plain():
        opt.zero_grad(); F.mse_loss(model(x)[:, 0], y).backward(); opt.step()
    def with_heatmap():
        opt.zero_grad()
        xg = x.clone().requires_grad_()
        with backward_rule(model, rule) as st:
            pred = model(xg)
            loss = F.mse_loss(pred[:, 0], y) + lam*heatmap_l1(rule_gradient(pred, xg, st, create_graph=True).abs().sum(1))
            loss.backward()
        opt.step()
    t = timed(dict(plain=plain, heatmap=with_heatmap), repeats)
    return t['plain'], t['heatmap']

def main():
    arch = os.environ.get('DRNB_BENCH_ARCH', 'o_O')
    repeats = int(os.environ.get('DRNB_BENCH_REPEATS', '5'))
    torch.manual_seed(0)
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; backbone {arch}")
    rows = bench_heatmaps(arch, repeats)
    print("\nheatmaps at 512 px (batch 2, eval mode)")
    for k, v in rows.items(): print(f"  {k:26s} {v:6.2f} images per CPU-s   time vs saliency {rows['saliency']/v:4.2f}x")
    print(f"  goal: mining rule within 1.2x of saliency -> {rows['saliency']/rows['mining (mining rule)']:.2f}x")
    print("\ntraining step at 256 px (batch 4, train mode), heatmap by double backprop with the mining rule")
    for bn in ((True, False) if arch == 'o_O' else (True,)):
        t0, t1 = bench_training(arch, repeats, bn=bn)
        what = arch + ('' if bn else ' without batch norm (as the original o_O)')
        print(f"  {what}: without {t0*1000:6.0f} CPU-ms/step, with heatmap training {t1*1000:6.0f}: ratio {t1/t0:.2f}x (goal <= 3x)")

if __name__ == '__main__': main()
