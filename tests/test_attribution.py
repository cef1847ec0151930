"drnb.interpret.attribution: known answers for every method on tiny models, targets, registry, and no state left behind."
import pytest, torch, torch.nn as nn
from torch import Tensor
from drnb.interpret.attribution import (ATTRIBUTIONS, attribute, attribution_mode, hook_state, register_attribution, get_attribution,
                                        referable_score, abnormal_score, feature_layer, model_logits, REDUCTIONS)

torch.set_num_threads(2)
GRADIENT_METHODS = ['saliency', 'integrated_gradients', 'smoothgrad', 'guided_backprop', 'deeplift', 'guided_gradcam']
MAX_METHODS = ['gradcam', 'occlusion']
BUILTINS = GRADIENT_METHODS + MAX_METHODS
SIZE = 64
QUADRANTS = dict(tl=(slice(0, 32), slice(0, 32)), tr=(slice(0, 32), slice(32, 64)),
                 bl=(slice(32, 64), slice(0, 32)), br=(slice(32, 64), slice(32, 64)))

def region_mask(*names, size=SIZE):
    m = torch.zeros(size, size, dtype=torch.bool)
    for n in names: m[QUADRANTS[n]] = True
    return m

class KeepRegion(nn.Module):
    "Zero a feature map outside a fixed region: the model cannot see anything else."
    def __init__(self, mask): super().__init__(); self.register_buffer('mask', mask.float())
    def forward(self, x): return x * self.mask

class QuadrantNet(nn.Module):
    "conv-ReLU-conv-ReLU (one ReLU module used twice), features kept only in one quadrant, mean-pooled, positive linear head."
    def __init__(self, quadrant='tr', n_out=5, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1,self.conv2 = nn.Conv2d(3, 4, 3, padding=1),nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.keep = KeepRegion(region_mask(quadrant))
        self.pool,self.fc = nn.AdaptiveAvgPool2d(1),nn.Linear(4, n_out)
        with torch.no_grad():
            for c in (self.conv1, self.conv2): c.weight.copy_(torch.rand(c.weight.shape, generator=g)); c.bias.zero_()
            self.fc.weight.copy_(torch.rand(self.fc.weight.shape, generator=g) + 0.5); self.fc.bias.zero_()
    def forward(self, x):
        f = self.keep(self.relu(self.conv2(self.relu(self.conv1(x)))))
        return self.fc(self.pool(f).flatten(1))

class RegionNet(nn.Module):
    "Output k = mean of ReLU(conv(x)) over its own region (a constant 0 when None): each output looks somewhere else."
    def __init__(self, regions, size=SIZE):
        super().__init__()
        self.conv,self.act = nn.Conv2d(3, 4, 3, padding=1),nn.ReLU()
        with torch.no_grad(): self.conv.weight.fill_(1/27); self.conv.bias.zero_()
        masks = torch.stack([region_mask(r).float() if r else torch.zeros(size, size) for r in regions])
        self.register_buffer('masks', masks / masks.sum((1, 2), keepdim=True).clamp_min(1))
    def forward(self, x): return torch.einsum('nhw,khw->nk', self.act(self.conv(x)).sum(1), self.masks)

def images(n=2, seed=1): return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
def mass_in(h:Tensor, mask): return (h.abs()*mask).sum((1, 2)) / h.abs().sum((1, 2))
def argmax_in(h:Tensor, mask): return mask.flatten()[h.flatten(1).argmax(1)]

@pytest.mark.parametrize('method', BUILTINS)
@pytest.mark.parametrize('quadrant', ['tr', 'bl'])
def test_known_region(method, quadrant):
    "Acceptance 2: the model only sees one quadrant, so the heatmap must be there."
    h = attribute(QuadrantNet(quadrant), images(), method, target=3)
    assert h.shape == (2, SIZE, SIZE) and h.dtype == torch.float32
    mask = region_mask(quadrant)
    if method in GRADIENT_METHODS: assert (mass_in(h, mask) > 0.9).all(), mass_in(h, mask)
    else: assert argmax_in(h, mask).all()

@pytest.mark.parametrize('method', BUILTINS)
def test_regression_output(method):
    "A single-output (regression) model: target None."
    h = attribute(QuadrantNet('br', n_out=1), images(1), method)
    assert argmax_in(h, region_mask('br')).all()

def test_grade_targets_look_at_their_own_region():
    m = RegionNet(['tl', 'tr', 'bl', 'br', None])
    for k,q in enumerate(['tl', 'tr', 'bl', 'br']):
        for method in ['saliency', 'integrated_gradients']:
            assert (mass_in(attribute(m, images(), method, target=k), region_mask(q)) > 0.9).all(), (k, method)
    h = attribute(m, images(), 'saliency', target=torch.tensor([0, 3]))   # per-image targets
    assert mass_in(h[:1], region_mask('tl')) > 0.9 and mass_in(h[1:], region_mask('br')) > 0.9

def test_referable_and_abnormal_targets():
    m = RegionNet([None, None, 'bl', 'br', None])  # grades 0, 1, 4 constant: P(grade>=2) depends on the bottom half only
    assert (mass_in(attribute(m, images(), 'saliency', target='referable'), region_mask('bl', 'br')) > 0.9).all()
    m = RegionNet(['tl', None, None, None, None])  # only grade 0 varies: P(grade>=1) = 1 - P(0) depends on the top left only
    assert (mass_in(attribute(m, images(), 'integrated_gradients', target='abnormal'), region_mask('tl')) > 0.9).all()

def test_referable_score_by_hand():
    z = torch.tensor([[0., 0, 0, 0, 0], [4, 0, 0, 0, -4]])
    p = z.softmax(1)
    torch.testing.assert_close(referable_score(z), torch.tensor([0.6, p[1, 2:].sum().item()]))
    torch.testing.assert_close(abnormal_score(z), torch.tensor([0.8, 1 - p[1, 0].item()]))
    with pytest.raises(ValueError, match='one logit per ICDR grade'): referable_score(torch.zeros(2, 3))

def test_pred_target():
    m = RegionNet(['tl', 'tr', 'bl', 'br', None])
    x = torch.zeros(2, 3, SIZE, SIZE); x[0][:, 32:, :32] = 1; x[1][:, :32, 32:] = 1   # image 0 bright bottom-left, image 1 top-right
    x += 0.01 * images()
    h = attribute(m, x, 'saliency', target='pred')
    assert mass_in(h[:1], region_mask('bl')) > 0.9 and mass_in(h[1:], region_mask('tr')) > 0.9

def test_bad_targets_and_methods():
    m, x = QuadrantNet(), images()
    with pytest.raises(ValueError, match='pass target='): attribute(m, x, 'saliency')
    with pytest.raises(ValueError, match='out of range'): attribute(m, x, 'saliency', target=5)
    with pytest.raises(ValueError, match='unknown target'): attribute(m, x, 'saliency', target='severe')
    with pytest.raises(ValueError, match='3 targets for 2 images'): attribute(m, x, 'saliency', target=[0, 1, 2])
    with pytest.raises(KeyError, match="known: saliency, integrated_gradients"): attribute(m, x, 'lime', target=0)
    with pytest.raises(ValueError, match='one logit per ICDR grade'): attribute(QuadrantNet(n_out=2), x, 'saliency', target='referable')
    with pytest.raises(ValueError, match=r'\(N,C,H,W\)'): attribute(m, torch.rand(SIZE, SIZE), 'saliency', target=0)
    with pytest.raises(ValueError, match='no images'): attribute(m, x[:0], 'saliency', target=0)
    with pytest.raises(ValueError, match="reduce='median'"): attribute(m, x, 'saliency', target=0, reduce='median')

def resnet():
    import torchvision
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=5)
    m.train(); m.layer1.eval()                              # mixed training flags must come back exactly
    m.fc.register_forward_hook(lambda mod, i, o: None)       # a user's own hook must survive
    return m

@pytest.mark.parametrize('method', BUILTINS)
def test_no_state_left_behind(method):
    "Hooks, training flags, in-place ReLUs, weights and .grad are exactly as before, for a torchvision resnet (in-place, reused ReLUs)."
    m = resnet()
    hooks, flags = hook_state(m), [mod.training for mod in m.modules()]
    inplace = [getattr(mod, 'inplace', None) for mod in m.modules()]
    sd = {k:v.clone() for k,v in m.state_dict().items()}
    kw = dict(window=16) if method == 'occlusion' else dict(n_steps=4) if method == 'integrated_gradients' else {}
    h = attribute(m, torch.rand(2, 3, 48, 48), method, target=2, **kw)
    assert h.shape == (2, 48, 48) and torch.isfinite(h).all()
    if 'gradcam' not in method: assert h.abs().sum() > 0   # a random net's ReLU'd CAM may be all 0
    assert hook_state(m) == hooks and len(m.fc._forward_hooks) == 1
    assert [mod.training for mod in m.modules()] == flags
    assert [getattr(mod, 'inplace', None) for mod in m.modules()] == inplace
    assert m.layer1[0].relu is m.layer1[0]._modules['relu'] and type(m.layer1[0].relu) is nn.ReLU   # DeepLift's stand-ins are gone
    assert all(torch.equal(sd[k], v) for k,v in m.state_dict().items())
    assert all(p.grad is None for p in m.parameters())

def test_hooks_removed_when_a_method_fails():
    m = resnet(); hooks = hook_state(m)
    @register_attribution('_fails')
    def fails(head, x, target):
        "Adds a hook then fails."
        head.model.layer2.register_forward_hook(lambda *a: None); head.model.relu.register_full_backward_hook(lambda *a: None)
        raise RuntimeError('boom')
    try:
        with pytest.raises(RuntimeError, match='boom'): attribute(m, torch.rand(1, 3, 32, 32), '_fails', target=0)
    finally: ATTRIBUTIONS.pop('_fails')
    assert hook_state(m) == hooks and m.training

def test_attribution_mode_restores():
    m = nn.Sequential(nn.Conv2d(3, 3, 3), nn.ReLU(inplace=True), nn.Dropout(0.5))
    with attribution_mode(m):
        assert not m.training and not m[1].inplace
        m[0].register_forward_pre_hook(lambda *a: None)
    assert m.training and m[1].inplace and len(m[0]._forward_pre_hooks) == 0

def test_deeplift_on_reused_relu_matches_gradient_times_input():
    "QuadrantNet reuses one ReLU; with all-positive weights DeepLift with a 0 baseline equals x * dy/dx exactly."
    m, x = QuadrantNet(), images(1)
    xg = x.clone().requires_grad_(); (g,) = torch.autograd.grad(m(xg)[:, 3].sum(), xg)
    torch.testing.assert_close(attribute(m, x, 'deeplift', target=3), (x*g).abs().sum(1))
    assert type(m.relu) is nn.ReLU

def test_registry_functions_and_captum_classes():
    from captum.attr import InputXGradient
    try:
        register_attribution('input_x_gradient', InputXGradient, reduce='sum')
        @register_attribution('red_channel', reduce='sum')
        def red_channel(head, x, target):
            "The red channel: a method that ignores the model."
            return x[:, :1]
        assert get_attribution('red_channel').doc == 'The red channel: a method that ignores the model.'
        x = images(1)
        torch.testing.assert_close(attribute(QuadrantNet(), x, 'red_channel', target=0), x[:, 0])
        m = QuadrantNet(); xg = x.clone().requires_grad_(); (g,) = torch.autograd.grad(m(xg)[:, 1].sum(), xg)
        torch.testing.assert_close(attribute(m, x, 'input_x_gradient', target=1), (x*g).sum(1))
        with pytest.raises(ValueError, match='reduce='): register_attribution('x', InputXGradient, reduce='median')
        with pytest.raises(TypeError, match='not a Captum Attribution'): register_attribution('x', int)
    finally:
        for k in ('input_x_gradient', 'red_channel'): ATTRIBUTIONS.pop(k, None)

class TwoHeads(nn.Module):
    "A multi-network model: returns (logits, lesion maps)."
    def __init__(self): super().__init__(); self.net = QuadrantNet('bl')
    def forward(self, x): return self.net(x), torch.zeros(len(x), 4, 8, 8)

class DictOut(TwoHeads):
    def forward(self, x): return dict(masks=None, logits=self.net(x))

class OwnForward(TwoHeads):
    def forward(self, x): return dict(masks=None)
    def attribution_forward(self, x): return self.net(x)

@pytest.mark.parametrize('cls', [TwoHeads, DictOut, OwnForward])
def test_multi_network_conventions(cls):
    m, x = cls(), images()
    expect = attribute(m.net, x, 'saliency', target=1)
    torch.testing.assert_close(attribute(m, x, 'saliency', target=1), expect)
    assert argmax_in(attribute(m, x, 'gradcam', target=1), region_mask('bl')).all()

def test_forward_fn_and_bad_output():
    class Masks(nn.Module):
        def __init__(self): super().__init__(); self.net = QuadrantNet('tl')
        def forward(self, x): return dict(masks=self.net(x))
    m, x = Masks(), images()
    with pytest.raises(TypeError, match="without 'logits'"): attribute(m, x, 'saliency', target=0)
    h = attribute(m, x, 'saliency', target=0, forward_fn=lambda x: m(x)['masks'])
    torch.testing.assert_close(h, attribute(m.net, x, 'saliency', target=0))
    assert model_logits(m.net, x).shape == (2, 5)

def test_batching_changes_nothing():
    m, x = QuadrantNet(), images(5)
    for method,kw in [('saliency', {}), ('integrated_gradients', dict(n_steps=8)), ('occlusion', dict(window=16))]:
        whole = attribute(m, x, method, target='pred', batch_size=5, **kw)
        tol = dict(rtol=1e-4, atol=1e-5*whole.abs().max().item())
        torch.testing.assert_close(attribute(m, x, method, target='pred', batch_size=2, **kw), whole, **tol)
        torch.testing.assert_close(torch.cat([attribute(m, x[i:i+1], method, target='pred', **kw) for i in range(5)]), whole, **tol)

def test_feature_layer_and_override():
    import torchvision
    r = torchvision.models.resnet18(num_classes=5)
    assert feature_layer(r, torch.rand(1, 3, 64, 64)) is r.layer4
    q = QuadrantNet('tl')
    assert feature_layer(q, images(1)) is q.keep
    # forcing an earlier layer, before the region is cut, loses the localisation only Grad-CAM's layer choice gave
    h = attribute(q, images(1), 'gradcam', target=0, layer=q.conv1)
    assert h.shape == (1, SIZE, SIZE) and mass_in(h, region_mask('tl')) < 0.9
    q.attribution_layer = q.conv2
    assert feature_layer(q, images(1)) is q.conv2

def test_fastai_learner_and_tensor_image():
    from fastai.learner import Learner
    from fastai.data.core import DataLoaders
    from fastai.torch_core import TensorImage
    x = images(4); ds = list(zip(x, torch.zeros(4).long()))
    learn = Learner(DataLoaders.from_dsets(ds, ds, bs=2), QuadrantNet('tr'), loss_func=nn.CrossEntropyLoss())
    h = attribute(learn, TensorImage(x[:2]), 'gradcam', target=3)
    assert type(h) is Tensor and argmax_in(h, region_mask('tr')).all()
    assert h.device == next(learn.model.parameters()).device

def test_reductions():
    a = torch.tensor([[[[1.]], [[-3.]]]])
    assert [REDUCTIONS[k](a).item() for k in ('abs_sum', 'sum', 'mean', 'max_abs', 'relu_sum')] == [4, -2, -1, 3, 0]

@pytest.mark.cuda
@pytest.mark.parametrize('method', BUILTINS)
def test_cuda(method):
    m = QuadrantNet('tr').cuda()
    h = attribute(m, images(), method, target=3)   # images start on the CPU
    assert h.device.type == 'cuda' and argmax_in(h.cpu(), region_mask('tr')).all()

def test_probe_cache_does_not_keep_models_alive():
    import gc, weakref
    m = QuadrantNet(); wr = weakref.ref(m)
    attribute(m, images(1), 'deeplift', target=0)
    del m; gc.collect()
    assert wr() is None
