"Preprocessing: FOV mask on a disc of known radius, eye crop, Graham/Yang on constant images, the high-resolution twin."
import numpy as np, cv2, pytest
from drnb.data.preprocess import *

def disc_image(w=320, h=240, cx=150, cy=110, r=80, val=(150, 70, 30), noise=4, seed=0):
    "A disc of radius r on a noisy black frame, with a dark blot (a 'haemorrhage') inside; and the disc's mask."
    img = np.random.default_rng(seed).integers(0, noise+1, (h, w, 3)).astype(np.uint8)
    cv2.circle(img, (cx, cy), r, val, -1); cv2.circle(img, (cx+20, cy-10), 12, (0, 0, 0), -1)
    yy,xx = np.mgrid[:h, :w]
    return img, (xx-cx)**2 + (yy-cy)**2 <= r*r          # the disc, computed by hand (cv2.circle fills exactly these)

@pytest.mark.parametrize('val', [(150, 70, 30), (255, 200, 120), (14, 6, 2)])   # normal, bright, very dark
def test_fov_mask_is_the_disc(val):
    img,disc = disc_image(val=val)
    m = fov_mask(img)
    assert (m == disc).all()                             # exactly the disc, the dark blot filled, the noisy frame out
    assert m[110, 170] and not m[5, 5]
    ys,xs = np.nonzero(m)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (70, 230, 30, 190)   # radius 80 about (150, 110)

def test_fov_mask_ignores_specks_and_handles_no_frame():
    img,disc = disc_image(); img[5:8, 5:8] = 200           # a bright speck in the frame is not the eye
    assert not fov_mask(img)[6, 6]
    assert fov_mask(np.full((20, 30, 3), 120, np.uint8)).all()
    assert not fov_mask(np.zeros((20, 30, 3), np.uint8)).any()

def test_crop_returns_the_known_square():
    img,disc = disc_image()
    sq = eye_square(fov_mask(img))
    assert sq == (70, 30, 161)                            # 161 = 2*80 + 1 pixels, corner at (150-80, 110-80)
    c = crop_eye(img)
    assert c.shape == (161, 161, 3) and (c == crop_square(img, sq)).all() and (c == img[30:191, 70:231]).all()
    wide = np.zeros((100, 200, 3), np.uint8); wide[30:70, 20:180] = 90       # runs past top and bottom once squared
    c = crop_eye(wide)
    assert eye_square(fov_mask(wide)) == (20, -30, 160) and c.shape == (160, 160, 3)
    assert (c[:60] == 0).all() and (c[60:100, :] == 90).all() and (c[100:] == 0).all()
    assert crop_boxes([['EX', 100, 50, 110, 60]], (20, -30, 160)) == [['EX', 80, 80, 90, 90]]

def test_graham_on_constant_image_is_128():
    flat = np.full((300, 300, 3), (170, 90, 40), np.uint8)
    assert (graham(flat) == 128).all() and (graham(flat, exact=True) == 128).all()   # 4c - 4c + 128 inside, 128 outside
    assert (graham(flat, fill=7)[0, 0] == 7).all() and (graham(flat, fill=7)[150, 150] == 128).all()
    bump = flat.copy(); bump[148:152, 148:152] = 200
    assert graham(bump)[150, 150, 0] > 128 + 60          # 4*(200 - blur) + 128, blur close to 170

def test_yang_median_on_constant_image():
    flat = np.full((512, 512, 3), (170, 90, 40), np.uint8)
    y = yang_median(flat)
    inside = circle_mask(flat.shape, 0.45)
    assert (y[inside] == 128).all() and (y[~inside] == 0).all()
    assert inside[256, 256 + 229] and not inside[256, 256 + 232]    # radius 0.45 * 512 = 230.4
    assert median_kernel(1024) == 103 and median_kernel(512) == 53 and median_kernel(2048) == 207 and median_kernel(8) == 3
    dot = flat.copy(); dot[250:254, 250:254] = (160, 80, 30)       # a small dark dot: the median ignores it
    assert (yang_median(dot)[252, 252] == [128 - 40, 128 - 40, 128 - 40]).all()

def test_twin_scale_is_exact():
    src = np.zeros((1000, 1000, 3), np.uint8); src[400:420, 600:620] = 255
    t = hires_twin(src, 250, 1000)
    assert t.scale == 4.0 and t.view.shape == (250, 250, 3) and t.hires.shape == (1000, 1000, 3)
    assert to_twin(['MA', 150, 100, 155, 105], t.scale) == ['MA', 600., 400., 620., 420.]
    assert (t.view[100:105, 150:155] == 255).all() and (t.hires[400:420, 600:620] == 255).all()
    assert hires_twin(src, 256, 768).scale == 3.0 and hires_twin(src, 300, 700).scale == 7/3
    with pytest.raises(ValueError, match='needs a square image'): hires_twin(src[:900])
    with pytest.raises(ValueError, match='smaller than size'): hires_twin(src, 512, 256)

def test_on_real_photographs(idrid_boxes):
    from drnb.data.formats import read_idrid_boxes
    df = read_idrid_boxes(idrid_boxes)
    for p in df.image[:5]:
        im = load_rgb(p); m = fov_mask(im)
        assert 0.6 < m.mean() < 0.8                      # IDRiD: a ~815 px disc clipped top and bottom in 1024x680
        dark = fov_mask((im * 0.25).astype(np.uint8))
        assert (m & dark).sum() / (m | dark).sum() > 0.98  # the same eye found in a 4x darker photograph
        sq = eye_square(m); assert 780 < sq[2] < 850 and sq[1] < 0
        out = preprocess_fundus(im, 256, 'yang'); assert out.shape == (256, 256, 3)
