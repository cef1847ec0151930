"CLPI (issue 6, acceptance 1): shapes, hand-computed patch labels, gradient coupling, semi-supervised patch loss, restore after cancel, save/load."
import numpy as np, pytest, torch, torch.nn.functional as F
from fastai.callback.core import Callback, CancelFitException
from drnb.core import LESION_TYPES
from drnb.data.block import patch_labels as patch_grid, box_fraction as box_cover
from drnb.models.clpi import (clpi_tensors, LesionNet, ClpiModel, lesion_attention, patch_loss,
                              NegativeLearningLoss, ClpiCallback, LesionPretrain, clpi_learner, fit_clpi, tensor_dls,
                              unlabel_patches, grade_probs, patch_probs, patch_auc, clpi_data, NLNLLoss, NlnlSchedule,
                              nlnl_phase, selective_mask, known_patches, grade_loss)

torch.set_num_threads(1)

def _data(n=6, size=64, grid=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 5
    p = torch.randint(0, 5, (n, grid, grid), generator=g)
    return x, y, p

def _learn(grids=True, **kw):
    x, y, p = _data()
    dls = tensor_dls(x, y, p if grids else None, valid_idx=[4, 5], bs=2, device='cpu', seed=0)
    return clpi_learner(dls, 'resnet18', **kw)

# --- shapes -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('size,grid,grade_size', [(64, 16, None), (128, 16, 64), (256, 16, None)])
def test_shapes(size, grid, grade_size):
    m = ClpiModel('resnet18', size, grade_size, grid)
    x = torch.randn(2, 3, size, size)
    z, q = m(x)
    assert z.shape == (2, 5) and q.shape == (2, len(LESION_TYPES) + 1, grid, grid)
    assert m.lesion_probs(x).sum(1).allclose(torch.ones(2, grid, grid))
    assert m.grader.in_chans == 3*(len(LESION_TYPES) + 1)
    h = (grade_size or size) // 32
    assert m.cam(x).shape == (2, 5, h, h) and m.fused(x).shape[-1] == h

def test_paper_lesion_net():
    "drnb's layout at the paper's size: 1024 px -> 16x16 with nine conv-BN-Mish blocks, six of them 2x2 stride 2."
    ln = LesionNet(1024, 16, 4)
    assert sum(isinstance(m, torch.nn.Mish) for m in ln.modules()) == 9
    assert sum(isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2) for m in ln.modules()) == 6
    with torch.no_grad(): assert ln(torch.zeros(1, 3, 1024, 1024)).shape == (1, 4, 16, 16)

def test_other_backbones():
    m = ClpiModel('tf_efficientnet_lite0', 64, lesion_arch='resnet18')
    z, q = m(torch.randn(1, 3, 64, 64))
    assert z.shape == (1, 5) and q.shape == (1, 5, 16, 16)

def test_attention_values():
    x = torch.full((1, 3, 4, 4), 2.)
    p = torch.zeros(1, 2, 2, 2); p[0, 0] = 1; p[0, :, 0, 1] = torch.tensor([0.25, 0.75])
    a = lesion_attention(x, p)
    assert a.shape == (1, 6, 4, 4)
    assert torch.equal(a[0, 3, :2, 2:], torch.full((2, 2), 3.5))     # 2 * (1 + 0.75)
    assert torch.equal(a[0, 0, :2, 2:], torch.full((2, 2), 2.5))     # 2 * (1 + 0.25)
    assert torch.equal(a[0, 3, 2:, :], torch.full((2, 4), 2.))

# --- patch labels -------------------------------------------------------------------------------------------------
def test_patch_labels_from_mask_hand_computed():
    ma = np.zeros((64, 64), bool); ex = np.zeros((64, 64), bool)
    ma[2, 3] = True                        # one pixel in cell (0,0)
    ex[0:16, 16:20] = True                 # a quarter of cell (0,1)
    ex[20:22, 16:18] = True; ma[20:24, 16:20] = True   # cell (1,1): MA covers 16 px, EX 4 px -> MA wins
    want = np.array([[1, 3, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert np.array_equal(patch_grid({'MA': ma, 'EX': ex}, 4), want)
    want_thr = want.copy(); want_thr[0, 0] = 0; want_thr[1, 1] = 0    # with thr=0.2: only the quarter-covered cell stays
    assert np.array_equal(patch_grid({'MA': ma, 'EX': ex}, 4, thr=0.2), want_thr)

def test_patch_labels_from_boxes_hand_computed():
    boxes = [['HE', 4, 4, 12, 12], ['EX', 16, 40, 48, 48], ['OD', 0, 0, 64, 64]]   # OD is no lesion type: ignored
    want = np.zeros((4, 4), int); want[0, 0] = 2; want[2, 1:3] = 3
    assert np.array_equal(patch_grid(boxes, 4, size=(64, 64)), want)
    # fractional box edges: a box covering half a pixel column
    assert np.allclose(box_cover([['MA', 1.5, 0, 3, 1]], (1, 4), ('MA',))[0], [[0, 0.5, 1, 0]])
    # overlap threshold: the EX box covers half of cells (2,1) and (2,2) -> labelled at thr 0.4, not at 0.6
    assert patch_grid(boxes, 4, thr=0.4, size=(64, 64))[2, 1] == 3 and patch_grid(boxes, 4, thr=0.6, size=(64, 64))[2, 1] == 0

def test_clpi_tensors_go_through_the_data_path(tmp_path):
    "Padded to a square as the DataLoaders do, patch labels from boxes or masks on that square; a bad mask is an error naming it."
    import cv2
    cv2.imwrite(str(tmp_path/'a.png'), np.zeros((32, 64, 3), np.uint8))
    r = dict(image=str(tmp_path/'a.png'), source='t', split='train', patient=None, eye=None, grade=2, masks={}, boxes=[['EX', 0, 0, 16, 16]])
    x, g, p = clpi_tensors([r], 64, 4)   # padded to 64x64: the image occupies rows 16..47, so the box lands in cell (1,0)
    want = np.zeros((4, 4), int); want[1, 0] = 3
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.uint8 and g.tolist() == [2] and np.array_equal(p[0].numpy(), want)
    m = np.zeros((32, 64), np.uint8); m[31, 63] = 255; cv2.imwrite(str(tmp_path/'m.png'), m)
    assert clpi_tensors([dict(r, masks={'HE': str(tmp_path/'m.png')})], 64, 4)[2][0, 2, 3] == 2
    cv2.imwrite(str(tmp_path/'bad.png'), np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match='bad.png'): clpi_tensors([dict(r, masks={'HE': str(tmp_path/'bad.png')})], 64, 4)

def test_clpi_patch_labels_are_the_data_paths():
    "One rule for patch labels: CLPI's record grids use drnb.data.block's `patch_labels`, which the fastai PatchBlock uses too."
    from drnb.data import block
    from drnb.models import clpi
    assert clpi.patch_labels is block.patch_labels and clpi.record_tensors is block.record_tensors
    assert not any(hasattr(clpi, f) for f in ('patch_grid', 'box_cover', 'record_grid'))

def _grade_grads(detach):
    torch.manual_seed(0)
    m = ClpiModel('resnet18', 64, detach=detach)
    z, _ = m(torch.randn(2, 3, 64, 64))
    F.cross_entropy(z, torch.tensor([0, 3])).backward()
    return m

def test_grade_loss_reaches_lesion_net_when_coupled():
    m = _grade_grads(detach=False)
    grads = [p.grad for p in m.lesion_net.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0

def test_grade_loss_stops_at_lesion_maps_when_detached():
    m = _grade_grads(detach=True)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.lesion_net.parameters())
    assert sum(p.grad.abs().sum() for p in m.grader.parameters()) > 0

def test_patch_loss_reaches_lesion_net_only():
    m = ClpiModel('resnet18', 64)
    _, q = m(torch.randn(2, 3, 64, 64))
    patch_loss(q, torch.randint(0, 5, (2, 16, 16))).backward()
    assert sum(p.grad.abs().sum() for p in m.lesion_net.parameters()) > 0
    assert all(p.grad is None for p in m.grader.parameters())

# --- semi-supervised ----------------------------------------------------------------------------------------------
def test_unlabelled_images_add_no_patch_loss():
    q = torch.randn(4, 5, 8, 8, requires_grad=True)
    y = torch.randint(0, 5, (4, 8, 8))
    semi = y.clone(); semi[[1, 3]] = -1
    assert torch.allclose(patch_loss(q, semi), F.cross_entropy(q[[0, 2]], y[[0, 2]]))
    patch_loss(q, semi).backward()
    assert q.grad[[1, 3]].abs().sum() == 0 and q.grad[[0, 2]].abs().sum() > 0
    z = patch_loss(q, torch.full_like(y, -1))
    assert z.item() == 0 and z.requires_grad

def test_callback_joint_loss_and_terms():
    learn = _learn(lam=0.5)
    x, y, p = learn.dls.valid.one_batch()
    cb = learn.clpi; learn.model.eval()
    with torch.no_grad():
        z, q = learn.model(x)
        learn.pred, learn.yb = (z, q), (y, p)
        cb.after_pred(); learn.loss_grad = learn.loss_func(learn.pred, *learn.yb); cb.after_loss()
    ce, pl = F.cross_entropy(z, y), F.cross_entropy(q, p)
    assert torch.allclose(cb.grade, ce) and torch.allclose(cb.patch, pl)
    assert torch.allclose(learn.loss_grad, ce + 0.5*pl) and len(learn.yb) == 1 and learn.pred is z
    # the same batch with no patch labels: grade loss only
    with torch.no_grad():
        learn.pred, learn.yb = (z, q), (y, torch.full_like(p, -1))
        cb.after_pred(); learn.loss_grad = learn.loss_func(learn.pred, *learn.yb); cb.after_loss()
    assert torch.allclose(learn.loss_grad, ce) and cb.patch.item() == 0

def test_unlabel_patches():
    g = torch.zeros(10, 4, 4, dtype=torch.long)
    u = unlabel_patches(g, 0.3, seed=2)
    assert int((u == -1).all(-1).all(-1).sum()) == 3 and torch.equal(u, unlabel_patches(g, 0.3, seed=2))

# --- training loop: fit, pre-training, restore after cancel, metrics, save/load ---------------------------------
def test_fit_logs_terms_and_pretrain_freezes_grader():
    learn = _learn()
    before = {n: p.detach().clone() for n, p in learn.model.named_parameters()}
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=LesionPretrain())
    changed = {n for n, p in learn.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith('lesion_net.') for n in changed)
    assert all(p.requires_grad for p in learn.model.parameters()) and learn.clpi.grade_weight == 1.
    with learn.no_bar(), learn.no_logging(): fit_clpi(learn, 2, 1e-3, pretrain=1)
    names = learn.recorder.metric_names
    assert 'grade_loss' in names and 'patch_loss' in names
    assert np.isfinite(learn.recorder.values[-1][names.index('patch_loss') - 1])

class _Stop(Callback):
    def after_batch(self): raise CancelFitException()

def test_restored_after_cancelled_fit():
    learn = _learn()
    learn.model.grader.body.conv1.weight.requires_grad_(False)    # a state of the user's that must survive
    before = [p.requires_grad for p in learn.model.parameters()]
    loss_func = learn.loss_func
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[LesionPretrain(), _Stop()])
    assert [p.requires_grad for p in learn.model.parameters()] == before
    assert learn.clpi.grade_weight == 1. and learn.loss_func is loss_func

def test_grade_probs_and_patch_probs():
    learn = _learn()
    p, y = grade_probs(learn)
    assert p.shape == (2, 5) and torch.allclose(p.sum(1), torch.ones(2)) and y.tolist() == [4, 0]
    q, g = patch_probs(learn)
    assert q.shape == (2, 5, 16, 16) and g.shape == (2, 16, 16)
    a = patch_auc(q, g)
    assert set(a) == set(LESION_TYPES) | {'any'}

def test_negative_learning_loss():
    z = torch.tensor([[0., 1., 2., 0., 0.]]); p = z.softmax(1)
    assert torch.allclose(NegativeLearningLoss(complementary=False)(z, torch.tensor([2])), -torch.log(1 - p[0, 2]))
    torch.manual_seed(0)
    nl = NegativeLearningLoss()
    vals = {round(nl(z, torch.tensor([2])).item(), 5) for _ in range(200)}
    want = {round(-torch.log(1 - p[0, k]).item(), 5) for k in (0, 1, 3, 4)}
    assert vals == want                                          # every other grade, never the label itself
    learn = _learn(loss='nl')
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert np.isfinite(learn.recorder.values[-1][0])

def test_save_load_round_trip(tmp_path):
    learn = _learn()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    learn.path = tmp_path; learn.save('clpi')
    learn2 = _learn(); learn2.path = tmp_path; learn2.load('clpi')   # fastai loads with weights_only=True
    x = learn.dls.valid.one_batch()[0]
    learn.model.eval(); learn2.model.eval()
    with torch.no_grad():
        for a, b in zip(learn.model(x), learn2.model(x)): assert torch.equal(a, b)
    torch.save(learn.model.state_dict(), tmp_path/'sd.pth')
    m = ClpiModel('resnet18', 64); m.load_state_dict(torch.load(tmp_path/'sd.pth', weights_only=True)); m.eval()
    with torch.no_grad(): assert torch.equal(m(x)[0], learn.model(x)[0])

def test_attribution_methods():
    from drnb.interpret.attribution import attribute, ATTRIBUTIONS
    assert {'clpi_lesions', 'clpi_cam'} <= set(ATTRIBUTIONS)
    learn = _learn()
    x = learn.dls.valid.one_batch()[0]
    h = attribute(learn, x, 'clpi_lesions', target='pred')
    assert h.shape == (2, 64, 64) and h.min() >= 0 and h.max() <= 1
    assert attribute(learn, x, 'clpi_lesions', target=0, lesion='EX').shape == (2, 64, 64)
    c2 = attribute(learn, x, 'clpi_cam', target=2)
    cr = attribute(learn, x, 'clpi_cam', target='referable')
    assert c2.shape == cr.shape == (2, 64, 64) and not torch.equal(c2, cr)
    assert all(p.grad is None for p in learn.model.parameters())

def test_clpi_data():
    d = clpi_data(size=128, grid=8)
    assert d['targets'] == ('grade', 'patches') and d['size'] == 128 and d['grid'] == 8

def test_tensor_dls_flip_keeps_image_and_grid_together():
    x = torch.zeros(4, 3, 16, 16, dtype=torch.uint8); x[:, :, :4, :4] = 255
    p = torch.zeros(4, 4, 4, dtype=torch.long); p[:, 0, 0] = 1
    dls = tensor_dls(x, torch.zeros(4, dtype=torch.long), p, valid_idx=[], bs=4, device='cpu', seed=3)
    for _ in range(3):
        xb, _, pb = dls.train.one_batch()
        bright = (xb[:, 0] > 0).float().unflatten(-1, (4, 4)).unflatten(-3, (4, 4)).mean((-1, -3)) > 0.5
        assert torch.equal(bright, pb == 1)


# --- issue 22: detach paths, the official lesion net, NLNL phases, patch_frac, degrade ---------------------------
def _path_grads(detach):
    "Gradient of the grade loss reaching the lesion net through (attention, fusion): each path measured with the other cut by hand."
    torch.manual_seed(0)
    m = ClpiModel('resnet18', 64, grid=4, detach=detach); x = torch.randn(2, 3, 64, 64)
    q = m.lesion_net(x).detach().requires_grad_()       # the lesion maps, as a leaf: which paths reach it?
    F.cross_entropy(m.fc(m.fused(x, q).mean((-2, -1))), torch.tensor([0, 3])).backward()
    att = q.grad is not None and q.grad.abs().sum() > 0
    m.zero_grad(); q.grad = None
    z, _ = m(x); F.cross_entropy(z, torch.tensor([0, 3])).backward()
    return att, sum(p.grad.abs().sum() for p in m.lesion_net.parameters() if p.grad is not None) > 0

@pytest.mark.parametrize('detach,reaches', [('none', True), ('attention', True), ('both', False), (True, False), (False, True)])
def test_detach_settings_reach_lesion_net(detach, reaches):
    assert _path_grads(detach) == (reaches, reaches)

def test_detach_attention_cuts_attention_path_only():
    "'attention' (the official code) = the gradient through the fusion input 1-P0 alone; 'none' = attention path + fusion path; 'both' = none."
    from drnb.models.clpi import fuse_size
    torch.manual_seed(0)
    m = ClpiModel('resnet18', 64, grid=4).eval(); x = torch.randn(2, 3, 64, 64); y = torch.tensor([0, 3])
    q0 = m.lesion_net(x).detach()
    def grad(f):
        q = q0.clone().requires_grad_(); loss = F.cross_entropy(f(q), y)
        return torch.autograd.grad(loss, q, allow_unused=True)[0] if loss.requires_grad else None
    def by_hand(att, fus):      # the fused path with each input detached or not, written out
        def f(q):
            p = q.softmax(1); pa, pf = (p if att else p.detach()), (p if fus else p.detach())
            h = m.grader(lesion_attention(x, pa, m.grade_size))
            return m.fc(m.fuse(torch.cat([h, fuse_size(1 - pf[:, :1], h.shape[-2:])], 1)).mean((-2, -1)))
        return f
    g_att, g_fus = grad(by_hand(True, False)), grad(by_hand(False, True))
    assert g_att.abs().sum() > 0 and g_fus.abs().sum() > 0
    def model_grad(mode):
        m.detach = mode
        return grad(lambda q: m.fc(m.fused(x, q).mean((-2, -1))))
    assert torch.allclose(model_grad('attention'), g_fus, atol=1e-6)
    assert torch.allclose(model_grad('none'), g_att + g_fus, atol=1e-5)
    g_both = model_grad('both')
    assert g_both is None or g_both.abs().sum() == 0
    with pytest.raises(ValueError, match='attention'): ClpiModel('resnet18', 64, detach='fusion')

def test_official_lesion_net_layout_and_receptive_field():
    lo = LesionNet(1024, 16, 4, width=32, max_width=1024, design='official')
    convs = [m for m in lo.body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convs] == \
        [(5, 1, 32), (2, 2, 32), (2, 2, 64), (2, 2, 128), (2, 2, 256), (2, 2, 512), (2, 2, 1024), (1, 1, 1024), (1, 1, 1024)]
    def moved(net, cell=(1, 2), size=64, grid=4):
        torch.manual_seed(0); net.eval()
        x = torch.randn(1, 3, size, size); y = x.clone(); s = size // grid; r, c = cell
        y[..., r*s+3:(r+1)*s-3, c*s+3:(c+1)*s-3] += 1          # inside the patch, beyond the stem's 2-pixel reach
        with torch.no_grad(): return (net(x) - net(y)).abs().amax(1)[0] > 1e-6
    for cell in [(0, 0), (1, 2), (3, 3)]: assert moved(LesionNet(64, 4, design='official'), cell).nonzero().tolist() == [list(cell)]
    assert moved(LesionNet(64, 4, design='drnb')).sum() > 1      # drnb's 3x3 blocks mix neighbouring cells
    m = ClpiModel('resnet18', 64, lesion_design='official')
    assert m(torch.randn(1, 3, 64, 64))[1].shape == (1, 5, 16, 16)

def test_patch_grid_by_hand_tiny_image():
    "A 4x4 image, 2x2 grid: each cell is a 2x2 block; the label is the type covering most of it (thr 0: any pixel)."
    from drnb.data.block import patch_labels
    ma = np.zeros((4, 4), bool); ex = np.zeros((4, 4), bool)
    ma[0, 3] = True; ex[2:4, 0:2] = True; ex[3, 3] = True; ma[2:4, 2:4] = True
    assert np.array_equal(patch_labels({'MA': ma, 'EX': ex}, 2), np.array([[0, 1], [3, 1]]))
    assert np.array_equal(patch_labels({'MA': ma, 'EX': ex}, 2, thr=0.5), np.array([[0, 0], [3, 1]]))

def test_selective_masks_on_hand_made_logits():
    z = torch.tensor([[3., 0, 0, 0, 0], [0., 0, 0, 0, 0], [1., 0, 0, 0, 0], [0., 0, 4, 0, 0]])
    y = torch.zeros(4, dtype=torch.long)          # p_y: 0.83, 0.20, 0.40, 0.02
    assert selective_mask(z, y, 1/5).tolist() == [True, False, True, False]
    assert selective_mask(z, y, 0.5).tolist() == [True, False, False, False]
    assert torch.allclose(NLNLLoss('selpl')(z, y), F.cross_entropy(z[:1], y[:1]))
    torch.manual_seed(0); a = NLNLLoss('selnl')(z, y)
    torch.manual_seed(0); b = NegativeLearningLoss()(z[[0, 2]], y[[0, 2]])
    assert torch.allclose(a, b)
    zz = z.clone().requires_grad_(); l = NLNLLoss('selpl')(zz[1:2], y[1:2])
    assert l.item() == 0 and l.requires_grad
    assert isinstance(grade_loss('nlnl'), NLNLLoss) and not isinstance(grade_loss('nl'), NLNLLoss)

def test_nlnl_phase_boundaries():
    assert [nlnl_phase(p) for p in (0, 0.49, 0.5, 0.74, 0.75, 0.99)] == ['nl', 'nl', 'selnl', 'selnl', 'selpl', 'selpl']
    assert nlnl_phase(0.2, (0, 0, 1)) == 'selpl' and nlnl_phase(0.99, (1, 0, 0)) == 'nl' and nlnl_phase(0.5, (2, 1, 1)) == 'selnl'

class _Phases(Callback):
    order = 0
    def before_fit(self): self.seen = []
    def after_loss(self):
        if self.training: self.seen.append((round(self.pct_train, 3), self.learn.loss_func.phase))

def test_nlnl_phases_switch_on_schedule_in_a_fit():
    learn = _learn(loss='nlnl')                     # 4 training images, batches of 2: 2 steps per epoch
    assert any(isinstance(c, NlnlSchedule) for c in learn.cbs)
    rec = _Phases()
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3, cbs=rec)
    assert rec.seen == [(0.0, 'nl'), (0.25, 'nl'), (0.5, 'selnl'), (0.75, 'selpl')]
    assert learn.loss_func.phase == 'nl'          # given back after the fit
    assert np.isfinite(learn.recorder.values[-1][0])

def test_known_patches_blank_unlabelled_images():
    g = torch.arange(3*2*2).view(3, 2, 2)
    k = torch.tensor([[True, False, False, False], [False] * 4, [False, False, False, True]])
    out = known_patches(g, k)
    assert torch.equal(out[[0, 2]], g[[0, 2]]) and (out[1] == -1).all()
    learn = _learn(lam=1.)
    x, y, p = learn.dls.valid.one_batch()
    learn.model.eval()
    with torch.no_grad():
        z, q = learn.model(x)
        learn.pred, learn.yb = (z, q), (y, p, torch.tensor([[True] * 4, [False] * 4]))
        learn.clpi.after_pred(); learn.loss_grad = learn.loss_func(learn.pred, *learn.yb); learn.clpi.after_loss()
    assert torch.allclose(learn.clpi.patch, F.cross_entropy(q[:1], p[:1]))
    d = clpi_data(128, patch_frac=0.3)
    assert d['targets'] == ('grade', 'patches', 'known') and d['mask_fraction'] == 0.3
    from drnb.methods import get_method
    assert get_method('clpi').data_kwargs(64, patch_frac=0.5)['mask_fraction'] == 0.5

def test_patch_frac_through_the_data_path():
    "patch_frac reaches fundus_dataloaders: a seeded share of the training images keeps its patch labels."
    from drnb.synth import synthetic_dataset
    from drnb.methods import get_method
    from drnb.data.block import masked_indices
    df = synthetic_dataset('tiny', verbose=False)
    df = df[df.split != 'test']
    M = get_method('clpi')
    dls = M.dataloaders(df, 64, 'resnet18', bs=4, seed=0, device='cpu', num_workers=0, patch_frac=0.5, grid=4)
    known = masked_indices(dls.train_ds)
    assert 0 < len(known) < len(dls.train_ds)
    b = dls.train.one_batch()
    assert len(b) == 4 and b[3].shape[0] == 4

def test_degrade_changes_and_is_deterministic():
    from drnb.synth import synth_fundus, degrade, QUALITY_NUISANCES
    img = synth_fundus(5, 1, size=256, grade=2, nuisances=False).image   # at 96 px the generator's blur (0.15-0.5% of the FOV) can round away
    for n in QUALITY_NUISANCES:
        d = degrade(img, n, seed=3)
        assert d.shape == img.shape and d.dtype == np.uint8
        assert not np.array_equal(d, img), n
        assert np.array_equal(d, degrade(img, n, seed=3)), n
    assert not np.array_equal(degrade(img, 'exposure', seed=1), degrade(img, 'exposure', seed=2))
    with pytest.raises(ValueError): degrade(img, 'rotation')
    with pytest.raises(ValueError): degrade(img[:, :200], 'blur')
