"""Responsiveness of the heatmap explorer (drnb.interpret.explorer), driven through its widgets as a user would:
seconds from a slider change to a redrawn panel (a new PNG in the app) with cached heatmaps, and with a new Grad-CAM
heatmap to compute. Untrained ResNet-18, 'tiny' synthetic images at 512 px, two methods side by side, this machine's
CPU (or the model's device). Goal: a cached redraw under 0.3 s at 512 px."""
import time, statistics, warnings
warnings.filterwarnings('ignore')
import torch
from drnb.core import get_device
from drnb.synth import synthetic_dataset
from drnb.models.backbones import backbone_classifier
from drnb.interpret.explorer import explore, figure_png

def timed(f, n=1):
    ts = []
    for i in range(n):
        t0 = time.perf_counter(); f(i); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts)

def main(size=512, n=7):
    dev = get_device()
    torch.manual_seed(0)
    net = backbone_classifier('resnet18', 5).eval().to(dev)
    recs = synthetic_dataset('tiny', verbose=False).iloc[:n + 2]
    t0 = time.perf_counter()
    app = explore(net, recs, methods=('gradcam', 'saliency'), size=size)
    first = time.perf_counter() - t0
    w = app.w
    print(f"device {dev}, torch threads {torch.get_num_threads()}, views {size} px, methods {app.methods}")
    print(f"  first panel (2 heatmaps + prediction + draw):  {first:6.3f} s")
    ops = [('opacity', lambda i: setattr(w['alpha'], 'value', 0.3 + 0.05*(i % 5))),
           ('region threshold', lambda i: setattr(w['threshold'], 'value', 0.3 + 0.1*(i % 5))),
           ('colour map', lambda i: setattr(w['cmap'], 'value', ('inferno', 'jet')[i % 2])),
           ('ground truth toggle', lambda i: setattr(w['gt'], 'value', not w['gt'].value))]
    calls = app.calls
    for name, op in ops:
        med, best = timed(op, n)
        print(f"  {name:<22} cached redraw: median {med:6.3f} s, best {best:6.3f} s")
    assert app.calls == calls, "a display control recomputed a heatmap"
    # where a cached redraw goes: drawing the figure vs encoding the PNG
    med_r, _ = timed(lambda i: app.render(), n)
    fig = app.render()
    med_p, _ = timed(lambda i: figure_png(fig), n)
    print(f"    of which: render {med_r:6.3f} s, PNG encode {med_p:6.3f} s")
    # a new image with Grad-CAM only: one new heatmap (+ the prediction), then the redraw
    w['methods'].value = ('gradcam',)
    med, best = timed(lambda i: setattr(w['image'], 'value', i + 1), n)
    print(f"  image slider, new Grad-CAM heatmap:        median {med:6.3f} s, best {best:6.3f} s")
    med, best = timed(lambda i: setattr(w['image'], 'value', i + 1), n)
    print(f"  image slider, back to cached images:        median {med:6.3f} s, best {best:6.3f} s")

if __name__ == '__main__': main()
