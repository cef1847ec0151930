"drnb.metrics against scikit-learn and hand counts, with the edge cases: one class, empty masks, missing grades."
import warnings
import numpy as np, pandas as pd, pytest, torch
import torch.nn.functional as F
from sklearn.metrics import cohen_kappa_score, roc_auc_score, average_precision_score
from drnb.metrics import *

rng = np.random.default_rng(0)

def nan_with_warning(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        v = fn(*args, **kwargs)
    assert np.isnan(v), v
    assert any(issubclass(x.category, MetricWarning) for x in w), [str(x.message) for x in w]

# --- kappa -----------------------------------------------------------------------------------------
@pytest.mark.parametrize('seed', range(5))
def test_kappa_matches_sklearn(seed):
    r = np.random.default_rng(seed)
    y = r.integers(0, 5, 100); p = np.clip(y + r.integers(-2, 3, 100), 0, 4)
    assert quadratic_kappa(y, p) == pytest.approx(cohen_kappa_score(y, p, weights='quadratic', labels=range(5)))

def test_kappa_hand_computed():
    # O = [[1,1],[0,2]], E = [[.5,1.5],[.5,1.5]], off-diagonal weights 1: kappa = 1 - 1/2
    assert quadratic_kappa([0, 0, 1, 1], [0, 1, 1, 1], n_classes=2) == pytest.approx(0.5)
    # three grades: truth [0,1,2], prediction [0,2,2]: W = [[0,.25,1],[.25,0,.25],[1,.25,0]]
    # sum W*O = .25 ; E = outer([1,1,1],[1,0,2])/3 -> sum W*E = (2 + .75 + 1)/3 over rows 0, 1, 2
    assert quadratic_kappa([0, 1, 2], [0, 2, 2], n_classes=3) == pytest.approx(1 - 0.25/(3.75/3))

def test_kappa_edge_cases():
    assert quadratic_kappa([3, 1, 0], [3, 1, 0]) == 1.0
    assert quadratic_kappa([2, 2, 2], [0, 3, 4]) == pytest.approx(0.0)     # one true grade only: chance
    nan_with_warning(quadratic_kappa, [2, 2], [2, 2])                      # one grade each: undefined
    nan_with_warning(quadratic_kappa, [np.nan, -1], [1, 2])                # every grade missing
    y = pd.Series([0, pd.NA, 2, 4], dtype='Int64')
    assert quadratic_kappa(y, [0, 4, 2, 4]) == 1.0                         # the missing one is left out
    with pytest.raises(ValueError, match='outside 0..4'): quadratic_kappa([0, 1], [0, 7])
    with pytest.raises(ValueError, match='must match'): quadratic_kappa([0, 1, 2], [0, 1])

def test_confusion_matrix_counts():
    C = confusion_matrix([0, 0, 4, 2, -1], [0, 1, 4, 3, 0])
    assert C.sum() == 4 and C[0, 0] == 1 and C[0, 1] == 1 and C[4, 4] == 1 and C[2, 3] == 1

# --- regression thresholds -------------------------------------------------------------------------
def test_grades_from_regression():
    assert grades_from_regression([-3, 0.5, 1.49, 1.5, 3.5, 10]).tolist() == [0, 1, 1, 2, 4, 4]
    assert grades_from_regression(torch.tensor([[0.4], [2.6]])).tolist() == [0, 3]
    with pytest.raises(ValueError, match='increase'): grades_from_regression([1.], (2., 1.))

@pytest.mark.parametrize('method', ['coordinate', 'nelder-mead'])
def test_optimise_thresholds_improves_kappa(method):
    g = rng.choice(5, 600, p=[.5, .15, .2, .1, .05]); out = 0.6*g + 0.3 + rng.normal(0, 0.2, 600)
    t = optimise_thresholds(out, g, method=method)
    assert np.all(np.diff(t) > 0)
    k0 = quadratic_kappa(g, grades_from_regression(out)); k1 = quadratic_kappa(g, grades_from_regression(out, t))
    assert k1 > k0 + 0.05

def test_optimise_thresholds_separable_reaches_one():
    g = np.repeat(np.arange(5), 20); out = g*10.0 + rng.random(100)    # perfectly separable, far from the defaults
    assert quadratic_kappa(g, grades_from_regression(out, optimise_thresholds(out, g))) == 1.0

def test_optimise_thresholds_bad_input():
    with pytest.raises(ValueError, match='no validation image'): optimise_thresholds([1., 2.], [-1, np.nan])
    with pytest.raises(ValueError, match='unknown method'): optimise_thresholds([1., 2.], [1, 2], method='magic')

# --- AUC and operating points ----------------------------------------------------------------------
def test_roc_auc_hand_and_sklearn():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([1, 0], [0.3, 0.3]) == 0.5
    y, s = rng.integers(0, 2, 400), rng.normal(size=400).round(1)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))

def test_auc_one_class_is_nan():
    nan_with_warning(roc_auc, [1, 1, 1], [0.2, 0.5, 0.9])
    nan_with_warning(referable_auc, [0, 1, 0], np.eye(5)[[0, 1, 0]])
    nan_with_warning(abnormal_auc, [3, 4, 2], [1., 3., 2.])

def test_referable_abnormal_auc_from_probabilities_and_regression():
    p = rng.dirichlet(np.ones(5), 250); g = rng.integers(0, 5, 250)
    assert referable_auc(g, p) == pytest.approx(roc_auc_score(g >= 2, p[:, 2:].sum(1)))
    assert abnormal_auc(g, p) == pytest.approx(roc_auc_score(g >= 1, p[:, 1:].sum(1)))
    reg = g + rng.normal(0, 1, 250)
    assert referable_auc(g, reg) == pytest.approx(roc_auc_score(g >= 2, reg))
    assert referable_auc(g, reg[:, None]) == pytest.approx(roc_auc_score(g >= 2, reg))
    assert referable_auc(np.r_[g, np.nan], np.r_[reg, 100.]) == pytest.approx(referable_auc(g, reg))
    with pytest.raises(ValueError, match='softmax'): referable_auc(g, p*3)

def test_operating_point():
    y, s = [0, 0, 1, 1, 1], [0.1, 0.6, 0.4, 0.7, 0.9]
    op = operating_point(y, s, threshold=0.5)
    assert (op['tp'], op['fp'], op['tn'], op['fn']) == (2, 1, 1, 1)
    assert op['sensitivity'] == pytest.approx(2/3) and op['specificity'] == 0.5
    op = operating_point(y, s, sensitivity=0.9)
    assert op['threshold'] == 0.4 and op['sensitivity'] == 1.0
    big_y, big_s = rng.integers(0, 2, 1000), rng.random(1000)
    for target in (0.5, 0.8, 0.95):
        op = operating_point(big_y, big_s, sensitivity=target)
        assert op['sensitivity'] >= target
        # the highest such threshold: a hair higher loses the target
        assert operating_point(big_y, big_s, threshold=op['threshold'] + 1e-12)['sensitivity'] < target
    with pytest.raises(ValueError, match='exactly one'): operating_point(y, s)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', MetricWarning)
        assert np.isnan(operating_point([0, 0], [0.1, 0.2], threshold=0.15)['sensitivity'])

# --- lesion AUPR / Dice ----------------------------------------------------------------------------
def test_average_precision_hand_and_sklearn():
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]) == pytest.approx(5/6)
    for _ in range(3):
        y, s = rng.random(300) < 0.2, rng.random(300).round(2)
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    nan_with_warning(average_precision, np.zeros(5), rng.random(5))

def test_dice_empty_masks():
    assert dice_score(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0           # nothing to find, nothing found
    assert dice_score(np.eye(4), np.zeros((4, 4))) == 0.0
    assert dice_score(np.zeros((4, 4)), np.eye(4)) == 0.0
    assert dice_score([[1, 1], [0, 0]], [[1, 0], [1, 0]]) == 0.5
    with pytest.raises(ValueError, match='shape'): dice_score(np.zeros(3), np.zeros(4))

def test_lesion_aupr_dice_per_type():
    m = np.zeros((3, 4, 6, 6), bool); m[0, 0, 1:3, 1:3] = True; m[1, 2, 4, 4] = True   # MA in image 0, EX in image 1, image 2 none
    p = np.where(m, 0.8, 0.2); p[2, 0, 0, 0] = 0.9                                     # one MA false alarm in image 2
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always'); ap = lesion_aupr(p, m)
    assert ap['MA'] == pytest.approx(average_precision_score(m[:, 0].ravel(), p[:, 0].ravel()))
    assert ap['EX'] == 1.0 and np.isnan(ap['HE']) and np.isnan(ap['SE'])
    d = lesion_dice(p, m)
    assert d['MA'] == pytest.approx(2*4/(5 + 4)) and d['EX'] == 1.0 and d['HE'] == 1.0
    dpi = lesion_dice(p, m, per_image=True)
    assert dpi['MA'] == pytest.approx((1 + 1 + 0)/3)                                   # image 1 empty-empty counts 1
    with pytest.raises(ValueError, match='N,T,H,W'): lesion_aupr(p[0], m[0])

# --- summary and fastai wrappers -------------------------------------------------------------------
def test_grading_metrics():
    g = np.array([0, 0, 1, 2, 3, 4, 2]); out = np.array([0.1, 0.7, 1.2, 2.2, 2.9, 4.2, 1.4])
    m = grading_metrics(g, out)
    assert m['n'] == 7 and m['accuracy'] == pytest.approx(5/7)
    assert m['kappa'] == pytest.approx(quadratic_kappa(g, grades_from_regression(out)))
    assert m['referable_auc'] == pytest.approx(roc_auc_score(g >= 2, out))
    with pytest.warns(MetricWarning, match='one class only'):
        m = grading_metrics([0, 1, 1], np.eye(5)[[0, 1, 1]]*0.9 + 0.02)   # no referable image: nan, not a crash
    assert np.isnan(m['referable_auc']) and np.isnan(m['referable_sensitivity'])

def _feed(metric, preds, targs, bs):
    metric.reset()
    for i in range(0, len(preds), bs): metric.accum_values(preds[i:i+bs], targs[i:i+bs])
    return metric.value

def test_fastai_wrappers_classification_and_regression():
    g = torch.tensor(rng.integers(0, 5, 200)); logits = torch.randn(200, 5) + 2*F.one_hot(g, 5)
    assert _feed(KappaScore(), logits, g, 32) == pytest.approx(quadratic_kappa(g, logits.argmax(1)))
    pr = F.softmax(logits, 1)
    assert _feed(ReferableAUC(), logits, g, 32) == pytest.approx(roc_auc_score(g >= 2, pr[:, 2:].sum(1)), abs=1e-6)
    assert _feed(AbnormalAUC(), logits, g, 32) == pytest.approx(roc_auc_score(g >= 1, pr[:, 1:].sum(1)), abs=1e-6)
    reg = (g.float() + torch.randn(200)*0.5)[:, None]
    assert _feed(KappaScore(thresholds=(0.4, 1.6, 2.5, 3.3)), reg, g.float()[:, None], 32) == \
        pytest.approx(quadratic_kappa(g, grades_from_regression(reg, (0.4, 1.6, 2.5, 3.3))))
    assert _feed(ReferableAUC(), reg, g.float()[:, None], 32) == pytest.approx(roc_auc_score(g >= 2, reg[:, 0]))
    gm = torch.cat([g, torch.tensor([-1])]); lm = torch.cat([logits, torch.zeros(1, 5)])   # a missing grade is left out
    assert _feed(KappaScore(), lm, gm, 32) == pytest.approx(quadratic_kappa(g, logits.argmax(1)))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', MetricWarning)
        assert np.isnan(_feed(ReferableAUC(), logits[:4], torch.zeros(4, dtype=torch.long), 2))

def test_fastai_lesion_wrappers():
    lg, m = torch.randn(5, 4, 12, 12), torch.rand(5, 4, 12, 12) < 0.1
    for t in ('MA', 'SE'):
        i = ('MA', 'HE', 'EX', 'SE').index(t)
        assert _feed(LesionAUPR(t), lg, m, 2) == pytest.approx(average_precision_score(m[:, i].ravel(), torch.sigmoid(lg[:, i]).ravel()))
        assert _feed(LesionDice(t), lg, m, 2) == pytest.approx(dice_score(lg[:, i] >= 0, m[:, i]))

def test_fastai_fit_classification_head():
    from fastai.learner import Learner
    from fastai.data.core import DataLoaders
    from fastai.losses import CrossEntropyLossFlat
    from torch.utils.data import TensorDataset
    torch.manual_seed(0)
    g = torch.tensor(rng.integers(0, 5, 240)); x = F.one_hot(g, 5).float() + 0.3*torch.randn(240, 5)
    dls = DataLoaders.from_dsets(TensorDataset(x[:160], g[:160]), TensorDataset(x[160:], g[160:]), bs=32)
    learn = Learner(dls, torch.nn.Linear(5, 5), loss_func=CrossEntropyLossFlat(),
                    metrics=[KappaScore(), ReferableAUC(), AbnormalAUC()])
    with learn.no_logging(): learn.fit(4, 0.1)
    kappa, ref, ab = learn.recorder.values[-1][2:5]
    assert kappa > 0.7 and ref > 0.9 and ab > 0.9

def test_figures_return_axes():
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    g = rng.integers(0, 5, 100)
    ax = plot_confusion(g, np.clip(g + rng.integers(-1, 2, 100), 0, 4))
    assert len(ax.texts) == 25 and 'kappa' in ax.get_title()
    s = g + rng.normal(0, 1, 100)
    ax = plot_roc(g >= 2, s, operating_points=operating_point(g >= 2, s, sensitivity=0.9))
    assert 'AUC' in ax.get_legend().get_texts()[0].get_text() and len(ax.lines) == 3
    plt.close('all')
