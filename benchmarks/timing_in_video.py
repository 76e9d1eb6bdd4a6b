"""Is the audio's timing in the video latents at all? A supervised diagnostic, independent of the joint model.

A small network (per-frame convolutions, a linear map, a temporal convolution: the video connector's shape) is
trained for 600 steps to predict each window's audio energy envelope (mean absolute deviation of the audio latent
from its median over time, per latent frame) from the video latent alone; then once more with the pairs shuffled.
Reported on held-out windows: MSE, the MSE of a per-clip constant, and the within-clip correlation of prediction
and envelope. With the timing in the video, matched >> shuffled; this is what pointed at the connectors' training
(not the data) when joint training learned no timing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/timing_in_video.py --cache work/cache/latents   # ~8 min
"""
import argparse
import glob
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
torch.manual_seed(0); random.seed(0)
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('--cache', default='work/cache/latents', help='latent cache folder of `avgen train joint`')
ap.add_argument('--steps', type=int, default=600)
args = ap.parse_args()
files = sorted(glob.glob(args.cache + '/*.safetensors'))
V, A = [], []
for f in files:
    d = load_file(f)
    if 'video' not in d or (V and (d['video'].shape[1:] != V[0].shape or d['audio'].shape[1:] != A[0].shape)):
        continue  # the empty-prompt entry, or another geometry
    V.append(d['video'][0]); A.append(d['audio'][0])
V, A = torch.stack(V), torch.stack(A)
env = (A - A.median(dim=2, keepdim=True).values).abs().mean(dim=(1, 3))  # (N, T) audio latent frames
env = (env - env.mean()) / env.std()
n = len(V); idx = torch.randperm(n); tr, va = idx[: int(n * .85)], idx[int(n * .85):]
print(n, V.shape, A.shape)
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.f = nn.Sequential(nn.Conv2d(V.shape[1], 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.SiLU())
        s.p = nn.Linear(64 * ((V.shape[3] + 1) // 2) * ((V.shape[4] + 1) // 2), 64)
        s.t = nn.Sequential(nn.Conv1d(64, 64, 3, padding=1), nn.SiLU(), nn.Conv1d(64, 1, 3, padding=1))
    def forward(s, v):
        b, c, f, h, w = v.shape
        x = s.f(v.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        x = s.p(x.flatten(1)).reshape(b, f, -1).transpose(1, 2)
        x = F.interpolate(x, size=A.shape[2], mode='linear')
        return s.t(x)[:, 0]
for shuffle in (False, True):
    torch.manual_seed(0); net = Net(); opt = torch.optim.Adam(net.parameters(), 1e-3)
    perm = torch.randperm(n) if shuffle else torch.arange(n)
    t0 = time.time()
    for step in range(args.steps):
        b = tr[torch.randint(0, len(tr), (64,))]
        loss = F.mse_loss(net(V[b]), env[perm[b]]); opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        p = net(V[va]); vl = F.mse_loss(p, env[perm[va]]).item()
        const = F.mse_loss(env[perm[va]].mean(1, keepdim=True).expand_as(p), env[perm[va]]).item()
        corr = torch.corrcoef(torch.stack([(p - p.mean(1, keepdim=True)).flatten(), (env[perm[va]] - env[perm[va]].mean(1, keepdim=True)).flatten()]))[0, 1].item()
    print('shuffled' if shuffle else 'matched', 'val mse', round(vl, 4), 'per-clip-const mse', round(const, 4), 'within-clip corr', round(corr, 3), f'{time.time()-t0:.0f}s')
