"drnb.models.mining (Quellec et al. 2017): heatmap = |dy/dI| summed over channels, backward rules by hand, double backprop, nothing left behind, learner contract, lesion detection."
import numpy as np, pandas as pd, pytest, torch, torch.nn as nn, torch.nn.functional as F
from fastai.data.core import DataLoaders
from fastai.callback.core import Callback, CancelFitException
from drnb.interpret.attribution import attribute, hook_state, ATTRIBUTIONS
from drnb.models.backbones import create_backbone, list_backbones
from drnb.models.mining import *
from drnb.methods import get_method, frozen_parameters

torch.set_num_threads(2)

def small_net(seed=0, bn=True, p=0.):
    torch.manual_seed(seed)
    return MiningNet(OOBody(width=4, depths=(1, 2, 1), bn=bn), p=p).eval()

def images(n=2, size=32, seed=1): return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))

def ruled_modules(model): return [n for n, m in model.named_modules() if 'forward' in m.__dict__]

# ---------------------------------------------------------------- acceptance 1a: plain rule = |d output / d input| summed over channels

def test_plain_heatmap_is_abs_input_gradient_summed_over_channels():
    net, x = small_net(), images(3)
    xg = x.clone().requires_grad_()
    g, = torch.autograd.grad(net(xg).sum(), xg)
    want = g.abs().sum(1)
    for h in (mining_heatmap(net, x, 'gradient'), attribute(net, x, 'mining', rule='gradient')):
        assert h.shape == (3, 32, 32)
        torch.testing.assert_close(h, want, rtol=1e-5, atol=1e-7)
    # one image at a time gives the same maps (one backward pass for the batch does not mix images)
    torch.testing.assert_close(torch.cat([mining_heatmap(net, x[i:i+1], 'gradient') for i in range(3)]), want, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(attribute(net, x, 'saliency'), want, rtol=1e-5, atol=1e-7)

def test_registered_and_targets():
    assert 'mining' in ATTRIBUTIONS
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4*16*16, 5)).eval()
    x = images(2)
    xg = x.clone().requires_grad_()
    g, = torch.autograd.grad(net(xg)[:, 3].sum(), xg)
    torch.testing.assert_close(attribute(net, x, 'mining', target=3, rule='gradient'), g.abs().sum(1))
    assert attribute(net, x, 'mining', target='referable').shape == (2, 32, 32)

# ---------------------------------------------------------------- acceptance 1b: each rule changes the backward as documented, not the forward

X = torch.tensor([-2., -1., 0., 1., 2.]); G = torch.tensor([1., -1., 1., 1., -1.])

@pytest.mark.parametrize('layer,slope', [(nn.LeakyReLU(0.01), 0.01), (nn.ReLU(), 0.), (nn.ReLU(inplace=True), 0.)])
@pytest.mark.parametrize('rule', ['gradient', 'deconvnet', 'guided', 'mining'])
def test_activation_rules_by_hand(layer, slope, rule):
    s = slope
    a = dict(gradient=s, deconvnet=1., guided=s, mining=s)[rule]     # factor where x <= 0
    b = dict(gradient=1., deconvnet=s, guided=0., mining=0.25)[rule]   # factor where g <= 0
    want = torch.tensor([gi * (1. if xi > 0 else a) * (1. if gi > 0 else b) for xi, gi in zip(X.tolist(), G.tolist())])
    x = X.clone().requires_grad_()
    with backward_rule(layer, rule) as st:
        y = layer(x)
        torch.testing.assert_close(y, F.leaky_relu(X, slope), rtol=0, atol=0)   # forward unchanged
        torch.testing.assert_close(rule_gradient(y * G, x, st), want)
        # outside state.use() the same graph gives the true derivative
        torch.testing.assert_close(torch.autograd.grad((layer(x) * G).sum(), x)[0], torch.where(X > 0, G, G*s))
    assert ruled_modules(layer) == []

def test_rule_overrides_and_errors():
    x, layer = X.clone().requires_grad_(), nn.ReLU()
    with backward_rule(layer, 'guided', neg_signal=0.5, neg_input=0.1) as st:
        g = rule_gradient(layer(x) * G, x, st)
    torch.testing.assert_close(g, torch.tensor([0.1, -0.05, 0.1, 1., -0.5]))
    with pytest.raises(KeyError, match='unknown backward rule'): get_rule('lrp')
    with pytest.raises(TypeError, match='pool_spread'): get_rule('mining', spread=1)
    with pytest.raises(ValueError, match=r'\[0, 1\]'): get_rule('mining', pool_spread=2)

@pytest.mark.parametrize('spread,want', [(0., [0, 0, 0, 1.]), (0.5, [0.125, 0.125, 0.125, 0.625]), (1., [0.25]*4)])
def test_max_pool_spread_by_hand(spread, want):
    pool, x = nn.MaxPool2d(2), torch.tensor([[[[1., 2.], [3., 4.]]]], requires_grad=True)
    with backward_rule(pool, 'gradient', pool_spread=spread) as st:
        y = pool(x); assert y.item() == 4.
        torch.testing.assert_close(rule_gradient(y, x, st).flatten(), torch.tensor(want))

@pytest.mark.parametrize('spread', [0., 0.5])
def test_rms_pool_rule_by_hand(spread):
    pool, x = RMSPool(eps=0.), torch.tensor([[[[3., -4.]]]], requires_grad=True)
    rms = 12.5 ** 0.5
    with backward_rule(pool, 'gradient', pool_spread=spread) as st:
        y = pool(x); torch.testing.assert_close(y, torch.tensor([[rms]]))
        g = rule_gradient(y, x, st).flatten()
    torch.testing.assert_close(g, (1 - spread) * torch.tensor([3., -4.]) / (2 * rms) + spread / 2)

def test_plain_rule_on_max_pool_matches_autograd_with_overlapping_windows():
    pool, x = nn.MaxPool2d(3, 2, 1), torch.randn(2, 3, 9, 9, requires_grad=True)
    g0 = torch.randn(2, 3, 5, 5)
    want, = torch.autograd.grad(F.max_pool2d(x, 3, 2, 1), x, g0)
    with backward_rule(pool, 'gradient') as st: got = rule_gradient(pool(x) * g0, x, st)
    torch.testing.assert_close(got, want, rtol=0, atol=0)

@pytest.mark.parametrize('rule', ['deconvnet', 'guided', 'mining'])
def test_rules_leave_forward_unchanged_and_change_the_map(rule):
    net, x = small_net(), images(2)
    with torch.no_grad(): out0 = net(x)
    with backward_rule(net, rule):
        assert len(ruled_modules(net)) > 0
        torch.testing.assert_close(net(x.clone().requires_grad_()), out0, rtol=0, atol=0)
    assert not torch.allclose(mining_heatmap(net, x, rule), mining_heatmap(net, x, 'gradient'), rtol=1e-2)

# ---------------------------------------------------------------- acceptance 1c: double backprop reaches the weights

def _l1(net, x, rule):
    xg = x.clone().requires_grad_()
    with backward_rule(net, rule) as st: return heatmap_l1(rule_gradient(net(xg), xg, st, create_graph=True).abs().sum(1))

@pytest.mark.parametrize('rule', ['gradient', 'guided', 'mining'])
def test_sparsity_gradient_reaches_weights_and_matches_finite_difference(rule):
    net = small_net(bn=False).double()
    x = images(2, 24).double()
    ws = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    grads = torch.autograd.grad(_l1(net, x, rule), ws)
    assert all(g.abs().sum() > 0 for g in grads)   # every conv and the output layer get a gradient from the heatmap term
    w, i, eps = ws[0], (1, 0, 2, 2), 1e-6
    with torch.no_grad(): w[i] += eps
    up = _l1(net, x, rule).item()
    with torch.no_grad(): w[i] -= 2*eps
    down = _l1(net, x, rule).item()
    with torch.no_grad(): w[i] += eps
    assert grads[0][i].item() == pytest.approx((up - down) / (2*eps), rel=1e-4, abs=1e-9)

# ---------------------------------------------------------------- learner, callback, restore

def tensor_dls(n=16, size=32, bs=4):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 3, size, size, generator=g), (torch.arange(n) % 5).float()
    ds = list(zip(x, y))
    return DataLoaders.from_dsets(ds[:12], ds[12:], bs=bs, device='cpu')

class CancelAfterLoss(Callback):
    order = 60
    def after_loss(self):
        if self.training and self.iter == 1: raise CancelFitException

def test_learner_trains_with_heatmap_term_and_logs_it():
    learn = mining_learner(tensor_dls(), 'o_O_small', lam=1e-2)
    w0 = learn.model.body.body.levels[0][0][0].weight.detach().clone()
    with learn.no_bar(), learn.no_logging(): fit_mining(learn, 1, 1e-3)
    assert 'heat_l1' in learn.recorder.metric_names
    l1 = learn.recorder.values[-1][learn.recorder.metric_names.index('heat_l1') - 1]
    assert np.isfinite(l1) and l1 > 0
    assert not torch.equal(w0, learn.model.body.body.levels[0][0][0].weight)
    assert ruled_modules(learn.model) == [] and learn.heatmap_sparsity._ctx is None

def test_heatmap_term_is_added_to_the_loss():
    learn = mining_learner(tensor_dls(), 'o_O_small', lam=1e-2, rule='gradient')
    seen = {}
    class Spy(Callback):
        order = 60
        def after_loss(self):
            if self.training: seen['mse'], seen['total'] = self.loss.item(), self.loss_grad.item(); raise CancelFitException
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=Spy())
    l1 = learn.heatmap_sparsity.batch_l1.item()
    assert seen['total'] == pytest.approx(seen['mse'] + 1e-2 * l1, rel=1e-5)

def test_cancelled_fit_restores_the_learner():
    learn = mining_learner(tensor_dls(), 'o_O_small', lam=1e-2, cbs=CancelAfterLoss())
    loss_func, model, before = learn.loss_func, learn.model, hook_state(learn.model)
    with learn.no_bar(), learn.no_logging(): fit_mining(learn, 1)
    assert learn.loss_func is loss_func and learn.model is model
    assert ruled_modules(learn.model) == [] and hook_state(learn.model) == before
    assert all(p.requires_grad for p in learn.model.parameters())

def test_error_mid_batch_leaves_nothing_after_fit_mining():
    class Boom(Callback):
        order = 60
        def after_loss(self):
            if self.training: raise RuntimeError('boom')
    learn = mining_learner(tensor_dls(), 'o_O_small', lam=1e-2, cbs=Boom())
    with pytest.raises(RuntimeError, match='boom'), learn.no_bar(), learn.no_logging(): fit_mining(learn, 1)
    assert ruled_modules(learn.model) == []

def test_attribute_leaves_model_as_it_was():
    net = small_net()
    net.train()
    before = hook_state(net)
    for rule in RULES: mining_heatmap(net, images(2), rule)
    assert net.training and ruled_modules(net) == [] and hook_state(net) == before and clear_backward_rules(net) == 0

def test_grade_probs_and_save_load_round_trip(tmp_path):
    learn = mining_learner(tensor_dls(), 'o_O_small', path=tmp_path)
    with learn.no_bar(), learn.no_logging(): fit_mining(learn, 1)
    probs, grades = grade_probs(learn)
    preds, _ = learn.get_preds()
    assert probs.shape == (4, 5) and grades.tolist() == [2, 3, 4, 0]
    torch.testing.assert_close(probs.sum(1), torch.ones(4, dtype=probs.dtype))
    # P(referable) is increasing in the output, so the referable AUC is that of the output itself
    assert np.argsort(probs[:, 2:].sum(1).numpy()).tolist() == np.argsort(preds.flatten().numpy()).tolist()
    learn.save('m', with_opt=False)
    sd = torch.load(tmp_path/'models'/'m.pth', weights_only=True)
    fresh = mining_model('o_O_small'); fresh.load_state_dict(sd)
    x = images(2)
    with torch.no_grad(): torch.testing.assert_close(fresh.eval()(x), learn.model.eval()(x))

def test_regression_probs_by_hand():
    p = regression_probs([1.5], scale=1.)
    s = torch.sigmoid(torch.tensor([-1., 0., 1., 2.], dtype=torch.float64))
    torch.testing.assert_close(p[0], torch.cat([s[:1], s.diff(), 1 - s[-1:]]))
    assert regression_probs([0., 2., 4.]).argmax(1).tolist() == [0, 2, 4]

@pytest.mark.parametrize('arch', ['o_O', 'resnet18'])
def test_any_backbone(arch):
    net = mining_model(arch).eval()
    x = images(1, 64)
    assert net(x).shape == (1, 1) and mining_heatmap(net, x).shape == (1, 64, 64)

def test_o_O_registered_like_every_backbone():
    assert {'o_O', 'o_O_small'} <= set(list_backbones())
    b = create_backbone('o_O', in_chans=4)
    with torch.no_grad(): fs = b.eval().features(torch.zeros(1, 4, 80, 96))
    assert b.stride == 32 and b.strides == [2, 4, 8, 16, 32] and fs[-1].shape == (1, 512, 3, 3)

def test_mining_data_keys():
    d = mining_data(size=256, bs=8)
    assert d == dict(targets=('grade',), size=256, regression=True, normalize=False, square='eye', bs=8)

# ---------------------------------------------------------------- lesion detection

def blob(y, x, a=1., size=64):
    yy, xx = np.mgrid[:size, :size]
    return a*np.exp(-((yy - y)**2 + (xx - x)**2)/8)

def test_lesion_metrics_by_hand():
    masks = np.zeros((3, 4, 64, 64), bool)
    masks[0, 0, 10:12, 10:12] = True   # MA found by the strongest peak
    masks[1, 1, 40:44, 40:44] = True   # HE found only after a false positive in image 2
    heat = np.stack([blob(11, 11, 1.), blob(42, 42, 0.6), blob(20, 50, 0.8)])
    curves = lesion_froc_curves(heat, masks)
    c = curves['all']
    assert c['sensitivity'].tolist() == [0.5, 0.5, 1.] and c['fp_per_image'].tolist() == [0, 1/3, 1/3]
    m = heatmap_lesion_metrics(heat, masks)
    # sensitivity 0.5 below 1/3 FP per image (fps 1/8, 1/4), 1 from 1/2 on (5 of 7 reading points)
    assert m['froc_all'] == pytest.approx((2*0.5 + 5*1.)/7)
    assert m['froc_MA'] == pytest.approx(1.) and m['auc_MA'] == pytest.approx(1.)
    assert m['auc_HE'] == pytest.approx(0.)   # image 1 has the weakest peak
    assert 'froc_EX' not in m and 'auc_EX' not in m

def test_detect_lesions_and_boxes():
    heat = np.stack([blob(11, 11) + blob(40, 30, 0.5)])
    d = detect_lesions(heat, k=5)
    assert d[['y', 'x']].values.tolist()[:2] == [[11, 11], [40, 30]] and d['score'].is_monotonic_decreasing
    boxes = [[['HE', 28, 38, 33, 43], ['OD', 0, 0, 5, 5]]]
    m = heatmap_lesion_metrics(heat, boxes, types=('EX', 'HE'))
    # the strongest peak (11, 11) is a false positive, the HE box is found second: sensitivity 0 below 1 FP per image, then 1
    assert m['froc_all'] == pytest.approx(4/7) and m['froc_HE'] == pytest.approx(4/7)

def test_idrid_boxes_tensors_and_froc(idrid_boxes):
    from drnb.data.formats import read_idrid_boxes
    df = read_idrid_boxes(idrid_boxes)
    recs = df[df.lesions_annotated].head(2)
    from drnb.data.block import record_tensors
    t = record_tensors(recs, 128, square='eye', types=('EX', 'HE'))
    assert t['x'].shape == (2, 3, 128, 128) and t['masks'] is None
    assert all(len(bs) > 0 for bs in t['boxes'])
    for bs in t['boxes']:
        for typ, x0, y0, x1, y1 in bs: assert typ in ('EX', 'HE') and -1 < x0 < x1 < 129 and -1 < y0 < y1 < 129
    h = mining_heatmap(mining_model('o_O_small'), t['x'])
    m = heatmap_lesion_metrics(h, t['boxes'], types=('EX', 'HE'))
    assert 0 <= m['froc_all'] <= 1

# ---------------------------------------------------------------- issue 24: heatmap training without shortcuts (mechanism tests)

class _Tail(nn.Sequential):
    "A tiny Lite0-like body: conv-BN-act, depthwise conv-BN-act, 1x1 conv-BN (no activation at the end, as in Lite0)."
    channels = 6

def lite_like(act, seed=0):
    "The tiny body with its batch-norm statistics set from a batch (so that in eval mode its units are not all dead)."
    torch.manual_seed(seed)
    net = MiningNet(_Tail(nn.Conv2d(3, 4, 3, 2, 1), nn.BatchNorm2d(4, momentum=1.), act(), nn.Conv2d(4, 4, 3, 1, 1, groups=4),
                          nn.BatchNorm2d(4, momentum=1.), act(), nn.Conv2d(4, 6, 1), nn.BatchNorm2d(6, momentum=1.)), p=0.).double()
    with torch.no_grad(): net.train()(images(4, 16, seed=7).double())
    return net

@pytest.mark.parametrize('train', [True, False], ids=['bn-train', 'bn-eval'])
@pytest.mark.parametrize('act', [nn.ReLU, lambda: nn.LeakyReLU(0.01)], ids=['relu', 'leaky'])
@pytest.mark.parametrize('rule', ['mining', 'mining_rms'])
def test_double_backprop_matches_finite_differences_on_a_lite_like_body(rule, act, train):
    "The heatmap penalty's gradient, by double backprop through the rule, equals central finite differences in every part of a BN body."
    net = lite_like(act).train(train)
    x = images(2, 16).double()
    ps = [net.body[0].weight, net.body[3].weight, net.body[1].weight, net.body[7].bias, net.fc.weight]
    grads = torch.autograd.grad(_l1(net, x, rule), ps)
    assert all(g.abs().sum() > 0 for g in grads)                                        # the penalty reaches the stem, BN and output
    for p, g in zip(ps, grads):
        i, eps = (0,)*p.ndim, 1e-6
        with torch.no_grad(): p[i] += eps
        up = _l1(net, x, rule).item()
        with torch.no_grad(): p[i] -= 2*eps
        down = _l1(net, x, rule).item()
        with torch.no_grad(): p[i] += eps
        assert g[i].item() == pytest.approx((up - down)/(2*eps), rel=1e-5, abs=1e-8)

def test_the_penalty_reaches_a_pretrained_lite0_body_and_nothing_is_frozen():
    "With the grade loss switched off, one step of the heatmap term alone moves the stem of a pretrained Lite0: no frozen body, no held-off penalty."
    learn = get_method('mining').learner(tensor_dls(n=16, size=64), 'tf_efficientnet_lite0', pretrained=True, lam=1., act='leaky_relu', start=0.)
    learn.loss_func = lambda p, y: (p*0).sum()
    assert frozen_parameters(learn) == 0
    assert frozen_parameters(mining_learner(tensor_dls(), 'tf_efficientnet_lite0', pretrained=True)) == 0   # no freeze in the learner either
    stem = learn.model.body.model.conv_stem.weight if hasattr(learn.model.body, 'model') else next(learn.model.body.parameters())
    before = stem.detach().clone()
    class Spy(Callback):
        order = 60
        def before_step(self):
            self.grad = stem.grad.abs().sum().item(); self.l1 = self.learn.heatmap_sparsity.batch_l1; raise CancelFitException()
    spy = Spy()
    learn.fit(1, 1e-3, cbs=spy)
    assert spy.grad > 0 and float(spy.l1) > 0
    learn.opt.step()
    assert not torch.equal(before, stem.detach())

def test_no_saturation_shortcut_with_the_swapped_activation():
    "ReLU6 lets the penalty vanish by saturating a unit (bias +50: heatmap exactly 0); leaky ReLU keeps a signal both ways."
    m = mining_model('tf_efficientnet_lite0', pretrained=True, act='leaky_relu')
    assert not any(isinstance(x, nn.ReLU6) for x in m.modules())
    assert all(isinstance(x, nn.LeakyReLU) and x.negative_slope == 0.01 for x in m.modules() if isinstance(x, RULE_ACTIVATIONS))
    assert swap_activations(create_backbone('tf_efficientnet_lite0'), 'leaky_relu') == 32
    x, g = torch.tensor([-10., 3., 10.]), torch.ones(3)
    assert activation_backward(nn.LeakyReLU(0.01), x, g, RULES['mining']).tolist() == pytest.approx([0.01, 1, 1])
    assert activation_backward(nn.ReLU6(), x, g, RULES['mining']).tolist() == pytest.approx([0, 1, 0])
    def heat(act, bias):
        torch.manual_seed(0)
        net = MiningNet(_Tail(nn.Conv2d(3, 6, 3, 1, 1), nn.BatchNorm2d(6), act()), p=0.).eval()
        with torch.no_grad(): net.body[1].bias.fill_(bias)
        xg = images(1, 16).requires_grad_()
        with backward_rule(net, 'mining_rms') as st: return rule_gradient(net(xg), xg, st).abs().sum().item()
    assert heat(nn.ReLU6, 50.) == 0                                           # the shortcut exists with ReLU6 ...
    assert heat(lambda: nn.LeakyReLU(0.01), 50.) > 0 and heat(lambda: nn.LeakyReLU(0.01), -50.) > 0   # ... not with leaky ReLU

def test_mining_rms_rule_is_the_true_rms_derivative_and_mining_keeps_the_spread():
    x, g = torch.rand(1, 2, 3, 3) + 0.1, torch.tensor([[1., -2.]])
    pool = RMSPool(); n = 9
    true = g[..., None, None]*x/(n*pool(x)[..., None, None])
    assert torch.allclose(pool_backward(pool, x, g, RULES['mining_rms']), true)
    assert torch.allclose(pool_backward(pool, x, g, RULES['mining']), 0.5*true + 0.5*g[..., None, None]/n)
    assert 'mining_rms' in ATTRIBUTIONS

def test_a_saved_run_rebuilds_the_swapped_activation(tmp_path):
    "`load_run` rebuilds the model from the run's parameters: the leaky net must come back leaky (activations hold no weights to betray it)."
    from drnb.methods import save_run, load_run
    learn = get_method('mining').learner(tensor_dls(), 'resnet18', False, act='leaky_relu')        # resnet18's ReLUs become leaky
    assert not any(isinstance(m, nn.ReLU) for m in learn.model.modules())
    save_run(learn, tmp_path, 32, 'resnet18', 'pad', False, dataset='synthetic:tiny', seed=0)
    back = load_run(tmp_path, 'cpu')
    x = images(2, 32)
    assert torch.allclose(learn.model.eval()(x), back.model.eval()(x))
