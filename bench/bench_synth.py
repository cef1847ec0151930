"Synthetic fundus generator speed on one core: images/s at 1024 and 256 px, with and without writing to disk."
import os
for k in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ[k] = '1'
import tempfile, time
import cv2, torch
cv2.setNumThreads(1); torch.set_num_threads(1)
from drnb.synth import synth_fundus, make_synthetic, SynthConfig, SYNTH_PRESETS

def rate(size, n):
    synth_fundus(0, 0, size)                      # warm-up (imports, caches)
    t = time.perf_counter()
    for i in range(n): synth_fundus(0, i, size)
    return n/(time.perf_counter() - t)

def write_rate(size, n):
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        make_synthetic(d, n=dict(train=n), size=size, seed=0)
        return n/(time.perf_counter() - t)

if __name__ == '__main__':
    print(f"threads: cv2 {cv2.getNumThreads()}, torch {torch.get_num_threads()}")
    for size, n in ((1024, 40), (512, 80), (256, 200)):
        print(f"synth_fundus       {size:5d} px: {rate(size, n):6.1f} images/s")
    for size, n in ((1024, 30), (256, 100)):
        print(f"make_synthetic     {size:5d} px: {write_rate(size, n):6.1f} images/s (PNG images + masks + records)")
    b = SYNTH_PRESETS['bench']; total = sum(b['n'].values())
    print(f"bench preset: {total} images at {b['size']} px -> about {total/write_rate(b['size'], 20)/60:.1f} min to generate on one core")
