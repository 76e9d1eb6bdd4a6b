"""Media I/O on ffmpeg: probe, decode, encode, mux (see avcli.media.ffmpeg)."""
