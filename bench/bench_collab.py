"""Zhou et al. (drnb.models.collab): step time of the collaborative phase / the grader alone (issue 7 goal: <= 3x).

The same learner (resnet18 grader, default G and D) is trained on random tensors through fastai's loop, one phase at a
time: `GraderTrain` (grader steps; G's maps computed without gradients) and `CollabFinetune` (G steps with pseudo-masks
and the adversarial term, alternating with D steps, each G/D step also taking a batch of masked images). Each step is
timed from `before_batch` to `after_batch` (forward, loss, backward, optimiser step) after 2 warm-up steps (the collaborative phase's per-step figure averages its G and D steps); wall clock
and this process's CPU time are both printed (on a CPU shared with other jobs, CPU time is the steadier figure).
Figures only: nothing is asserted. Results are also written to nbs/results/collab/bench_cpu.csv.

Environment: DRNB_BENCH_SIZE=128, DRNB_BENCH_BATCH=8, DRNB_BENCH_STEPS=4 (timed steps per phase),
DRNB_BENCH_THREADS (torch threads; default torch's own), DRNB_BENCH_ARCH=resnet18.
"""
import os, time, platform
from pathlib import Path
import numpy as np, pandas as pd, torch
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from drnb.core import seed_everything
from drnb.models.collab import CollabDataset, collab_learner, GraderTrain, CollabFinetune, ValidateAtEnd
LOAD_AT_START = round(os.getloadavg()[0], 2)   # the 1-minute load before this benchmark ran (above 1.5: figures are wrong)

OUT = Path(__file__).resolve().parent.parent/'nbs'/'results'/'collab'/'bench_cpu.csv'

class StepTimer(Callback):
    "Wall and CPU seconds of every training step, with the network stepped."
    order = 100
    def before_fit(self): self.rows = []
    def before_batch(self): self.t0, self.c0, self.step = time.perf_counter(), time.process_time(), self.learn.model.step
    def after_batch(self):
        if not self.training: return
        self.rows.append(dict(step=self.step, wall=time.perf_counter() - self.t0, cpu=time.process_time() - self.c0))

def main():
    size, bs = int(os.environ.get('DRNB_BENCH_SIZE', 128)), int(os.environ.get('DRNB_BENCH_BATCH', 8))
    steps, arch = int(os.environ.get('DRNB_BENCH_STEPS', 4)), os.environ.get('DRNB_BENCH_ARCH', 'resnet18')
    if 'DRNB_BENCH_THREADS' in os.environ: torch.set_num_threads(int(os.environ['DRNB_BENCH_THREADS']))
    seed_everything(0)
    n, warm = bs*(steps + 2), 2
    x = torch.rand(n, 3, size, size); masks = (torch.rand(n, 4, size, size) > 0.98).float()
    known = torch.zeros(n, dtype=torch.bool); known[:max(bs, n//10)] = True
    train = CollabDataset(x, torch.arange(n) % 5, masks, known)
    valid = CollabDataset(x[:bs], torch.arange(bs) % 5, masks[:bs], torch.ones(bs, dtype=torch.bool))
    dls = DataLoaders.from_dsets(train, valid, bs=bs, device='cpu', drop_last=(True, False))
    learn = collab_learner(dls, arch)
    res = {}
    for name, cb in (('grader alone', GraderTrain()), ('collaborative', CollabFinetune())):
        t = StepTimer()
        learn.fit(1, 1e-4, cbs=[cb, t, ValidateAtEnd()])
        df = pd.DataFrame(t.rows).iloc[warm:]
        res[name] = df
        print(f"{name:14s}: {len(df)} steps " + ', '.join(f"{s} {g.wall.mean():.2f} s wall / {g.cpu.mean():.2f} s CPU" for s, g in df.groupby('step', sort=False)))
    g, c = res['grader alone'], res['collaborative']
    rows = []
    for clock in ('cpu', 'wall'):
        per_step = c[clock].mean() / g[clock].mean()
        per_cycle = c.groupby('step')[clock].mean().sum() / g[clock].mean()
        rows.append(dict(clock=clock, size=size, bs=bs, arch=arch, grader_s=g[clock].mean(), collab_step_s=c[clock].mean(),
                         ratio_per_step=per_step, ratio_per_G_D_cycle=per_cycle, threads=torch.get_num_threads(),
                         machine=platform.processor() or platform.machine(), load_1min=LOAD_AT_START))
        print(f"[{clock}] collaborative step / grader step = {per_step:.2f}x (goal <= 3x); one G step + one D step / grader step = {per_cycle:.2f}x")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(OUT, index=False)
    print(f"written {OUT.relative_to(OUT.parents[3])}")

if __name__ == '__main__': main()
