"""Evaluation metrics on numpy arrays: AV-Align (3 variants), AA-Align, beat hit rate, onset accuracy,
Fréchet distances on offline features (FD-logmel, FD-colourflow) and prompt adherence for the "hits" domain.

Heavy dependencies (librosa, cv2, scipy, safetensors) are imported inside the functions that need them.
"""

from avcli.metrics.aa_align import aa_align, aa_align_audio
from avcli.metrics.adherence import (AdherenceModel, parse_caption, predict_colour, predict_material,
                                     train_adherence_classifiers)
from avcli.metrics.av_align import (VARIANTS, audio_onsets, av_align, av_align_legacy, av_align_official,
                                    av_align_seed000, flow_magnitudes, video_peaks)
from avcli.metrics.beats import beat_hit_rate, beat_hit_rates, beat_times
from avcli.metrics.frechet import (FD_AUDIO_NAME, FD_VIDEO_NAME, audio_features, frechet_distance, paired_distances,
                                   video_features)
from avcli.metrics.onsets import OnsetScores, impact_onsets, onset_accuracy

__all__ = [
    "VARIANTS", "audio_onsets", "av_align", "av_align_legacy", "av_align_official", "av_align_seed000",
    "flow_magnitudes", "video_peaks", "aa_align", "aa_align_audio", "beat_hit_rate", "beat_hit_rates", "beat_times",
    "OnsetScores", "impact_onsets", "onset_accuracy", "FD_AUDIO_NAME", "FD_VIDEO_NAME", "audio_features",
    "video_features", "frechet_distance", "paired_distances", "AdherenceModel", "parse_caption", "predict_colour",
    "predict_material",
    "train_adherence_classifiers",
]
