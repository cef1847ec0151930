"Images per second of each preprocessing step at 1024 px, on real idrid_boxes photographs (synthetic discs when absent)."
import time, numpy as np, cv2
from drnb.core import idrid_boxes_path
from drnb.data.preprocess import *

def sources(n=6):
    p = idrid_boxes_path(required=False)
    if p is None:
        print("idrid_boxes not found: using synthetic discs")
        out = []
        for i in range(n):
            im = np.zeros((680, 1024, 3), np.uint8); cv2.circle(im, (512, 340), 400, (150 + 10*i, 70, 30), -1); out.append(im)
        return out
    return [load_rgb(f) for f in sorted((p/'images').glob('*.jpg'))[:n]]

def rate(f, xs, min_s=1.5):
    "Calls per second of f over the inputs xs, repeated for at least min_s seconds."
    n,t0 = 0,time.perf_counter()
    while time.perf_counter() - t0 < min_s:
        for x in xs: f(x)
        n += len(xs)
    return n / (time.perf_counter() - t0)

def main():
    photos = sources()
    crops = [cv2.resize(crop_eye(p), (1024, 1024), interpolation=cv2.INTER_LINEAR) for p in photos]
    steps = [('fov_mask (1024x680 photo)', fov_mask, photos), ('crop_eye (1024x680 photo)', crop_eye, photos),
             ('graham (1024 crop)', graham, crops), ('yang_median (1024 crop, k=103)', yang_median, crops),
             ('hires_twin 256 + 1024 (1024 crop)', lambda c: hires_twin(c, 256, 1024), crops),
             ('preprocess_fundus 512 graham (photo)', lambda p: preprocess_fundus(p, 512, 'graham'), photos)]
    for threads in (cv2.getNumThreads(), 1):
        cv2.setNumThreads(threads)
        print(f"OpenCV threads: {threads}")
        for name,f,xs in steps: print(f"  {name:40s} {rate(f, xs):8.1f} images/s")

if __name__ == '__main__': main()
