"""avgen: sounding-video generation (text -> video + audio, video -> foley, audio -> video)."""

__version__ = "0.1.0"
