"drnb.interpret.evaluate on hand-built heatmaps with known answers, a toy model for deletion, the sanity check, real boxes."
import warnings
import numpy as np, pandas as pd, pytest, torch, torch.nn as nn
from sklearn.metrics import roc_auc_score, average_precision_score
from scipy.stats import spearmanr
from drnb.metrics import MetricWarning
from drnb.interpret.evaluate import *

rng = np.random.default_rng(0)

def spot(h, y, x, v=1.0):
    h = h.copy(); h[y, x] = v; return h

# --- lesions ---------------------------------------------------------------------------------------
def test_mask_lesions_components_and_types():
    m = np.zeros((4, 12, 12), bool)
    m[0, 1:3, 1:3] = True; m[0, 3, 3] = True          # MA: diagonal touch -> one lesion (8-connectivity)
    m[0, 9, 9] = True                                  # MA: second lesion
    m[2, 5:8, 0:2] = True                              # EX
    ls = mask_lesions(m)
    assert [(l.type, l.area) for l in ls] == [('MA', 5), ('MA', 1), ('EX', 6)]
    assert ls[2].bbox == (5, 0, 8, 2) and ls[2].centre == (6, 0)
    assert mask_lesions(np.zeros((12, 12), bool)) == []                                  # an image without lesions
    assert [l.type for l in mask_lesions(m[0], types=('MA',))] == ['MA', 'MA']
    with pytest.raises(ValueError, match='expected'): mask_lesions(m[:3])

def test_box_lesions_pixels_clip_and_types():
    ls = box_lesions([['HE', 2.2, 3.0, 5.0, 4.5], ['OD', 0, 0, 9, 9], ['MA', 7, 7, 7, 7], ['EX', -5, -5, 1, 1]], (10, 10))
    assert [(l.type, l.bbox) for l in ls] == [('HE', (3, 2, 5, 5)), ('MA', (7, 7, 8, 8)), ('EX', (0, 0, 1, 1))]
    assert [l.type for l in box_lesions([['OD', 0, 0, 9, 9]], (10, 10), types=None)] == ['OD']
    assert box_lesions([['HE', 20, 20, 30, 30]], (10, 10)) == []                         # wholly outside
    with pytest.raises(ValueError, match='x0 <= x1'): box_lesions([['HE', 5, 5, 1, 9]], (10, 10))
    with pytest.raises(ValueError, match='expected'): box_lesions([['HE', 5, 5, 9]], (10, 10))

def test_lesion_distance():
    l = box_lesions([['HE', 2, 2, 5, 5]], (10, 10))[0]           # pixels 2..4
    assert l.distance([3, 0, 8, 8], [3, 3, 4, 8]).tolist() == pytest.approx([0, 2, 4, np.hypot(4, 4)])
    m = np.zeros((1, 10, 10), bool); m[0, 2, 2] = m[0, 3, 3] = True
    lm = mask_lesions(m, types=('MA',))[0]
    assert lm.distance(2, 3)[0] == 1.0 and lm.distance(3, 2)[0] == 1.0 and lm.distance(2, 2)[0] == 0.0

def test_as_lesions_forms_and_errors():
    m = np.zeros((2, 4, 8, 8), bool); m[0, 1, 2, 2] = True
    assert [len(l) for l in as_lesions(m, (2, 8, 8))] == [1, 0]
    assert [len(l) for l in as_lesions(torch.tensor(m[:, 1]), (2, 8, 8))] == [1, 0]   # (N,H,W) masks
    assert [len(l) for l in as_lesions([[['EX', 0, 0, 2, 2]], []], (2, 8, 8))] == [1, 0]
    with pytest.raises(ValueError, match='for heatmaps'): as_lesions(m, (2, 9, 9))
    with pytest.raises(ValueError, match='3 ground-truth entries for 2'): as_lesions([[], [], []], (2, 8, 8))

# --- pointing game ---------------------------------------------------------------------------------
def test_pointing_game_known_answers():
    z = np.zeros((10, 10)); boxes = [['MA', 2, 2, 4, 4]]                   # pixels 2..3
    h = np.stack([spot(z, 3, 3), spot(z, 6, 3), spot(z, 9, 9), z, spot(z, 0, 0)])
    gt = [boxes, boxes, boxes, boxes, []]
    hits = pointing_game(h, gt, tolerance=0, per_image=True)
    assert hits[:4].tolist() == [1, 0, 0, 0] and np.isnan(hits[4])       # constant map misses; no lesion: nan
    assert pointing_game(h, gt, tolerance=3, per_image=True)[:2].tolist() == [1, 1]   # (6,3) is 3 px below row 3
    assert pointing_game(h, gt, tolerance=2.9, per_image=True)[1] == 0
    assert pointing_game(h, gt, tolerance=3) == pytest.approx(2/4)       # mean over the 4 images with lesions
    with pytest.warns(MetricWarning): assert np.isnan(pointing_game(h[:1], [[]]))

# --- pixel AUC / AUPR ------------------------------------------------------------------------------
def test_pixel_auc_aupr_against_sklearn():
    h = rng.random((3, 16, 16)); m = np.zeros((3, 16, 16), bool); m[0, 2:5, 2:5] = True; m[1, 10:12, 3:9] = True
    h[0][m[0]] += 0.3
    auc = pixel_auc(h, m, per_image=True); ap = pixel_aupr(h, m, per_image=True)
    for i in (0, 1):
        assert auc[i] == pytest.approx(roc_auc_score(m[i].ravel(), h[i].ravel()))
        assert ap[i] == pytest.approx(average_precision_score(m[i].ravel(), h[i].ravel()))
    assert np.isnan(auc[2]) and np.isnan(ap[2])                          # no lesion: left out
    assert pixel_auc(h, m) == pytest.approx(auc[:2].mean())
    assert pixel_auc(np.stack([m[0]*1.0]), m[:1]) == 1.0 and pixel_aupr(np.stack([m[0]*1.0]), m[:1]) == 1.0
    s = h[:2]; n = (s - s.min((1, 2), keepdims=True))/(s.max((1, 2), keepdims=True) - s.min((1, 2), keepdims=True))
    assert pixel_auc(s, m[:2], pooled=True) == pytest.approx(roc_auc_score(m[:2].ravel(), n.ravel()))

# --- peaks, FROC, hit rate -------------------------------------------------------------------------
def test_heatmap_peaks_nms():
    h = np.zeros((20, 20)); h[5, 5] = 3; h[5, 7] = 2; h[15, 15] = 1; h[2, 18] = 2.5
    assert heatmap_peaks(h, radius=3).tolist() == [[5, 5, 3], [2, 18, 2.5], [15, 15, 1]]
    assert heatmap_peaks(h, radius=2)[:, :2].tolist() == [[5, 5], [2, 18], [15, 15]]   # |dx| = 2 is within radius 2
    assert heatmap_peaks(h, k=2, radius=1)[:, :2].tolist() == [[5, 5], [2, 18]]
    assert len(heatmap_peaks(np.full((8, 8), 0.3))) == 0
    plateau = np.zeros((10, 10)); plateau[3:6, 3:6] = 1
    assert len(heatmap_peaks(plateau, radius=2)) == 1                   # a flat top is one peak

def test_froc_hand_built():
    h = np.zeros((2, 20, 20)); h[0, 3, 3] = .9; h[0, 10, 3] = .8; h[0, 13, 13] = .5; h[1, 5, 5] = .7
    bx = [[['HE', 2, 2, 5, 5], ['HE', 12, 12, 15, 15]], []]
    c = froc_curve(h, bx, radius=2)
    assert c.values.tolist() == [[.9, 0, .5], [.8, .5, .5], [.7, 1, .5], [.5, 1, 1]]
    assert froc_score(c) == pytest.approx((3*.5 + 4*1)/7)
    assert froc_score(c, fps=(0.5,)) == 0.5 and froc_score(c, fps=(1,)) == 1.0
    assert froc_score(pd.DataFrame(dict(threshold=[1.], fp_per_image=[2.], sensitivity=[1.])), fps=(1,)) == 0.0
    cands, n = lesion_candidates(h, bx, radius=2)
    assert n.tolist() == [2, 0] and cands['hits'].tolist() == [(0,), (), (1,), ()]
    with pytest.raises(ValueError, match='no lesion'): froc_curve(h, [[], []])

def test_froc_tolerance_and_duplicates():
    h = np.zeros((1, 20, 20)); h[0, 13, 16] = .95; h[0, 3, 3] = .9; h[0, 4, 4] = .85
    bx = [[['HE', 2, 2, 5, 5], ['HE', 12, 12, 15, 15]]]
    assert froc_curve(h, bx, radius=0).values.tolist() == [[.95, 1, 0], [.9, 1, .5], [.85, 1, .5]]
    assert froc_curve(h, bx, radius=0, tolerance=2).values.tolist() == [[.95, 0, .5], [.9, 0, 1], [.85, 0, 1]]

def test_hit_rate():
    h = np.zeros((2, 20, 20)); h[0, 3, 3] = .9; h[0, 10, 3] = .8; h[0, 13, 13] = .5; h[1, 5, 5] = .7
    bx = [[['HE', 2, 2, 5, 5], ['HE', 12, 12, 15, 15]], []]
    assert [hit_rate(h, bx, k=k, radius=2) for k in (1, 2, 3)] == [.5, .5, 1.]
    with pytest.warns(MetricWarning): assert np.isnan(hit_rate(h, [[], []]))

# --- top-k boxes and coverage ----------------------------------------------------------------------
def test_top_boxes_inside_image():
    h = np.zeros((30, 30)); h[1, 1] = 3; h[28, 15] = 2; h[15, 15] = 1
    assert top_boxes(h, 3, 10).tolist() == [[0, 0, 10, 10], [10, 20, 20, 30], [10, 10, 20, 20]]
    assert top_boxes(np.zeros((30, 30)), 3, 10).shape == (0, 4)

def test_box_coverage_centre_and_fraction():
    h = np.zeros((1, 40, 40)); h[0, 5, 5] = 2; h[0, 30, 30] = 1
    bx = [[['EX', 4, 4, 8, 8], ['EX', 30, 30, 38, 32]]]                 # B's centre (30, 34) is outside box 2
    cov = box_coverage(h, bx, ks=(1, 2, 3), box_size=8)
    assert cov['coverage'].tolist() == [.5, .5, .5] and cov['lesions'].tolist() == [2, 2, 2]
    assert box_coverage(h, bx, ks=(1, 2), box_size=8, min_fraction=0.5)['coverage'].tolist() == [.5, 1.]
    assert box_coverage(h, bx, ks=(2,), box_size=10)['coverage'].tolist() == [1.]   # a bigger box reaches B's centre
    assert box_coverage(np.r_[h, h], bx + [[]], ks=(1,), box_size=8)['coverage'].tolist() == [.5]   # no-lesion image adds nothing
    with pytest.warns(MetricWarning): box_coverage(h, [[]], ks=(1,))

# --- deletion / insertion --------------------------------------------------------------------------
class RegionMean(nn.Module):
    def __init__(self, region): super().__init__(); self.register_buffer('region', region.float())
    def forward(self, x): return (x[:, 0]*self.region).sum((1, 2))[:, None]/self.region.sum()

def test_deletion_insertion_known_auc():
    region = torch.zeros(16, 16); region[4:12, 4:12] = 1                   # a quarter of the image
    model, x = RegionMean(region), torch.ones(3, 3, 16, 16)
    perfect = region.expand(3, -1, -1) + 1e-3*torch.rand(3, 16, 16)
    d = deletion_curve(model, x, perfect, baseline='zero', steps=8)
    assert d.shape == (3, 9) and d[0].tolist() == pytest.approx([1, .5, 0, 0, 0, 0, 0, 0, 0])
    assert curve_auc(d) == pytest.approx([1/8]*3)
    assert curve_auc(deletion_curve(model, x, perfect, mode='insertion', baseline='zero', steps=8)) == pytest.approx([7/8]*3)
    assert curve_auc(deletion_curve(model, x, 1 - perfect, baseline='zero', steps=8)) == pytest.approx([7/8]*3)
    for bs in (1, 4, 100):
        assert deletion_curve(model, x, perfect, baseline='zero', steps=8, bs=bs) == pytest.approx(d)
    assert deletion_curve(model, x, perfect, baseline='mean', steps=2)[0].tolist() == pytest.approx([1, 1, 1])  # mean of ones
    with pytest.raises(ValueError, match='mode'): deletion_curve(model, x, perfect, mode='erase')
    with pytest.raises(ValueError, match='heatmaps of shape'): deletion_curve(model, x, perfect[:2])
    with pytest.raises(ValueError, match='baseline'): deletion_curve(model, x, perfect, baseline='noise')

def test_deletion_classification_target_and_mode_restored():
    region = torch.zeros(8, 8); region[:4] = 1
    class Clf(RegionMean):
        def forward(self, x): z = 6*super().forward(x) - 3; return torch.cat([-z, z], 1)
    model, x = Clf(region).train(), torch.ones(2, 3, 8, 8)
    h = region.expand(2, -1, -1) + 1e-3*torch.rand(2, 8, 8)
    d1 = deletion_curve(model, x, h, target=1, baseline='zero', steps=4)
    assert d1[0, 0] == pytest.approx(torch.sigmoid(torch.tensor(6.)).item())
    assert d1[0, -1] == pytest.approx(torch.sigmoid(torch.tensor(-6.)).item())
    assert deletion_curve(model, x, h, baseline='zero', steps=4) == pytest.approx(d1)   # default: predicted class (1)
    d0 = deletion_curve(model, x, h, target=[0, 0], baseline='zero', steps=4)
    assert d0 == pytest.approx(1 - d1, abs=1e-6)
    assert deletion_curve(model, x, h, target=lambda o: o[:, 1], baseline='zero', steps=4)[0, [0, 2]].tolist() == pytest.approx([3, -3])
    assert model.training                                                  # left as it was

def test_perturbation_baseline_blur_keeps_constant_image():
    x = torch.full((1, 3, 20, 20), 0.7)
    assert torch.allclose(perturbation_baseline(x, 'blur', sigma=3), x)
    y = torch.zeros(1, 1, 21, 21); y[..., 10, 10] = 1
    b = perturbation_baseline(y, 'blur', sigma=2)
    assert b.max() < 0.1 and b.sum().item() == pytest.approx(1, abs=1e-3)
    from torchvision.transforms.functional import gaussian_blur
    z = torch.rand(2, 3, 40, 40)                                          # same as torchvision's (non-separable) blur
    assert torch.allclose(perturbation_baseline(z, 'blur', sigma=4), gaussian_blur(z, [25, 25], [4., 4.]), atol=1e-5)

# --- sanity check ----------------------------------------------------------------------------------
def test_rank_correlation_identical_random_and_scipy():
    a = rng.random((4, 24, 24))
    assert rank_correlation(a, a) == pytest.approx([1]*4)
    assert rank_correlation(a, a**3) == pytest.approx([1]*4)
    assert np.abs(rank_correlation(a, rng.random((4, 24, 24)))).max() < 0.15
    b = a + rng.normal(0, .5, a.shape)
    assert rank_correlation(a, b) == pytest.approx([spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b)])
    assert rank_correlation(-a, a, absolute=True) == pytest.approx([1]*4)
    assert np.isnan(rank_correlation(np.zeros((1, 4, 4)), a[:1, :4, :4])[0])
    assert heatmap_ssim(a, a) == pytest.approx([1]*4) and heatmap_ssim(a, rng.random(a.shape)).max() < 0.15

def _small_cnn():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)).eval()

def _saliency(model, images):
    x = images.clone().requires_grad_(True)
    model(x)[:, 1].sum().backward()
    return x.grad.abs().sum(1)

def test_randomise_model_copies_and_is_seeded():
    m = _small_cnn(); w = m[0].weight.detach().clone()
    r = randomise_model(m, ['0'], seed=3)
    assert torch.equal(m[0].weight, w) and not torch.equal(r[0].weight, w)       # the original is untouched
    assert torch.equal(r[2].weight, m[2].weight)                                 # other layers kept
    assert torch.equal(randomise_model(m, ['0'], seed=3)[0].weight, r[0].weight) # reproducible
    with pytest.raises(ValueError, match="no layer named 'conv9'"): randomise_model(m, ['conv9'])

def test_sanity_check_model_dependent_vs_model_independent():
    m, x = _small_cnn(), torch.rand(2, 3, 16, 16)
    sc = sanity_check(_saliency, m, x, mode='cascade')
    assert sc['randomised'].tolist() == ['6', '2', '0'] and sc['n_layers'].tolist() == [1, 2, 3]
    assert sc['spearman_abs'].iloc[-1] < 0.5                                  # saliency depends on the weights
    same = sanity_check(lambda model, images: _saliency(m, images), m, x, mode='full')   # ignores the model it is given
    assert same['spearman'].tolist() == pytest.approx([1.0]) and same['ssim'].tolist() == pytest.approx([1.0])
    with pytest.raises(ValueError, match='mode'): sanity_check(_saliency, m, x, mode='half')

# --- summary, figures, real boxes ------------------------------------------------------------------
def test_evaluate_heatmaps_summary():
    yy, xx = np.mgrid[:48, :48]
    m = np.zeros((1, 48, 48), bool); m[0, 10:14, 10:14] = True; m[0, 30:33, 35:38] = True
    good = np.exp(-((yy-11.5)**2 + (xx-11.5)**2)/8) + np.exp(-((yy-31)**2 + (xx-36)**2)/8)
    r = evaluate_heatmaps(good[None], m, box_size=8)
    assert r['pointing_game'] == 1 and r['hit_rate@4'] == 1 and r['coverage@4'] == 1 and r['froc_score'] == 1
    assert r['pixel_auc'] > 0.99
    with pytest.raises(ValueError, match='no lesion'): evaluate_heatmaps(good[None], np.zeros((1, 48, 48), bool))

def test_evaluate_heatmaps_reports_both_floors_and_a_random_heatmap_in_the_eye_scores_half():
    "A black frame holds no lesion: counted as background it lifts a random heatmap's pixel AUC; inside the eye it is 0.5."
    g = np.random.default_rng(1)
    yy, xx = np.mgrid[:96, :96]
    eye = np.broadcast_to((yy - 47.5)**2 + (xx - 47.5)**2 <= 40**2, (6, 96, 96)).copy()   # frame: 45% of the view
    m = np.zeros((6, 96, 96), bool)
    for i in range(6):
        for _ in range(4):
            cy, cx = g.integers(25, 70, 2); m[i, cy:cy+4, cx:cx+4] = True
    assert not (m & ~eye).any()
    rnd = random_heatmaps(eye, seed=3)
    assert pixel_auc(rnd, m) > 0.65                                                  # the old metric: the frame inflates it
    assert pixel_auc(rnd, m, eye=eye) == pytest.approx(0.5, abs=0.02)
    views = np.where(eye, 0.5, 0.)[:, None].repeat(3, 1)
    good = m.astype(float) + 0.01*rnd
    r = evaluate_heatmaps(good, m, eye=views)
    for k in ('pointing_game', 'pixel_auc', 'pixel_aupr', 'hit_rate@4', 'coverage@4', 'froc_score'):
        assert {k, f'{k}_random', f'{k}_centre'} <= set(r), k
    assert r['pixel_auc_random'] == pytest.approx(0.5, abs=0.02) and r['pixel_auc'] > 0.99
    assert r['pixel_auc_centre'] > r['pixel_auc_random']                               # the lesions sit near the middle
    assert (eye_masks(views) == eye).all()

def test_tolerances_scale_with_the_view():
    "The same miss, 6 px at 96 px, 12 px at 192 px: the default tolerance (15/224 of the side) treats both alike."
    for side, off in ((96, 6), (192, 12)):
        h = np.zeros((1, side, side)); m = np.zeros((1, side, side), bool)
        m[0, side//2, side//2] = True; h[0, side//2 + off, side//2] = 1
        assert pointing_game(h, m) == 1 and pointing_game(h, m, tolerance=off - 1) == 0
        assert view_pixels('tolerance', h.shape) == pytest.approx(side*15/224)

def test_figures_return_axes():
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    h = np.zeros((1, 20, 20)); h[0, 3, 3] = 1; bx = [[['HE', 2, 2, 5, 5]]]
    ax = show_heatmap(rng.random((20, 20, 3)), h[0], as_lesions(bx, h.shape)[0], top_boxes(h[0], 2, 4))
    assert len(ax.patches) == 1 and ax.get_legend() is not None
    ax = show_heatmap(torch.rand(3, 20, 20), h[0])                       # channels-first image, no ground truth
    assert ax.get_legend() is None
    ax = plot_froc({'a': froc_curve(h, bx)}); assert 'FROC score' in ax.get_legend().get_texts()[0].get_text()
    ax = plot_curves({'a': np.array([[1, .5, 0]])}); assert 'AUC 0.500' in ax.get_legend().get_texts()[0].get_text()
    plt.close('all')

def test_real_idrid_boxes_pointing_and_coverage(idrid_boxes):
    "Clinician boxes from idrid_boxes (YOLO, relative) as ground truth: a heatmap peaking on each box is scored perfect."
    classes = (idrid_boxes/'classes.txt').read_text().split()
    code = {'optic_disc': 'OD', 'hard_exudates': 'EX', 'haemorrhage': 'HE'}
    W, H = 256, 170                                                       # a 1024x680 photograph at 1/4 size
    gts = []
    for f in sorted((idrid_boxes/'images').glob('*.txt')):
        rows = [l.split() for l in f.read_text().splitlines() if l.strip()]
        bx = [[code[classes[int(c)]], (float(cx) - float(w)/2)*W, (float(cy) - float(h)/2)*H, (float(cx) + float(w)/2)*W, (float(cy) + float(h)/2)*H]
              for c, cx, cy, w, h in rows]
        if any(b[0] != 'OD' for b in bx): gts.append(bx)
        if len(gts) == 8: break
    assert len(gts) == 8
    heat = np.zeros((8, H, W))
    for i, bx in enumerate(gts):
        for l in as_lesions([bx], (1, H, W))[0]: heat[i][l.centre] = 1 + rng.random()
    assert pointing_game(heat, gts, tolerance=0) == 1.0
    n = sum(len(l) for l in as_lesions(gts, heat.shape))
    cov = box_coverage(heat, gts, ks=(n,), box_size=4, radius=0)
    assert cov['coverage'][0] == 1.0                                      # every lesion's centre is one of the peaks
    assert all(l.type != 'OD' for ls in as_lesions(gts, heat.shape) for l in ls)

def test_randomise_model_resets_every_layer_of_a_block():
    "A container name (a block with no parameters of its own) re-initialises each layer inside it, and nothing outside."
    torch.manual_seed(0)
    m = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.Linear(2, 2))), nn.Linear(4, 2))
    with torch.no_grad():
        for p in m.parameters(): p.fill_(0.5)
    r = randomise_model(m, ['0'], seed=1)
    for (n, p), (_, q) in zip(m.named_parameters(), r.named_parameters()):
        if n.startswith('0.'): assert not torch.equal(p, q), f"{n} kept its weights"
        else: assert torch.equal(p, q), f"{n} changed"
