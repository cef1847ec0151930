"""drnb.data.block: DataLoader batches per second at 512 px, and the share of a resnet18 training step spent waiting for data.

Prints the figures and writes them to nbs/results/block/bench_cpu.csv. The synthetic 1024 px images come from the
`bench` preset when it is cached, else 64 images are drawn once into data_path('cache', 'bench_block').
Usage: python bench/bench_block.py [--steps 4] [--batches 8] [--workers N]
"""
import argparse, os, sys, time, platform, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
import pandas as pd, torch
from drnb.core import get_settings, data_path, seed_everything
from drnb.synth import make_synthetic, read_synthetic
from drnb.data.block import fundus_dataloaders
LOAD_AT_START = round(os.getloadavg()[0], 2)   # the 1-minute load before this benchmark ran (above 1.5: figures are wrong)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT/'nbs'/'results'/'block'/'bench_cpu.csv'

def bench_records(n:int=64):
    "n synthetic 1024 px training records: from the cached `bench` preset, else drawn once into the cache."
    bench = data_path('synthetic', 'bench')
    if (bench/'manifest.json').is_file() and '"complete": true' in (bench/'manifest.json').read_text():
        df = read_synthetic(bench); return df[df.split == 'train'].head(n).assign(split='train'), 'bench preset'
    p = data_path('cache', 'bench_block')
    try:
        df = read_synthetic(p)
        if len(df) == n: return df, 'cache'
    except (FileNotFoundError, ValueError): pass
    t = time.time()
    df = make_synthetic(p, n=dict(train=n), size=1024, seed=0, n_workers=get_settings().num_workers)
    print(f"drew {n} synthetic 1024 px images in {time.time() - t:.0f} s (cached for next time)")
    return df, 'drawn'

def loader_rate(records, n_batches:int, **kwargs)->float:
    "Training batches per second over `n_batches` (new epochs, with their worker start-up, as needed)."
    dls = fundus_dataloaders(records, size=512, bs=16, device='cpu', **kwargs)
    seen, t = 0, time.perf_counter()
    while seen < n_batches:
        for _ in dls.train:
            seen += 1
            if seen == n_batches: break
    return n_batches / (time.perf_counter() - t)

def model():
    try:
        import timm; return timm.create_model('resnet18', pretrained=False, num_classes=5)
    except Exception:
        import torchvision; return torchvision.models.resnet18(weights=None, num_classes=5)

def wait_fraction(records, steps:int, warmup:int=1, **kwargs):
    "Seconds per step waiting in next(batches) and computing (forward, backward, SGD step) with resnet18 at 512 px, batch 16."
    dls = fundus_dataloaders(records, size=512, bs=16, device='cpu', **kwargs)
    m, lossf = model(), torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    def batches():
        while True: yield from dls.train
    it, waits, comps = batches(), [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter(); x,y = (o.as_subclass(torch.Tensor) for o in next(it)); t1 = time.perf_counter()
        loss = lossf(m(x), y); loss.backward(); opt.step(); opt.zero_grad(); t2 = time.perf_counter()
        if i >= warmup: waits.append(t1 - t0); comps.append(t2 - t1)
        print(f"  step {i}{' (warm-up)' if i < warmup else ''}: wait {t1 - t0:.2f} s, compute {t2 - t1:.1f} s", flush=True)
    return sum(waits)/steps, sum(comps)/steps

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=4, help='timed resnet18 steps after one warm-up (about 10-100 s each on a 2-core CPU)')
    ap.add_argument('--batches', type=int, default=8, help='batches timed per DataLoader setting')
    ap.add_argument('--workers', type=int, default=None, help='DataLoader workers (default: the num_workers setting)')
    a = ap.parse_args()
    s = get_settings(); nw = s.num_workers if a.workers is None else a.workers
    seed_everything(0)
    records, origin = bench_records()
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    print(f"CPU: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load average {load:.1f}; "
          f"{len(records)} synthetic 1024 px images ({origin}); 512 px views, batch 16, {nw} workers")
    rows = []
    def add(metric, value, unit, setting):
        rows.append(dict(metric=metric, value=round(value, 3), unit=unit, setting=setting, load_1min=LOAD_AT_START)); print(f"{metric:<34} {value:8.3f} {unit:<10} {setting}", flush=True)
    loader_rate(records, len(records)//16, num_workers=nw, cache=True)     # one epoch fills the view cache (and warms the file system)
    add('dataloader, grade', loader_rate(records, a.batches, num_workers=nw), 'batches/s', f'{nw} workers, decode 1024 px PNG each item, augment')
    add('dataloader, grade, cached views', loader_rate(records, a.batches, num_workers=nw, cache=True), 'batches/s', f'{nw} workers, resized views cached on disk')
    add('dataloader, grade, no workers', loader_rate(records, a.batches, num_workers=0), 'batches/s', 'main process only')
    add('dataloader, masks+patches+boxes', loader_rate(records, a.batches, num_workers=nw, targets=('grade', 'masks', 'patches', 'boxes')),
        'batches/s', f'{nw} workers, all lesion targets')
    add('dataloader, + 1024 px twin', loader_rate(records, a.batches, num_workers=nw, hires=1024), 'batches/s', f'{nw} workers, grade + twin')
    print(f"resnet18 training steps at 512 px, batch 16 ({a.steps} timed after 1 warm-up):")
    w,c = wait_fraction(records, a.steps, num_workers=nw)
    add('resnet18 step: data wait', w, 's/step', f'{nw} workers; next(batches) incl. batch augmentation')
    add('resnet18 step: compute', c, 's/step', f'forward+backward+SGD, {torch.get_num_threads()} torch threads')
    add('resnet18 step: data-wait fraction', w/(w + c), 'fraction', f'goal < 0.10; load average {load:.1f} at start')
    OUT.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(OUT, index=False)
    print(f"written {OUT.relative_to(ROOT)}")

if __name__ == '__main__': main()
