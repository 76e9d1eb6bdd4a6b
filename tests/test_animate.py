"""`avgen animate`: audio in -> a video of the audio's length at the bundle's fps, carrying the original audio."""

import json

import numpy as np
from typer.testing import CliRunner

from avcli.cli.main import app

runner = CliRunner()


def test_animate_writes_video_with_the_original_audio(tiny_bundle, tiny_model, tmp_path):
    from avcli.media.ffmpeg import probe, read_audio, write_wav

    sr = 22050  # not the bundle's rate: the output must keep the original rate
    t = np.arange(int(1.5 * sr)) / sr
    tone = (0.4 * np.sin(2 * np.pi * 330 * t) * (t % 0.5 < 0.1)).astype(np.float32)
    write_wav(tmp_path / "hit.wav", tone, sr)
    out = tmp_path / "hit.mp4"
    res = runner.invoke(app, ["animate", str(tmp_path / "hit.wav"), "-p", "a ball hits a plate", "--bundle",
                              str(tiny_bundle), "--steps", "2", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["outputs"][0]
    geo = tiny_model.geometry()
    assert row["frames"] == round(1.5 * geo.fps)
    info = probe(out)
    assert info.has_video and info.audio_sample_rate == sr
    assert (info.width, info.height) == (geo.frame_size[1], geo.frame_size[0])
    back = read_audio(out, sr)
    assert abs(len(back) - len(tone)) <= 1024
    n = min(len(back), len(tone)) - 2048
    assert np.corrcoef(back[1024:n], tone[1024:n])[0, 1] > 0.9  # the same sound, not a re-synthesis
    res = runner.invoke(app, ["animate", str(tmp_path / "missing.wav"), "--bundle", str(tiny_bundle)])
    from avcli.errors import MediaError

    assert isinstance(res.exception, MediaError) and "file not found" in str(res.exception)  # exit 2 via main.run
