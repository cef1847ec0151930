"""Zoom-in-Net speed: training-step time of the full model / M-Net alone at the same input size (goal <= 2.5x), and inference images/s.

Plain script (`make bench` runs it); prints figures, asserts nothing. Environment: DRNB_BENCH_SIZE (default 256),
DRNB_BENCH_ZOOM (2), DRNB_BENCH_BS (4), DRNB_BENCH_ARCH (resnet18), DRNB_BENCH_STEPS (3), DRNB_BENCH_DEVICE (auto).
"""
import os, time, torch
from drnb.core import get_device, seed_everything
from drnb.models.zoomin import ZoomInNet, ZoomInLoss, STAGE_PARTS

size = int(os.environ.get('DRNB_BENCH_SIZE', 256)); zoom = int(os.environ.get('DRNB_BENCH_ZOOM', 2))
bs = int(os.environ.get('DRNB_BENCH_BS', 4)); arch = os.environ.get('DRNB_BENCH_ARCH', 'resnet18')
steps = int(os.environ.get('DRNB_BENCH_STEPS', 3)); dev = get_device(os.environ.get('DRNB_BENCH_DEVICE') or None)

def sync():
    if dev.type == 'cuda': torch.cuda.synchronize()

def step_time(model, stage, x, tw, y, n=steps):
    "Seconds per training step (forward, loss, backward, Adam step) with only `stage`'s parts trainable."
    model.set_stage(stage).train()
    on = {p for name in STAGE_PARTS[stage] for p in getattr(model, name).parameters()}
    for p in model.parameters(): p.requires_grad_(p in on); p.grad = None
    for name in STAGE_PARTS['joint']: getattr(model, name).train(name in STAGE_PARTS[stage])
    opt, lf = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-4), ZoomInLoss()
    times = []
    for i in range(n + 1):                                   # the first step warms up
        sync(); t = time.perf_counter()
        loss = lf(model(x, tw), y); loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        sync(); times.append(time.perf_counter() - t)
    return sorted(times[1:])[len(times[1:])//2]                # median

@torch.no_grad()
def images_per_s(model, stage, x, tw, n=steps):
    model.set_stage(stage).eval()
    model(x, tw); sync(); t = time.perf_counter()
    for _ in range(n): model(x, tw)
    sync(); return n*len(x)/(time.perf_counter() - t)

if __name__ == '__main__':
    seed_everything(0)
    if dev.type == 'cpu': print(f'torch threads: {torch.get_num_threads()}; CPU load (1 min): {os.getloadavg()[0]:.1f}')
    model = ZoomInNet(arch).to(dev)
    x, tw = torch.randn(bs, 3, size, size, device=dev), torch.randn(bs, 3, zoom*size, zoom*size, device=dev)
    y = torch.randint(0, 5, (bs,), device=dev)
    cs = model.default_crop(tw.shape[-2:])
    print(f'Zoom-in-Net, {arch}, image {size} px, twin {zoom*size} px, {model.n_crops} crops of {cs} px, batch {bs}, device {dev}')
    t = {s: step_time(model, s, x, tw, y) for s in ('M', 'A', 'C', 'joint')}
    for s, v in t.items(): print(f'  training step, stage {s:5s}: {v:6.3f} s  ({bs/v:6.1f} images/s)  = {v/t["M"]:.2f} x M-Net')
    print(f'full model (joint fine-tuning) / M-Net alone: {t["joint"]/t["M"]:.2f} x  (goal <= 2.5 x)')
    print(f'staged C step / M-Net alone:                {t["C"]/t["M"]:.2f} x')
    for s in ('M', 'joint'): print(f'  inference, stage {s:5s}: {images_per_s(model, s, x, tw):7.1f} images/s')
