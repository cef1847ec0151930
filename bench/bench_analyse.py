"""Photographs per second of `drnb.interpret.analyse.analyse` on this machine's CPU: from the photograph on disk to the
written report (decode and quality check, the run's own DataLoaders, the grade, Grad-CAM and the run's own heatmap
restricted to the eye, top boxes, the pictures, analysis.csv and report.html), for runs at 256 px. The runs are
untrained (speed does not depend on the weights) and saved with `save_run`, then loaded as `drnb analyse` loads them.
Photographs: the first real idrid_boxes photographs (1024x680) when settings.ini finds them, else synthetic 'demo'
ones. Goal: at least 1 photograph per second on this project's 2-core CPU. Prints a table and writes
nbs/results/analyse/bench_cpu.csv (with the 1-minute load before the run: above 1.5 the figures are wrong).

    python bench/bench_analyse.py [--n 16] [--size 256] [--configs baseline:resnet18 baseline:tf_efficientnet_lite0 zoomin:resnet18] [--out CSV]
"""
import argparse, os, tempfile, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
import pandas as pd, torch
from drnb.core import idrid_boxes_path
from drnb.synth import synthetic_dataset
from drnb.methods import get_method, save_run, load_run
from drnb.interpret.analyse import analyse, default_methods

LOAD_AT_START = round(os.getloadavg()[0], 2)   # the 1-minute load before this benchmark ran (above 1.5: figures are wrong)
OUT = Path(__file__).resolve().parent.parent/'nbs'/'results'/'analyse'/'bench_cpu.csv'

def photographs(n:int)->tuple:
    "The first `n` idrid_boxes photographs, else `n` synthetic 'demo' ones; and which."
    p = idrid_boxes_path(required=False)
    if p is not None: return sorted((p/'images').glob('*.jpg'))[:n], 'idrid_boxes (1024x680 JPEG)'
    return [Path(f) for f in synthetic_dataset('demo', verbose=False).image[:n]], "synthetic 'demo'"

def untrained_run(method:str, arch:str, size:int, folder:Path)->Path:
    "An untrained run of `method` on `arch` at `size` px, saved as the template saves one."
    m = get_method(method)
    recs = synthetic_dataset('tiny', verbose=False)
    dls = m.dataloaders(recs, size, arch, bs=8, seed=0, device='cpu', num_workers=0)
    torch.manual_seed(0)
    return save_run(m.learner(dls, arch, pretrained=False), folder, size, arch, 'pad', dataset='synthetic:tiny', seed=0)

def main(n:int=16, size:int=256, configs=('baseline:resnet18', 'baseline:tf_efficientnet_lite0', 'zoomin:resnet18'), out:Path=OUT):
    files, source = photographs(n)
    print(f"analyse on {len(files)} photographs ({source}), views {size} px, CPU, {torch.get_num_threads()} torch threads, load {LOAD_AT_START}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for cfg in configs:
            method, arch = cfg.split(':')
            run = untrained_run(method, arch, size, tmp/cfg.replace(':', '-'))
            t0 = time.perf_counter(); learn = load_run(run, 'cpu'); t_load = time.perf_counter() - t0
            analyse(learn, files[:2], out=tmp/'warm', progress=False)                      # warm-up: the one probe pass, the first allocations
            t0 = time.perf_counter()
            a = analyse(learn, files, out=tmp/f'report-{method}-{arch}', progress=False, keep=False)
            sec = time.perf_counter() - t0
            graded = len(a.graded)
            rows.append(dict(method=method, backbone=arch, size=size, heatmaps='+'.join(a.methods), photographs=graded, source=source,
                             seconds=round(sec, 2), photographs_per_s=round(graded/sec, 3), load_run_s=round(t_load, 2),
                             threads=torch.get_num_threads(), load_1min=LOAD_AT_START))
            print(f"  {method:9s} {arch:22s} heatmaps {'+'.join(a.methods):26s} {graded/sec:6.2f} photographs/s "
                  f"({sec:5.1f} s for {graded}; loading the run {t_load:.1f} s){'  BELOW the goal of 1/s' if graded/sec < 1 else ''}")
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    print(f"wrote {out}")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=16); ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--configs', nargs='+', default=['baseline:resnet18', 'baseline:tf_efficientnet_lite0', 'zoomin:resnet18'])
    ap.add_argument('--out', type=Path, default=OUT)
    a = ap.parse_args()
    main(a.n, a.size, a.configs, a.out)
