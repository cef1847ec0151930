"Zoom-in-Net (drnb.models.zoomin): shapes through each part, gates, the box map and its mechanism (toys), crops from the twin (and the oracle's at the lesions), per-stage gradients, cancelled fits, save/load."
import pytest, torch, torch.nn.functional as F
from contextlib import contextmanager
from torch.utils.data import TensorDataset
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.callback.core import Callback, CancelFitException
from drnb.core import seed_everything
from drnb.models.zoomin import (spatial_softmax, ANet, attention_peaks, peak_boxes, crop_twin, ZoomInNet, ZoomInLoss,
                                ZoomStaging, STAGES, STAGE_PARTS, zoomin_learner, fit_zoomin, zoom_boxes, zoom_attention, attention_boxes,
                                zoom_coverage, grade_probs, zoomin_data, evidence_map, abnormal_grades, truth_boxes, SCORE_SCALE,
                                GATE_SCALE, twin_boxes)

SIZE, TWIN = 64, 128

@pytest.fixture(scope='module')
def tdls():
    seed_everything(0)
    ds = TensorDataset(torch.randn(8, 3, SIZE, SIZE), torch.randn(8, 3, TWIN, TWIN), torch.randint(0, 5, (8,)))
    vs = TensorDataset(*(t[:4] for t in ds.tensors))
    return DataLoaders(DataLoader(ds, bs=2, shuffle=True, drop_last=True), DataLoader(vs, bs=4))   # 4 training batches per epoch

def coord_twin(n, h, w):
    "A twin whose channel 0 is the row and channel 1 the column of each pixel."
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing='ij')
    return torch.stack([yy, xx, torch.zeros_like(yy)])[None].repeat(n, 1, 1, 1)

# --- shapes and the gates

def test_gates_stay_inside_the_eye():
    "A bright disc on black: with eye_only (the default) no gate weight falls on the black corners; without it some does."
    yy, xx = torch.meshgrid(torch.arange(128.), torch.arange(128.), indexing='ij')
    eye = ((yy - 63.5)**2 + (xx - 63.5)**2 < 60**2).float()
    x = eye[None, None].repeat(2, 3, 1, 1)*torch.rand(2, 3, 128, 128)*0.5 + eye*0.3      # raw [0, 1] images
    stats = ((0., 0., 0.), (1., 1., 1.))
    corner = torch.zeros(4, 4, dtype=torch.bool); corner[0, 0] = corner[0, -1] = corner[-1, 0] = corner[-1, -1] = True
    seed_everything(0)
    g = ZoomInNet('resnet18', stats=stats).eval().glance(x)['gates']                      # (2,5,4,4) at stride 32
    test_sum = g.sum((2, 3))
    assert torch.allclose(test_sum, torch.ones_like(test_sum), atol=1e-5)
    assert g[:, :, corner].abs().max() == 0
    seed_everything(0)
    g0 = ZoomInNet('resnet18', stats=stats, eye_only=False).eval().glance(x)['gates']
    assert g0[:, :, corner].min() > 0

def test_spatial_softmax_sums_to_one_per_channel():
    z = torch.randn(3, 5, 6, 7)*4
    g = spatial_softmax(z)
    assert torch.allclose(g.sum((2, 3)), torch.ones(3, 5), atol=1e-6)
    assert (g > 0).all()
    # not a softmax over channels
    assert not torch.allclose(g.sum(1), torch.ones(3, 6, 7))

def test_anet_class_score_is_gated_sum():
    an = ANet(8, 5)
    o = an(torch.randn(2, 8, 4, 4))
    assert o['scores'].shape == o['gates'].shape == (2, 5, 4, 4) and o['a'].shape == (2, 5)
    assert torch.allclose(o['gates'].sum((2, 3)), torch.ones(2, 5), atol=1e-6)
    assert torch.allclose(o['a'], (o['scores']*o['gates']).sum((2, 3)), atol=1e-6)
    # hand-computed: constant gate logits -> uniform gates -> class score = mean of the score map
    with torch.no_grad(): an.gate.weight.zero_(); an.gate.bias.zero_()
    o = an(torch.randn(2, 8, 4, 4))
    assert torch.allclose(o['a'], o['scores'].mean((2, 3)), atol=1e-6)

@pytest.mark.parametrize('arch', ['resnet18', 'tf_efficientnet_lite0'])
def test_shapes_through_each_part(arch):
    net = ZoomInNet(arch, n_crops=3).eval()
    body = net.m_body
    x, tw = torch.randn(2, 3, SIZE, SIZE), torch.randn(2, 3, TWIN, TWIN)
    o = net(x, tw)
    h = SIZE//body.stride
    assert o['f'].shape == (2, body.channels) and o['f_att'].shape == (2, body.channels)
    assert o['gates'].shape == (2, 5, h, h) and o['attention'].shape == (2, h, h)
    for k in ('m', 'a', 'c', 'logits'): assert o[k].shape == (2, 5), k
    assert o['boxes'].shape == (2, 3, 4)
    assert ((o['boxes'][..., 2] - o['boxes'][..., 0]) == TWIN//4).all()
    assert torch.equal(o['logits'], o['c'])
    net.set_stage('M'); assert torch.equal(net(x)['logits'], net(x)['m'])
    net.set_stage('A'); o = net(x)
    assert torch.equal(o['logits'], o['a']) and torch.allclose(o['a'], o['m'] + o['gated'].sum((2, 3)))

def test_each_stage_starts_where_the_last_ended():
    "residual (the default): A-Net's scores start at 1% of Kaiming's and the fusion head at zero, so a ~ m and c = a before training; not so without."
    x, tw = torch.randn(2, 3, SIZE, SIZE), torch.randn(2, 3, TWIN, TWIN)
    o = ZoomInNet('resnet18', n_crops=2).eval()(x, tw)
    assert (o['a'] - o['m']).abs().max() < 0.05 and not torch.equal(o['a'], o['m']) and torch.equal(o['c'], o['a'])
    plain = ZoomInNet('resnet18', n_crops=2, residual=False).eval()
    o = plain(x, tw)
    assert not torch.allclose(o['c'], o['m'])
    o = plain.set_stage('A')(x)
    assert torch.allclose(o['logits'], (o['m'] + o['gated'].sum((2, 3)))/2) and torch.allclose(o['a'], o['gated'].sum((2, 3)))

def test_attention_on_a_finer_level():
    "att_stride=16: A-Net's gates on the stride-16 map (twice as fine), M's grade from the final map; crops follow the finer peaks."
    x, tw = torch.randn(2, 3, SIZE, SIZE), coord_twin(2, TWIN, TWIN)
    net = ZoomInNet('resnet18', n_crops=2, crop_size=16, att_stride=16).eval()
    o = net(x, tw)
    assert o['gates'].shape == (2, 5, 4, 4) and o['f_att'].shape == (2, 256) and o['f'].shape == (2, 512)
    r, c, _ = attention_peaks(o['box_map'], 2, max(0, round(8/(TWIN/4))), o['eye'][:, 0])
    assert torch.equal(o['boxes'], peak_boxes(r, c, (4, 4), (TWIN, TWIN), 16))
    with pytest.raises(ValueError, match='no level of stride 12'): ZoomInNet('resnet18', att_stride=12)

# --- boxes and crops

def test_peaks_nms_and_fallback():
    att = torch.zeros(1, 4, 4); att[0, 1, 2] = 3; att[0, 1, 3] = 2.5; att[0, 3, 0] = 2
    r, c, s = attention_peaks(att, 2, radius=1)
    assert r[0].tolist() == [1, 3] and c[0].tolist() == [2, 0] and s[0].tolist() == [3., 2.]
    r, c, _ = attention_peaks(torch.rand(3, 2, 2), 4, radius=1)   # everything suppressed after the first: still distinct cells
    assert all(len(set(zip(r[i].tolist(), c[i].tolist()))) == 4 for i in range(3))
    with pytest.raises(ValueError, match='5 peaks'): attention_peaks(torch.rand(1, 2, 2), 5)

def test_crops_inside_twin_and_at_the_right_place():
    torch.manual_seed(1)
    H, W, cs = 96, 128, 40
    att = torch.rand(4, 3, 4)
    r, c, _ = attention_peaks(att, 4, radius=0)
    b = peak_boxes(r, c, (3, 4), (H, W), cs)
    assert (b[..., 0] >= 0).all() and (b[..., 1] >= 0).all() and (b[..., 2] <= W).all() and (b[..., 3] <= H).all()
    crops = crop_twin(coord_twin(4, H, W), b)
    assert crops.shape == (16, 3, cs, cs)
    for n in range(4):
        for k in range(4):
            x0, y0, x1, y1 = b[n, k].tolist(); cr = crops[4*n + k]
            assert torch.equal(cr[0], torch.arange(y0, y1).float()[:, None].expand(cs, cs))
            assert torch.equal(cr[1], torch.arange(x0, x1).float()[None].expand(cs, cs))
            # the crop is centred on the peak cell where the twin allows it
            cy, cx = (r[n, k].item() + .5)*H/3, (c[n, k].item() + .5)*W/4
            if cs/2 <= cx <= W - cs/2: assert abs((x0 + x1)/2 - cx) <= 0.5
            if cs/2 <= cy <= H - cs/2: assert abs((y0 + y1)/2 - cy) <= 0.5

def test_model_crops_come_from_the_twin_at_the_attention_peaks():
    net = ZoomInNet('resnet18', n_crops=2, crop_size=32).eval()
    x = torch.randn(2, 3, SIZE, SIZE); tw = coord_twin(2, TWIN, TWIN)
    seen = {}
    net.c_body.register_forward_pre_hook(lambda m, a: seen.setdefault('crops', a[0].clone()))
    o = net(x, tw)
    h = o['box_map'].shape[-1]
    r, c, _ = attention_peaks(o['box_map'], 2, max(0, round(16/(TWIN/h))), o['eye'][:, 0])
    assert torch.equal(o['boxes'], peak_boxes(r, c, (h, h), (TWIN, TWIN), 32))      # centred on the box map's peaks
    for n in range(2):
        for k in range(2):
            x0, y0, _, _ = o['boxes'][n, k].tolist()
            cr = seen['crops'][2*n + k]                                            # what C-Net received
            assert cr.shape == (3, 32, 32) and cr[0, 0, 0] == y0 and cr[1, 0, 0] == x0 and cr[0, -1, 0] == y0 + 31
    # zoom_boxes reports the same boxes in image pixels
    zb = zoom_boxes(net, x, twin_size=(TWIN, TWIN))
    assert torch.allclose(zb*TWIN/SIZE, o['boxes'].float())
    # attention_boxes places boxes on any map the same way (a random map gives the chance baseline)
    assert torch.equal(attention_boxes(o['box_map'], (SIZE, SIZE), (TWIN, TWIN), 32, 2, mask=o['eye'][:, 0]), zb)

# --- loss

def test_joint_loss_terms():
    y = torch.tensor([1, 4, 0])
    out = dict(m=torch.randn(3, 5), a=torch.randn(3, 5), c=torch.randn(3, 5))
    lf = ZoomInLoss(dict(c=2.))
    ce = lambda z: F.cross_entropy(z, y)
    assert torch.allclose(lf(dict(out, active=('m', 'a', 'c')), y), ce(out['m']) + ce(out['a']) + 2*ce(out['c']))
    assert torch.allclose(lf(dict(out, active=('a',)), y), ce(out['a']))
    assert set(lf.terms) == {'m', 'a', 'c'}
    lf.reduction = 'none'
    assert lf(dict(out, active=('m',)), y).shape == (3,)

# --- stages and callbacks

class GradRecorder(Callback):
    "Per stage, the parameters that had a non-zero gradient after backward, and those with any gradient at all."
    def before_fit(self): self.seen, self.any = {}, {}
    def after_backward(self):
        s = self.model.stage
        self.seen.setdefault(s, set()).update(n for n, p in self.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0)
        self.any.setdefault(s, set()).update(n for n, p in self.model.named_parameters() if p.grad is not None)

def test_each_stage_trains_exactly_its_parameters(tdls):
    learn = zoomin_learner(tdls, n_crops=2)
    rec = GradRecorder()
    with learn.no_bar(), learn.no_logging(): fit_zoomin(learn, 2, stages=STAGES, stage_epochs=(.5, .5, .5, .5), cbs=rec)   # two batches per stage (zero-started parts pass gradients on from the second)
    parts = lambda s: {n for n, _ in learn.model.named_parameters() if n.split('.')[0] in STAGE_PARTS[s]}
    for s in STAGES:
        assert rec.any[s] == parts(s), s                     # exactly the stage's parameters have gradients
        assert len(rec.seen[s]) > 0.9*len(parts(s)), s        # and they are (almost all) non-zero
    assert learn.model.stage == 'joint' and all(p.requires_grad for p in learn.model.parameters())

def test_frozen_parts_do_not_move(tdls):
    learn = zoomin_learner(tdls, n_crops=2)
    with learn.no_bar(), learn.no_logging(): fit_zoomin(learn, .5, stages=('M',))
    before = {n: p.detach().clone() for n, p in learn.model.named_parameters()}
    bn = {n: b.clone() for n, b in learn.model.m_body.named_buffers() if 'running_mean' in n}
    with learn.no_bar(), learn.no_logging(): fit_zoomin(learn, .5, stages=('A',))   # M frozen: weights, BN statistics untouched
    for n, p in learn.model.named_parameters():
        moved = not torch.equal(p, before[n])
        assert moved == n.startswith('a_net'), n
    assert all(torch.equal(b, bn[n]) for n, b in learn.model.m_body.named_buffers() if n in bn)

class StageSpy(Callback):
    "The stage and the number of trainable parameters at each training batch."
    def before_fit(self): self.stages, self.trainable = [], []
    def after_batch(self):
        if self.training:
            self.stages.append(self.model.stage); self.trainable.append(sum(p.requires_grad for p in self.model.parameters()))

class CancelAfter(Callback):
    def __init__(self, n): self.n = n
    def after_batch(self):
        if self.training and self.train_iter >= self.n: raise CancelFitException()

def test_cancelled_fit_restores_the_learner(tdls):
    learn = zoomin_learner(tdls, n_crops=2)
    learn.model.set_stage('C')
    learn.model.a_net.score.weight.requires_grad_(False)   # a user's own freezing must survive too
    grads = [p.requires_grad for p in learn.model.parameters()]
    modes = [m.training for m in learn.model.modules()]
    lf, cbs = learn.loss_func, list(learn.cbs)
    spy = StageSpy()
    with learn.no_bar(), learn.no_logging(): fit_zoomin(learn, 2, cbs=[spy, CancelAfter(5)])   # 8 iterations: M 0-3, A 4, C 5-7
    assert spy.stages == ['M']*4 + ['A'] and spy.trainable[-1] < len(grads)                         # cancelled during stage A
    assert learn.model.stage == 'C'
    assert [p.requires_grad for p in learn.model.parameters()] == grads
    assert [m.training for m in learn.model.modules()] == modes
    assert learn.loss_func is lf and sorted(type(c).__name__ for c in learn.cbs) == sorted(type(c).__name__ for c in cbs)
    # an exception that is not a cancel also leaves the parameters as they were
    class Boom(Callback):
        def after_batch(self): raise RuntimeError('boom')
    with pytest.raises(RuntimeError), learn.no_bar(), learn.no_logging(): fit_zoomin(learn, 1, cbs=Boom())
    assert [p.requires_grad for p in learn.model.parameters()] == grads and learn.model.stage == 'C'

def test_stage_plan_errors(tdls):
    with pytest.raises(ValueError, match='unknown Zoom-in-Net stage'): ZoomStaging(('M', 'B'), (1, 1))
    with pytest.raises(ValueError, match='2 stage epochs for 3 stages'): ZoomStaging(('M', 'A', 'C'), (1, 1))

# --- using a trained model

def test_save_load_round_trip_weights_only(tdls, tmp_path):
    learn = zoomin_learner(tdls, n_crops=2, path=tmp_path)
    with learn.no_bar(), learn.no_logging(): fit_zoomin(learn, .75, stages=('M', 'A', 'C'), stage_epochs=(.25, .25, .25))
    assert learn.model.stage == 'C'
    f = learn.save('zoomin', with_opt=False)
    sd = torch.load(f, weights_only=True)
    assert isinstance(sd, dict) and sd['_extra_state'] == {'stage': 'C'}
    learn2 = zoomin_learner(tdls, n_crops=2, path=tmp_path).load('zoomin', with_opt=False)
    assert learn2.model.stage == 'C'
    x, tw = tdls.valid_ds.tensors[0][:3], tdls.valid_ds.tensors[1][:3]
    learn.model.eval(); learn2.model.eval()
    assert torch.allclose(learn.model(x, tw)['logits'], learn2.model(x, tw)['logits'])
    p1, g1 = grade_probs(learn); p2, g2 = grade_probs(learn2)
    assert torch.allclose(p1, p2, atol=1e-6) and torch.equal(g1, g2) and p1.shape == (4, 5)

def test_attention_attribution_and_coverage(tdls):
    from drnb.interpret.attribution import attribute, ATTRIBUTIONS
    assert 'zoomin_attention' in ATTRIBUTIONS
    learn = zoomin_learner(tdls, n_crops=2)
    x = tdls.valid_ds.tensors[0][:2]
    h = attribute(learn, x, method='zoomin_attention', target=3, gated=False)
    assert h.shape == (2, SIZE, SIZE)
    learn.model.eval()
    with torch.no_grad(): o = learn.model.glance(x)
    up = lambda m: F.interpolate(m[:, None], size=(SIZE, SIZE), mode='bilinear')[:, 0]
    assert torch.allclose(h, up(o['gates'][:, 3]), atol=1e-6)
    assert torch.allclose(zoom_attention(learn, x), o['box_map'])                     # the map the crops come from
    assert torch.allclose(attribute(learn, x, method='zoomin_attention', target='abnormal'), up(o['box_map']), atol=1e-6)
    assert torch.allclose(attribute(learn, x, method='zoomin_gates', target=0), up(o['attention']), atol=1e-6)
    # coverage: a lesion at the centre of the top box is covered at k=1; one far from every box is not
    b = zoom_boxes(learn, x, k=1)
    x0, y0, x1, y1 = b[0, 0].tolist(); cx, cy = (x0 + x1)/2, (y0 + y1)/2
    gt = [[['MA', cx - 1, cy - 1, cx + 1, cy + 1]], []]
    cov = zoom_coverage(learn, x, gt, ks=(1, 2))
    assert cov['coverage'].tolist() == [1., 1.] and cov['lesions'].tolist() == [1, 1]

def test_zoomin_data():
    d = zoomin_data(size=128, zoom=2)
    assert d['size'] == 128 and d['hires'] == 256 and 'grade' in d['targets'] and 'boxes' not in d['targets']
    d = zoomin_data(size=128, boxes='truth')
    assert d['targets'] == ('grade', 'boxes') and d['box_types'] == ('MA', 'HE', 'EX', 'SE')

def test_with_fundus_dataloaders(tmp_path):
    "The learner trains on drnb.data.block batches (image, twin, grade)."
    from drnb.synth import make_synthetic
    from drnb.data.block import fundus_dataloaders
    df = make_synthetic(tmp_path/'s', n=dict(train=8, valid=4), size=128, seed=3)
    dls = fundus_dataloaders(df, **zoomin_data(size=64, zoom=2), bs=4, num_workers=0)
    learn = zoomin_learner(dls, n_crops=2)
    with learn.no_bar(), learn.no_logging(): fit_zoomin(learn, 1)
    p, g = grade_probs(learn)
    assert p.shape == (4, 5) and g.shape == (4,)


# --- the mechanism: which map finds the lesions, gradients at the start, crops at the boxes, the oracle

def toy_features(seed, n=64, h=8, c=6, band=3.):
    "Frozen features: channel 0 = 1-3 lesion cells (half the images), channel 1 = a lesion-free edge band in every image; lesions; labels."
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, c, h, h, generator=g)*0.1
    edge = torch.zeros(h, h); edge[0] = edge[-1] = edge[:, 0] = edge[:, -1] = 1
    les = torch.zeros(n, h, h, dtype=torch.bool)
    for i in range(n//2):
        cells = torch.randperm((h - 2)**2, generator=g)[:int(torch.randint(1, 4, (1,), generator=g))]
        les[i, 1 + cells//(h - 2), 1 + cells%(h - 2)] = True
    f[:, 0] += les.float(); f[:, 1] += edge*band
    return f, les, les.flatten(1).any(1).long()

def top4_hits(maps, les):
    r, c, _ = attention_peaks(maps, 4, radius=0)
    has = les.flatten(1).any(1)
    return les[torch.arange(len(les))[:, None], r, c][has].sum().item()/les[has].sum().item()

@contextmanager
def one_thread():
    "Tiny tensors: one thread (spinning threads on a busy CPU cost more than the sums), restored after."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: yield
    finally: torch.set_num_threads(n)

@one_thread()
def toy_hits(gate_scale, steps, seeds=range(10)):
    "Mean top-4 hit rate of the S*G box map and of the mean abnormal gate after `steps` Adam steps of drnb's ANet on the toy."
    res = []
    for seed in seeds:
        f, les, y = toy_features(seed)
        torch.manual_seed(seed)
        an = ANet(f.shape[1], 2, score_scale=SCORE_SCALE, gate_scale=gate_scale)
        opt = torch.optim.Adam(an.parameters(), lr=1e-2)
        for _ in range(steps):
            opt.zero_grad(); F.cross_entropy(an(f)['a'], y).backward(); opt.step()
        with torch.no_grad(): o = an(f)
        res.append((top4_hits(evidence_map(o['gated'], o['a'], abnormal_grades(2)), les), top4_hits(o['gates'][:, 1], les)))
    return [sum(r[i] for r in res)/len(res) for i in (0, 1)]

def test_toy_sg_box_map_finds_the_lesions_the_gates_miss():
    "The issue's toy: gates from Kaiming's init stay on a distinctive lesion-free band; the box map from S*G hits the lesions (random cells: 4/64)."
    sg, gates = toy_hits(1., 40)
    assert sg > 0.8 and sg > 10*4/64            # measured 0.90
    assert gates < sg - 0.4                     # measured 0.27

def test_toy_uniform_gates_find_the_lesions_in_few_steps():
    "drnb's start (uniform gates, small scores): both maps find the toy's lesions within 20 steps."
    sg, gates = toy_hits(GATE_SCALE, 20)
    assert sg > 0.95 and gates > 0.9            # measured 1.00 and 0.99

def test_gradients_reach_the_gates_at_the_first_step():
    "Stage A's first backward moves the gates of a fresh ZoomInNet; with the score branch at zero (drnb before) nothing reaches them."
    x, y = torch.rand(4, 3, SIZE, SIZE), torch.tensor([0, 1, 2, 3])
    def gate_grad(zero_scores):
        seed_everything(0)
        net = ZoomInNet('resnet18', att_stride=16).set_stage('A')
        if zero_scores:
            with torch.no_grad(): net.a_net.score.weight.zero_()
        F.cross_entropy(net(x)['logits'], y).backward()
        return net.a_net.gate_out.weight.grad.abs()
    g = gate_grad(False)
    assert (g > 0).float().mean() > 0.9 and g.max() > 1e-4   # (almost) every gate weight gets a gradient at once
    assert gate_grad(True).max() == 0

def test_ties_go_to_the_centre_and_boxes_stay_in_the_eye():
    r, c, _ = attention_peaks(torch.zeros(2, 5, 5), 1, radius=0)
    assert r.tolist() == [[2], [2]] and c.tolist() == [[2], [2]]                 # a flat map: the centre cell, not the corner
    eye = torch.zeros(1, 4, 4, dtype=torch.bool); eye[0, :2, :2] = True
    att = torch.rand(1, 4, 4); att[0, :2, :2] -= 5                               # the highest cells lie outside the eye
    r, c, _ = attention_peaks(att, 4, radius=1, mask=eye)
    assert sorted(zip(r[0].tolist(), c[0].tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    bm = torch.zeros(1, 4, 4)                                                    # an S*G map that is zero (nothing learned yet)
    b1, _ = twin_boxes(bm, (TWIN, TWIN), 32, 2); b2, _ = twin_boxes(bm, (TWIN, TWIN), 32, 2)
    assert torch.equal(b1, b2) and b1[0, 0].tolist() == [32, 32, 64, 64]       # deterministic, at the centre

def test_box_map_is_the_abnormal_evidence_in_sg():
    net = ZoomInNet('resnet18', att_stride=16).eval()
    with torch.no_grad(): o = net.glance(torch.rand(2, 3, SIZE, SIZE))
    p = o['a'][:, 1:].softmax(1)
    assert torch.allclose(o['box_map'], (p[..., None, None]*o['gated'][:, 1:]).sum(1) - o['gated'][:, 0], atol=1e-6)
    assert torch.allclose(ZoomInNet('resnet18', att_stride=16, box_map='gates').eval().box_map_of(o), o['attention'])
    with pytest.raises(ValueError, match='box_map'): ZoomInNet('resnet18', box_map='cam')

def test_the_oracle_crops_come_from_the_twin_at_the_lesions(tdls):
    "boxes='truth': ZoomCrop takes the lesion boxes out of the targets, C-Net gets the twin's pixels centred on the lesions."
    seed_everything(0)
    x, tw, y = torch.rand(2, 3, SIZE, SIZE), coord_twin(2, TWIN, TWIN), torch.tensor([2, 0])
    bb = torch.tensor([[[-.5, -.5, -.4, -.4], [.5, .1, .6, .2]], [[0.]*4]*2])   # two lesions in image 0, none in image 1 (padding)
    lb = torch.tensor([[1, 3], [0, 0]])
    ds = TensorDataset(x, tw, y, bb, lb)
    dls = DataLoaders(DataLoader(ds, bs=2), DataLoader(ds, bs=2)); dls.n_inp = 2
    learn = zoomin_learner(dls, n_crops=3, boxes='truth', model_kwargs=dict(eye_only=False))
    seen = []
    learn.model.c_body.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    learn.model.set_stage('C').eval()
    with learn.no_bar(), learn.no_logging(): p, t = learn.get_preds(dl=dls.valid)
    assert t.tolist() == [2, 0] and p.shape == (2, 5)                        # the targets the metrics see: grades only
    crops = seen[-1]                                                         # (2*3, 3, 32, 32), image 0 first
    for k, (cx, cy) in enumerate([(.55*TWIN/2 - 16, .55*TWIN/2 - 16), (1.55*TWIN/2 - 16, 1.15*TWIN/2 - 16)]):
        assert crops[k, 0, 0, 0] == round(cy) and crops[k, 1, 0, 0] == round(cx)     # the crop's top-left twin pixel
    with torch.no_grad(): o = learn.model.glance(x)
    att = twin_boxes(o['box_map'], (TWIN, TWIN), 32, 3)[0]
    assert crops[2, 0, 0, 0] == att[0, 0, 1] and crops[3, 1, 0, 0] == att[1, 0, 0]  # no third lesion, no lesion at all: the box map's boxes

def test_a_steps_and_a_lr_reach_stage_a(tdls):
    learn = zoomin_learner(tdls, n_crops=2)
    spy = StageSpy()
    with learn.no_bar(), learn.no_logging(): fit_zoomin(learn, 1, stages=('M', 'A'), stage_epochs=(.25, .25), a_steps=3, cbs=spy)
    assert spy.stages == ['M', 'A', 'A', 'A']                               # 4 batches an epoch: A grows from 1 step to 3
    from drnb.models.zoomin import _a_plan
    assert _a_plan(learn, ['M', 'A'], [1., 1.], None, 0, 0.05)[1] == {'A': 0.05}
    assert _a_plan(learn, ['M', 'A'], [1., 1.], [1e-3, 2e-3], 0, 0.05)[1] == {'M': 1e-3, 'A': 0.05}

def test_method_params_for_the_experiment():
    from drnb.methods import get_method
    m = get_method('zoomin')
    p = m.resolve(dict(box_map='gates', boxes='truth', stage_epochs='2,1,1', a_steps='80'))
    assert p['box_map'] == 'gates' and p['boxes'] == 'truth' and p['stage_epochs'] == ['2', '1', '1'] and p['a_steps'] == 80
    assert m.data_kwargs(64, boxes='truth')['targets'] == ('grade', 'boxes')
    with pytest.raises(ValueError, match='box_map'): m.resolve(dict(box_map='cam'))
