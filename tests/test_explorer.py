"The heatmap explorer driven through its widgets in Python: set values, let the observers run, check the state."
import numpy as np, pytest, torch, torch.nn as nn
from matplotlib.figure import Figure
from drnb.interpret.attribution import ATTRIBUTIONS, register_attribution, attribute
from drnb.interpret.explorer import explore, explorer_panel, Explorer, as_items, record_items, ExplorerItem

class Net(nn.Module):
    "A small CNN: 5 logits from a conv feature map (Grad-CAM has a spatial layer); brighter images lean to higher grades."
    def __init__(self):
        super().__init__(); torch.manual_seed(0)
        self.f = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.h = nn.Linear(8, 5)
    def forward(self, x): return self.h(self.f(x).mean((2, 3))) + x.mean((1, 2, 3))[:, None]*torch.arange(5.)

class ZoomNet(Net):
    "`Net` with a Zoom-in-Net-like `zoom_boxes(x)` (duck typed by the explorer)."
    def zoom_boxes(self, x): return torch.tensor([[4., 4., 20., 20.], [30., 30., 46., 46.], [10., 40., 26., 56.]]).expand(len(x), -1, -1)

def images(n=4, size=64):
    "Items with known grades, a lesion box each and different brightness (so predictions differ)."
    rng = np.random.default_rng(0)
    return [dict(image=(rng.random((size, size, 3))*60 + 40*i).astype(np.uint8), grade=i % 5, name=f'img{i}',
                 boxes=[['HE', 8 + 4*i, 10, 20 + 4*i, 22]]) for i in range(n)]

@pytest.fixture
def counting():
    "A registered method 'counting' (saliency) that counts its calls, and a 'broken' one that always fails."
    calls = []
    @register_attribution('counting')
    def counting_fn(head, x, target):
        calls.append(x.shape[0]); return torch.autograd.grad(head(x)[torch.arange(len(x)), target].sum(), x)[0]
    @register_attribution('broken')
    def broken(head, x, target): raise RuntimeError("needs attention maps this model lacks")
    yield calls
    ATTRIBUTIONS.pop('counting', None); ATTRIBUTIONS.pop('broken', None)

def test_display_sliders_hit_the_cache_and_image_slider_computes(counting):
    app = explore(Net(), images(), methods=('counting',))
    w = app.w
    assert len(counting) == 1 and app.image_idx == 0 and w['status'].value == 'ready'
    png = w['panel'].value
    w['alpha'].value = 0.9; w['cmap'].value = 'gray'; w['threshold'].value = 0.6; w['gt'].value = False
    assert len(counting) == 1, "moving display controls recomputed a heatmap"
    assert (app.alpha, app.cmap, app.threshold, app.show_gt) == (0.9, 'gray', 0.6, False)
    assert w['panel'].value != png and w['panel'].value[:4] == b'\x89PNG'
    w['image'].value = 2
    assert app.image_idx == 2 and len(counting) == 2
    w['image'].value = 0; assert len(counting) == 2          # back to a cached image
    assert '1/4: img0' in w['name'].value

def test_the_shown_heatmap_is_the_methods_map_for_the_image_and_target():
    net = Net(); app = explore(net, images(), methods=('gradcam',))
    app.w['image'].value = 1; app.w['target'].value = 'referable'
    key = (app.model_name, 1, 'gradcam', 'referable')
    assert key in app.cache
    x = app.inputs(1)
    np.testing.assert_allclose(app.cache[key], attribute(net, x, 'gradcam', target='referable')[0].numpy(), atol=1e-5)
    app.w['target'].value = 3
    np.testing.assert_allclose(app.heatmap('gradcam'), attribute(net, x, 'gradcam', target=3)[0].numpy(), atol=1e-5)
    # inputs are the view normalised with ImageNet statistics
    v = app.items[1].image
    np.testing.assert_allclose(x[0, 0].numpy(), (v[..., 0]/255 - 0.485)/0.229, atol=1e-5)

def test_ground_truth_drawn_and_toggled():
    app = explore(Net(), images(), methods=('saliency',))
    assert app.drawn['gt'] == 1                              # one box on image 0
    with_gt = app.w['panel'].value
    app.w['gt'].value = False
    assert app.drawn['gt'] == 0 and app.w['panel'].value != with_gt
    # masks take precedence over boxes: two separate blobs are two lesions
    m = np.zeros((5, 64, 64), bool); m[1, 5:9, 5:9] = True; m[1, 30:34, 30:34] = True; m[4, 40:50, 40:50] = True
    ex = Explorer(Net(), [dict(image=np.full((64, 64, 3), 120, np.uint8), masks=m, boxes=[['EX', 1, 1, 3, 3]])], methods=('saliency',))
    ex.render()
    assert ex.drawn['gt'] == 3                               # 2 HE + 1 OD components; the box is not drawn over masks
    assert [l.type for l in ex.item.lesions()] == ['HE', 'HE']   # the optic disc is drawn but not scored

def test_a_failing_method_is_shown_in_the_panel_not_raised(counting):
    app = explore(Net(), images(), methods=('counting',))
    app.w['methods'].value = ('counting', 'broken')         # the observer must not raise
    assert 'broken' in app.errors and 'needs attention maps' in app.errors['broken']
    assert 'broken' in app.w['errors'].value and 'needs attention maps' in app.w['errors'].value
    assert app.drawn['errors'] == app.errors and app.w['status'].value == 'ready'
    assert app.w['panel'].value[:4] == b'\x89PNG'           # the panel still draws (the other method too)
    n = len(counting); app.w['alpha'].value = 0.2
    assert len(counting) == n and isinstance(app.cache[app.key('broken')], RuntimeError)   # the failure is cached too
    app.w['methods'].value = ('counting',)
    assert app.w['errors'].value == ''

def test_zoom_boxes_duck_typed_and_optional():
    app = explore(ZoomNet(), images(), methods=('saliency',))
    assert not app.w['zoom'].disabled and app.drawn['zoom'] == 3
    assert len(app.render().axes) == 3 + 3                   # image, saliency, probabilities + 3 crops
    app.w['zoom'].value = False; assert app.drawn['zoom'] == 0
    plain = explore(Net(), images(), methods=('saliency',))
    assert plain.w['zoom'].disabled and plain.drawn['zoom'] == 0
    def bad(x): raise ValueError("no attention here")
    ex = explore(Net(), images(), methods=('saliency',), zoom_fn=bad)
    assert 'zoom boxes' in ex.errors and 'no attention here' in ex.w['errors'].value

def test_orders_and_grade_filter_through_widgets():
    items = images(6)
    app = explore(Net(), items, methods=('saliency',))
    p = {i: app.probs(i) for i in range(6)}
    app.w['order'].value = 'most confident'
    assert app._order == sorted(range(6), key=lambda i: -p[i].max()) and app.image_idx == app._order[0]
    app.w['order'].value = 'most wrong'
    assert app._order == sorted(range(6), key=lambda i: -(1 - p[i][items[i]['grade']]))
    assert app.w['image'].value == 0 and app.w['image'].max == 5
    app.w['image'].value = 1; assert app.image_idx == app._order[1]
    app.w['order'].value = 'index'; app.w['grade'].value = 0    # grades are i % 5: images 0 and 5
    assert app._order == [0, 5] and app.w['image'].max == 1 and app.image_idx == 0
    app.w['image'].value = 1; assert app.image_idx == 5
    app.w['grade'].value = -1; assert app._order == list(range(6))

def test_progress_reports_each_new_heatmap(counting):
    seen = []
    app = explore(Net(), images(), methods=('counting', 'saliency'))
    prog = app.on_progress
    app.on_progress = lambda d, t, m: (seen.append((d, t, m)), prog(d, t, m))
    app.w['image'].value = 3
    assert [m for _, _, m in seen] == ['computing counting (1/2)', 'computing saliency (2/2)', 'ready']
    assert app.w['progress'].value == app.w['progress'].max
    seen.clear(); app.w['threshold'].value = 0.3
    assert [m for _, _, m in seen] == ['ready']

def test_several_models_have_their_own_heatmaps():
    a, b = Net(), Net(); torch.manual_seed(1); b.h.reset_parameters()
    app = explore(dict(a=a, b=b), images(), methods=('saliency',))
    assert app.w['model'].layout.display != 'none'
    ha = app.heatmap('saliency')
    app.w['model'].value = 'b'
    assert app.model_name == 'b' and ('b', 0, 'saliency', 'pred') in app.cache
    assert not np.allclose(ha, app.heatmap('saliency'))

def test_record_table_items_and_static_panel(tmp_path):
    from drnb.synth import synthetic_dataset
    recs = synthetic_dataset('tiny', verbose=False).iloc[:2]
    items = record_items(recs, size=64)
    assert items[0].view is None and items[0].image.shape == (64, 64, 3)
    np.testing.assert_allclose([b[1:] for b in items[0].boxes], [np.array(b[1:])/8 for b in recs.boxes.iloc[0]], atol=1e-4)
    fig = explorer_panel(Net(), recs, idx=1, methods=('saliency', 'gradcam'), size=64)
    assert isinstance(fig, Figure) and len(fig.axes) == 4

def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match='no image'): Explorer(Net(), [])
    with pytest.raises(ValueError, match=r'item 1: image of shape \(8, 8\)'): as_items([np.zeros((8, 8, 3)), np.zeros((8, 8))])
    with pytest.raises(ValueError, match='masks of shape'): as_items([dict(image=np.zeros((8, 8, 3)), masks=np.zeros((2, 8, 8)))])
    with pytest.raises(TypeError, match='expected a fastai Learner or an nn.Module'): explore('model', images())
