"""Attribution throughput at 512 px on the CPU (resnet18, random weights, 2 torch threads), drnb's Grad-CAM against
the grad-cam package (pytorch-grad-cam) on the same model, layer and batch, and batched integrated gradients against
a per-image loop. Prints a table and writes nbs/results/attribution/bench_cpu.csv."""
import os, time, statistics, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch, torchvision
from drnb.interpret.attribution import attribute, feature_layer

torch.set_num_threads(2)
warnings.filterwarnings('ignore')
SIZE, N, TARGET, REPEATS = 512, 2, 1, 3
OUT = Path(__file__).resolve().parent.parent/'nbs'/'results'/'attribution'/'bench_cpu.csv'
SETTINGS = dict(saliency={}, integrated_gradients=dict(n_steps=20), smoothgrad=dict(nt_samples=8),
                guided_backprop={}, deeplift={}, occlusion=dict(window=128, stride=128), gradcam={}, guided_gradcam={})
CHEAP = {'saliency', 'guided_backprop', 'deeplift', 'gradcam', 'guided_gradcam'}

LOAD_AT_START = round(os.getloadavg()[0], 2)   # the 1-minute load before this benchmark ran (above 1.5: figures are wrong)
def load(): return LOAD_AT_START

def timed(f, repeats=1):
    "Median wall time of `repeats` calls of `f` (and the last result)."
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts), r

def pytorch_grad_cam(model, x):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with GradCAM(model=model, target_layers=[model.layer4[-1]]) as cam:   # hooks removed on exit, as drnb does
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(TARGET)]*len(x))

def minmax(a): a = a - a.min((1, 2), keepdims=True); return a / np.maximum(a.max((1, 2), keepdims=True), 1e-12)

def main():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(N, 3, SIZE, SIZE)
    assert feature_layer(model, x) is model.layer4
    attribute(model, x[:1], 'saliency', target=TARGET)         # warm-up (and the one probe forward pass, cached)
    rows = []
    def row(method, settings, seconds, n=N, compared_with='', speedup=np.nan):
        rows.append(dict(method=method, settings=settings, n_images=n, seconds=round(seconds, 3), images_per_s=round(n/seconds, 3),
                         compared_with=compared_with, speedup=round(speedup, 2) if speedup == speedup else speedup, load_1min=load()))
        print(f"{method:34s} {n/seconds:8.3f} images/s  ({seconds:6.2f} s for {n})  {settings}" + (f"  x{speedup:.2f} vs {compared_with}" if compared_with else ''))
    print(f"resnet18 (random weights), {N} images of {SIZE} px, {torch.get_num_threads()} torch threads, load {load()}")
    for k,kw in SETTINGS.items():
        s = ', '.join(f'{a}={b}' for a,b in kw.items()) or 'defaults'
        if k == 'gradcam':
            # interleave drnb and pytorch-grad-cam, so a busy machine slows both alike
            ours, theirs = [], []
            for _ in range(5):
                t, h = timed(lambda: attribute(model, x, 'gradcam', target=TARGET)); ours.append(t)
                t, g = timed(lambda: pytorch_grad_cam(model, x)); theirs.append(t)
            d = np.abs(minmax(h.numpy()) - g).max()
            print(f"  same maps: max |drnb - pytorch-grad-cam| after min-max scaling = {d:.2e}")
            t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
            row('gradcam', 'layer4', t_ours, compared_with='pytorch-grad-cam GradCAM', speedup=t_theirs/t_ours)
            row('gradcam (pytorch-grad-cam)', 'layer4[-1]', t_theirs)
            continue
        t, _ = timed(lambda: attribute(model, x, k, target=TARGET, **kw), REPEATS if k in CHEAP else 1)
        if k != 'integrated_gradients': row(k, s, t); continue
        t_loop, _ = timed(lambda: [attribute(model, x[i:i+1], k, target=TARGET, **kw) for i in range(N)])
        row(k, s + f', batched ({N} images per call)', t, compared_with='per-image loop', speedup=t_loop/t)
        row('integrated_gradients (per-image loop)', s, t_loop)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(OUT, index=False)
    print(f"wrote {OUT.relative_to(OUT.parents[3])}")

if __name__ == '__main__': main()
