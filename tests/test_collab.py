"Zhou et al. (drnb.models.collab): shapes; each phase/step changes only its network; D's real/fake labels; pseudo-masks; no supervised loss from unmasked images; state restored on cancel; save/load."
import math, copy
import numpy as np, pytest, torch, torch.nn as nn, torch.nn.functional as F
from fastai.callback.core import Callback, CancelFitException
from drnb.core import LESION_TYPES, seed_everything
from drnb.models.backbones import BACKBONES, register_backbone, fx_backbone
from drnb.models.collab import *
from drnb.interpret.attribution import ATTRIBUTIONS, attribute

SIZE = 64

class TinyNet(nn.Module):
    "A five-level CNN (strides 2..32) so the many short fits below take seconds; registered like any backbone."
    def __init__(self):
        super().__init__()
        blk = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.ReLU())
        self.conv1, self.l1, self.l2, self.l3, self.l4 = blk(3, 8), blk(8, 8), blk(8, 16), blk(16, 16), blk(16, 32)
    def forward(self, x): return self.l4(self.l3(self.l2(self.l1(self.conv1(x)))))

@pytest.fixture(scope='module', autouse=True)
def tiny_backbone():
    "Register `collab_test_tiny` for this module only."
    register_backbone(fx_backbone('collab_test_tiny', TinyNet, {'conv1': (2, 8), 'l1': (4, 8), 'l2': (8, 16), 'l3': (16, 16), 'l4': (32, 32)},
                                  'conv1.0', source='custom'), overwrite=True)
    yield
    BACKBONES.pop('collab_test_tiny', None)

def _dataset(n=12, masked=(0, 1, 2, 3), seed=0, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    masks = (torch.rand(n, 4, size, size, generator=g) > 0.97).float()
    known = torch.zeros(n, dtype=torch.bool); known[list(masked)] = True
    return CollabDataset(x, torch.arange(n) % 5, masks, known)

def _learner(n=12, masked=(0, 1, 2, 3), bs=4, **kwargs):
    seed_everything(0)
    from fastai.data.core import DataLoaders
    dls = DataLoaders.from_dsets(_dataset(n, masked), _dataset(4, range(4), seed=1), bs=bs, device='cpu', drop_last=(True, False))
    return collab_learner(dls, 'collab_test_tiny', seg_widths=(8, 16), disc_widths=(8, 16), **kwargs)

def _snapshot(learn):
    return {n: {k: v.detach().clone() for k, v in net.state_dict().items()} for n, net in learn.model.networks().items()}

def _changed(before, after):
    "Per network: did any parameter or buffer change."
    return {n: any(not torch.equal(before[n][k], after[n][k]) for k in before[n] if before[n][k].is_floating_point()) for n in before}

def _fit(learn, cb, epochs=1):
    learn.fit(epochs, lr=np.array([1e-2, 1e-2, 1e-2]), cbs=[cb, ValidateAtEnd()])

# ---------------------------------------------------------------- shapes

def test_shapes():
    learn = _learner()
    m = learn.model.eval()
    x = torch.rand(3, 3, SIZE, SIZE)
    logits, seg, att = m(x)
    assert logits.shape == (3, 5) and seg.shape == (3, 4, SIZE, SIZE) and att.shape == (3, 4, SIZE//8, SIZE//8)
    assert m.lesion_maps(x).shape == (3, 4, SIZE, SIZE) and 0 <= m.lesion_maps(x).min() and m.lesion_maps(x).max() <= 1
    m.switch('seg'); out = m(x, torch.rand(2, 3, SIZE, SIZE))
    assert {k: tuple(v.shape) for k, v in out.items()} == dict(seg=(2, 4, SIZE, SIZE), seg_u=(3, 4, SIZE, SIZE), attn=(3, 4, 8, 8), d_fake=(3,))
    m.switch('disc'); out = m(x, x[:2], torch.rand(2, 4, SIZE, SIZE))
    assert out['d_fake'].shape == (3,) and out['d_real'].shape == (2,)
    m.switch('grade')
    p, g = grade_probs(learn)
    assert p.shape == (4, 5) and torch.allclose(p.sum(1), torch.ones(4)) and g.tolist() == [0, 1, 2, 3]

@pytest.mark.parametrize('arch', ['resnet18', 'tf_efficientnet_lite0'])
def test_grader_on_backbones(arch):
    c = LesionAttentiveGrader(arch)
    logits, a = c(torch.randn(2, 3, 96, 96), torch.rand(2, 4, 96, 96))
    assert logits.shape == (2, 5) and a.shape == (2, 4, 12, 12)

# ---------------------------------------------------------------- only the intended network changes

@pytest.mark.parametrize('phase,expected', [('seg', {'seg'}), ('grade', {'grade'}), ('collab', {'seg', 'disc'})])
def test_phase_changes_only_its_networks(phase, expected):
    learn = _learner()
    # every network first gets gradients and Adam state, so a frozen one would move by momentum if its grads were kept
    for cb in (CollabPhase('collab', schedule=('seg', 'disc', 'grade')),): _fit(learn, cb)
    before = _snapshot(learn)
    _fit(learn, dict(seg=SegPretrain, grade=GraderTrain, collab=CollabFinetune)[phase]())
    changed = _changed(before, _snapshot(learn))
    assert {n for n, c in changed.items() if c} == expected, changed

@pytest.mark.parametrize('step', ['seg', 'disc', 'grade'])
def test_each_collab_step_changes_only_its_network(step):
    learn = _learner()
    _fit(learn, CollabPhase('collab', schedule=('seg', 'disc', 'grade')))
    before = _snapshot(learn)
    _fit(learn, CollabPhase('collab', schedule=(step,)))
    changed = _changed(before, _snapshot(learn))
    assert {n for n, c in changed.items() if c} == {step}, changed

def test_switching_alternates_like_fixed_gan_switcher():
    learn = _learner(n=16)
    _fit(learn, CollabFinetune(n_seg=2, n_disc=1))
    assert [h['step'] for h in learn.collab_history] == ['seg', 'seg', 'disc', 'seg']

# ---------------------------------------------------------------- D: real masks real, G's outputs fake

def test_discriminator_real_and_fake():
    learn = _learner()
    m = learn.model
    seen = []
    h = m.disc.register_forward_hook(lambda mod, inp, out: seen.append((inp[1].detach().clone(), out.detach().clone())))
    _fit(learn, CollabPhase('collab', schedule=('disc',)))
    h.remove()
    # the disc step saw one batch: one call on G's maps of the batch, one on the masked batch's true masks
    (fake_in, fake_out), (real_in, real_out) = seen[:2]
    assert set(real_in.unique().tolist()) <= {0., 1.}                      # ground-truth masks
    assert 0 < fake_in.min() and fake_in.max() < 1                           # G's sigmoid maps
    lf = CollabLoss(); lf.switch('disc')
    expected = (F.binary_cross_entropy_with_logits(real_out, torch.ones_like(real_out)) +
                F.binary_cross_entropy_with_logits(fake_out, torch.zeros_like(fake_out))) / 2
    assert math.isclose(learn.collab_history[0]['disc'], expected.item(), rel_tol=1e-4)
    # labels by hand: a confident D that calls the real pair real and the fake pair fake has ~0 loss, the reverse ~30
    assert lf(dict(d_real=torch.tensor([30.]), d_fake=torch.tensor([-30.])), None, torch.zeros(1, 4, 1, 1)) < 1e-6
    assert abs(lf(dict(d_real=torch.tensor([-30.]), d_fake=torch.tensor([30.])), None, torch.zeros(1, 4, 1, 1)) - 30) < 1e-3

def test_generator_adversarial_term_wants_real():
    lf = CollabLoss(lambda_pseudo=0., lambda_adv=1.); lf.switch('seg')
    z = torch.zeros(2, 4, 4, 4)
    pred = dict(seg=z, seg_u=z, d_fake=torch.tensor([3., -1.]))
    lf(pred, None, z, torch.zeros(2, 4, dtype=torch.bool), z, torch.ones(2, 4, dtype=torch.bool))
    exp = F.binary_cross_entropy_with_logits(torch.tensor([3., -1.]), torch.ones(2))
    assert torch.isclose(lf.terms['seg_adv'], exp)

# ---------------------------------------------------------------- pseudo-masks as documented

def test_pseudo_masks_by_hand():
    attn = torch.tensor([[[[0.9, 0.4], [1.0, 0.0]]]])
    maps = torch.tensor([[[[0.8, 0.9], [0.5, 1.0]]]])
    assert pseudo_masks(attn, maps).tolist() == [[[[1., 0.], [1., 0.]]]]        # 0.72 0.36 / 0.50 0.00 vs tau 0.5
    assert pseudo_masks(attn, maps, 0.7).tolist() == [[[[1., 0.], [0., 0.]]]]
    assert torch.allclose(pseudo_masks(attn, maps, None), torch.tensor([[[[0.72, 0.36], [0.5, 0.]]]]))
    # coarse attention is upsampled bilinearly to the maps' grid
    a = torch.zeros(1, 1, 2, 2); a[0, 0, 0, 0] = 1.
    up = F.interpolate(a, size=(8, 8), mode='bilinear', align_corners=False)
    assert torch.equal(pseudo_masks(a, torch.ones(1, 1, 8, 8), 0.5), (up >= 0.5).float())

def test_pseudo_term_uses_attention_times_maps_on_unknown_pairs_only():
    lf = CollabLoss(lambda_pseudo=1., lambda_adv=0., pos_weight=1.); lf.switch('seg')
    seg_u = torch.tensor([[[[2., -1.], [0.5, 3.]]]]).repeat(2, 4, 1, 1)
    attn = torch.tensor([[[[1.0, 1.0], [0.1, 0.2]]]]).repeat(2, 4, 1, 1)
    known = torch.tensor([[False]*4, [True]*4])                                 # image 1 has masks: no pseudo term
    z = torch.zeros(2, 4, 2, 2)
    lf(dict(seg=z, seg_u=seg_u, attn=attn), None, z, known, z, torch.ones(2, 4, dtype=torch.bool))
    target = ((attn[:1] * torch.sigmoid(seg_u[:1])) >= 0.5).float()            # [[1,0],[0,0]]: sigmoid(2)=.88, sigmoid(3)*.2=.19
    assert target[0, 0].tolist() == [[1., 0.], [0., 0.]]
    exp = F.binary_cross_entropy_with_logits(seg_u[:1], target)
    assert torch.isclose(lf.terms['seg_pseudo'], exp)

# ---------------------------------------------------------------- images without masks: no supervised segmentation loss

def test_unmasked_images_add_no_supervised_loss():
    y = torch.ones(2, 4, 4, 4)
    lg = torch.zeros(2, 4, 4, 4, requires_grad=True)
    loss = supervised_seg_loss(lg, y, torch.tensor([True, False]))
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-6)
    loss.backward()
    assert lg.grad[1].abs().sum() == 0 and lg.grad[0].abs().sum() > 0
    lg2 = torch.zeros(2, 4, 4, 4, requires_grad=True)
    supervised_seg_loss(lg2, y, torch.tensor([False, False])).backward()
    assert lg2.grad.abs().sum() == 0

def test_dataset_zeroes_unknown_masks_and_phase1_sees_masked_images_only():
    ds = _dataset(12, masked=(2, 5))
    assert ds.masks[[0, 1, 3, 4]].sum() == 0 and ds.masks[[2, 5]].sum() > 0
    learn = _learner(masked=(2, 5))
    seen = []
    class Spy(Callback):
        order = 99
        def before_batch(self):
            if self.training: seen.append(self.yb[2].clone())
    learn.fit(1, 1e-3, cbs=[SegPretrain(), Spy(), ValidateAtEnd()])
    assert sum(len(k) for k in seen) == 2 and all(k.all() for k in seen)
    assert learn.dls.train.dataset is not None and len(learn.dls.train.dataset) == 12   # restored

def test_mark_masks_fraction_and_nesting():
    a, b = mark_masks(200, 0.02, 3), mark_masks(200, 0.2, 3)
    assert a.sum() == 4 and b.sum() == 40 and b[a].all()
    with pytest.raises(ValueError, match=r'\[0, 1\]'): mark_masks(5, -0.1)

# ---------------------------------------------------------------- callbacks restore state on cancel

class _CancelAt(Callback):
    order = 99
    def __init__(self, event): self.event = event
    def __getattr__(self, k):
        if k == self.__dict__.get('event'): return self._cancel
        return super().__getattr__(k)
    def _cancel(self):
        if self.training: raise CancelFitException()

@pytest.mark.parametrize('phase', ['seg', 'grade', 'collab'])
@pytest.mark.parametrize('event', ['before_batch', 'after_loss', 'before_step'])
def test_cancel_restores_learner(phase, event):
    learn = _learner()
    m, lf, train = learn.model, learn.loss_func, learn.dls.train
    rg = [p.requires_grad for p in m.parameters()]
    m.switch('grade'); lf.switch('eval')
    cb = dict(seg=SegPretrain, grade=GraderTrain, collab=CollabFinetune)[phase]()
    learn.fit(1, 1e-3, cbs=[cb, _CancelAt(event)])
    assert [p.requires_grad for p in m.parameters()] == rg == [True]*len(rg)
    assert m.step == 'grade' and lf.step == 'eval' and (m.pseudo, m.adversarial) == (True, True)
    assert learn.dls.train is train
    assert learn.loss_func is lf and learn.model is m
    # and the learner trains normally afterwards
    learn.fit(1, 1e-3, cbs=[GraderTrain(), ValidateAtEnd()])

def test_bad_arguments():
    with pytest.raises(ValueError, match='unknown phase'): CollabPhase('critic')
    with pytest.raises(ValueError, match='schedule'): CollabPhase('collab', schedule=('gen',))
    with pytest.raises(ValueError, match='adversarial'): CollabPhase('collab', schedule=('seg', 'disc'), adversarial=False)
    learn = _learner(masked=())
    with pytest.raises(ValueError, match='mask_fraction'): learn.fit(1, 1e-3, cbs=SegPretrain())
    assert all(p.requires_grad for p in learn.model.parameters())

# ---------------------------------------------------------------- save / load

def test_save_load_round_trip(tmp_path):
    learn = _learner()
    _fit(learn, CollabPhase('collab', schedule=('seg', 'disc', 'grade')))
    learn.path = tmp_path
    learn.save('collab')                                   # with the optimiser state
    learn2 = _learner(); learn2.path = tmp_path
    learn2.load('collab')                                  # fastai reads with weights_only=True
    for (k, v), (k2, v2) in zip(learn.model.state_dict().items(), learn2.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    torch.save(learn.model.state_dict(), tmp_path/'sd.pth')
    learn3 = _learner(); learn3.model.load_state_dict(torch.load(tmp_path/'sd.pth', weights_only=True))
    assert torch.allclose(grade_probs(learn3)[0], grade_probs(learn)[0])

# ---------------------------------------------------------------- attributions, fit_collab, data

def test_attributions_registered():
    assert {'collab_attention', 'collab_lesion_maps'} <= set(ATTRIBUTIONS)
    learn = _learner()
    x = torch.rand(2, 3, SIZE, SIZE)
    h = attribute(learn, x, method='collab_attention', target=0)
    assert h.shape == (2, SIZE, SIZE) and 0 <= h.min() and h.max() <= 1
    ex = attribute(learn, x, method='collab_lesion_maps', target=0, lesion='EX')
    assert torch.allclose(ex, learn.model.eval().lesion_maps(x)[:, 2], atol=1e-6)
    sal = attribute(learn, x, method='saliency', target='referable')
    assert sal.shape == (2, SIZE, SIZE)

def test_fit_collab_runs_every_phase_and_logs_every_term():
    learn = _learner()
    fit_collab(learn, 1, epochs_per_phase=dict(seg=1, grade=1, collab=1))
    steps = {(h['phase'], h['step']) for h in learn.collab_history}
    assert steps == {('seg', 'seg'), ('grade', 'grade'), ('collab', 'seg'), ('collab', 'disc')}
    terms = set().union(*(h.keys() for h in learn.collab_history))
    assert set(LOSS_TERMS) <= terms
    names = learn.recorder.metric_names
    assert all(f'train_{t}' in names and f'valid_{t}' in names for t in LOSS_TERMS)

def test_box_masks_on_real_photographs(idrid_boxes):
    from drnb.data.formats import read_idrid_boxes
    recs = read_idrid_boxes(idrid_boxes)
    r = recs[recs.boxes.map(lambda bs: any(b[0] == 'EX' for b in bs))].iloc[0].to_dict()
    m = box_masks(r, 128, ('EX', 'HE'))
    assert m.shape == (2, 128, 128) and m[0].any()
    ds = records_dataset(recs[recs.split == 'test'].head(6), 64, boxes_as_masks=('EX', 'HE'))
    assert ds.known[:, [1, 2]].all() and not ds.known[:, [0, 3]].any()     # HE, EX known; MA, SE not
    assert (ds.grades == -1).all()                                          # idrid_boxes has no grades

def test_learned_attention_starts_at_the_maps():
    "prior=True (the default): a fresh grader's attention is G's max-pooled map, and the grade loss reaches W_l; prior=False starts near 0.5."
    from drnb.models.collab import LesionAttentiveGrader
    import torch.nn.functional as F
    m = torch.rand(2, 4, 64, 64)
    grader = LesionAttentiveGrader('resnet18')
    logits, a = grader(torch.randn(2, 3, 64, 64), m)
    assert torch.allclose(a, F.adaptive_max_pool2d(m, a.shape[-2:]).clamp(1e-4, 1 - 1e-4), atol=1e-5)
    logits.sum().backward()
    assert grader.w[0].weight.grad.abs().sum() > 0
    _, a_plain = LesionAttentiveGrader('resnet18', prior=False)(torch.randn(2, 3, 64, 64), m)
    assert not torch.allclose(a_plain, F.adaptive_max_pool2d(m, a_plain.shape[-2:]), atol=0.05)

# ---------------------------------------------------------------- issue 23: the control arm, pseudo-mask rules, options

class _StepSpy(Callback):
    "At every optimiser step: the step, which networks may train, the grader group's lr and momentum, and a checksum of the batch."
    order = 99
    def __init__(self): self.rows = []
    def before_step(self):
        nets = self.learn.model.networks()
        self.rows.append(dict(step=self.learn.model.step, iter=self.train_iter, grad={n for n, m in nets.items() if any(p.requires_grad for p in m.parameters())},
                              lr=self.opt.hypers[1]['lr'], mom=self.opt.hypers[1]['mom'], x=float(self.xb[0].double().sum())))

@pytest.mark.parametrize('phase,trains', [('seg', {'seg'}), ('grade', {'grade'}), ('collab', {'seg', 'disc', 'grade'}), ('control', {'grade'})])
def test_which_parameters_each_phase_trains(phase, trains):
    "At every step taken only that step's network has requires_grad; the control takes grader steps only, and only the grader changes."
    learn = _learner(n=16)
    _fit(learn, CollabPhase('collab', schedule=('seg', 'disc', 'grade')))      # Adam state everywhere first
    before, spy = _snapshot(learn), _StepSpy()
    cb = dict(seg=SegPretrain(), grade=GraderTrain(), collab=CollabFinetune(n_grade=1), control=GraderControl())[phase]
    learn.fit(1, lr=np.array([1e-2, 1e-2, 1e-2]), cbs=[cb, spy, ValidateAtEnd()])
    assert {r['step'] for r in spy.rows} == trains and all(r['grad'] == {r['step']} for r in spy.rows), spy.rows
    changed = _changed(before, _snapshot(learn))
    assert {n for n, c in changed.items() if c} == trains, changed
    assert all(p.requires_grad for p in learn.model.parameters())              # given back

def test_control_trains_the_grader_as_the_collab_phase_does():
    "fit_collab: the control's grader steps fall on the same iterations, with the same batches, lr and Adam beta1 as (c)'s."
    spies = {}
    for ph in ('collab', 'control'):
        learn, spies[ph] = _learner(n=16), _StepSpy()
        seed_everything(1)
        fit_collab(learn, 1, 1e-2, phases=(ph,), adversarial=False, n_grade=1, epochs_per_phase=dict(collab=2), cbs=[spies[ph]])
    c, k = ([r for r in spies[p].rows if r['step'] == 'grade'] for p in ('collab', 'control'))
    assert len(c) == len(k) == 4 and c == k                                   # 2 epochs x 4 batches, (seg, grade) in turn
    assert all(r['mom'] == 0.5 for r in k) and max(r['lr'] for r in k) > 0
    assert {r['step'] for r in spies['control'].rows} == {'grade'}
    with pytest.raises(ValueError, match='n_grade'): fit_collab(_learner(), 1, phases=('control',), n_grade=0)

def test_control_equals_collab_when_G_cannot_move():
    "With G's learning rate 0 and its batch-norm statistics held, (c) and the control leave bit-identical graders."
    out = []
    for cb in (CollabFinetune(adversarial=False, n_grade=1), GraderControl(adversarial=False)):
        learn = _learner(n=16)
        for mod in learn.model.seg.modules():
            if isinstance(mod, nn.BatchNorm2d): mod.momentum = 0.
        seed_everything(2)
        learn.fit_one_cycle(1, np.array([0., 1e-2, 0.]), moms=(0.5, 0.5, 0.5), cbs=[cb, ValidateAtEnd()])
        out.append(_snapshot(learn))
    assert not any(_changed(out[0], out[1]).values())

def test_pseudo_mask_rules():
    "'subset' stays inside {m >= tau}; 'add' and 'attention' can add pixels there where the attention is high."
    g = torch.Generator().manual_seed(0)
    attn, maps = torch.rand(2, 4, 16, 16, generator=g), torch.rand(2, 4, 16, 16, generator=g)
    inside = maps >= 0.5
    sub, add, att = (pseudo_masks(attn, maps, 0.5, m).bool() for m in ('subset', 'add', 'attention'))
    assert not (sub & ~inside).any() and (add & ~inside).any() and (att & ~inside).any()
    assert (sub <= add).all()                                                 # 'add' keeps what 'subset' keeps
    assert torch.equal(att, attn >= 0.5)
    one = pseudo_masks(torch.tensor([[[[0.9]]]]), torch.tensor([[[[0.4]]]]), None, 'add')
    assert torch.allclose(one, torch.tensor(0.72))                            # 2 * 0.9 * 0.4
    with pytest.raises(ValueError, match='mode'): pseudo_masks(attn, maps, 0.5, 'union')

def _toy(n, masked, seed):
    "Bright squares on a dark noisy background, the same lesions in every channel: G can learn them in seconds."
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 4, SIZE, SIZE)
    for i in range(n):
        for _ in range(3):
            r, c = torch.randint(4, SIZE - 12, (2,), generator=g).tolist(); masks[i, :, r:r+8, c:c+8] = 1
    x = 0.15*torch.rand(n, 3, SIZE, SIZE, generator=g) + 0.7*masks[:, :1]
    known = torch.zeros(n, dtype=torch.bool); known[list(masked)] = True
    return CollabDataset(x, torch.arange(n) % 5, masks, known)

def test_pseudo_mask_phase_does_not_lower_its_own_aupr():
    "On a toy with known masks, G after (c) (pseudo-masks, no D) scores at least its masks-only AUPR, to a wide margin."
    from fastai.data.core import DataLoaders
    seed_everything(0)
    dls = DataLoaders.from_dsets(_toy(16, range(4), 0), _toy(8, range(8), 1), bs=4, device='cpu', drop_last=(True, False))
    learn = collab_learner(dls, 'collab_test_tiny', seg_widths=(8, 16), disc_widths=(8, 16), pos_weight=1.)
    fit_collab(learn, 1, 1e-2, phases=('seg', 'grade'), epochs_per_phase=dict(seg=12, grade=1))
    aupr = lambda: np.mean([v for k, v in collab_metrics(learn).items() if k.startswith('aupr_')])
    before = aupr()
    fit_collab(learn, 1, 1e-2, phases=('collab',), adversarial=False, epochs_per_phase=dict(collab=2))
    after = aupr()
    assert before > 0.5, before                                               # G has learnt the toy (chance: about 0.05)
    assert after >= before - 0.1, (before, after)

def test_grader_and_discriminator_options():
    "A deeper trunk and a pooled f_high gate keep the shapes; disc_real='maps' shows D G's soft maps as the real pairs."
    g = LesionAttentiveGrader('collab_test_tiny', trunk_layers=3, gate='global')
    logits, a = g(torch.randn(2, 3, SIZE, SIZE), torch.rand(2, 4, SIZE, SIZE))
    assert logits.shape == (2, 5) and a.shape == (2, 4, SIZE//8, SIZE//8) and len(g.trunk) == 5
    with pytest.raises(ValueError, match='gate'): LesionAttentiveGrader('collab_test_tiny', gate='vector')
    learn = _learner(disc_real='maps', pseudo_mode='add')
    assert learn.loss_func.pseudo_mode == 'add'
    seen = []
    h = learn.model.disc.register_forward_hook(lambda mod, inp, out: seen.append(inp[1].detach().clone()))
    _fit(learn, CollabPhase('collab', schedule=('disc',)))
    h.remove()
    assert all(0 < s.min() and s.max() < 1 for s in seen[:2])                 # soft maps on both sides
