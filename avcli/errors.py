"""User-facing error types. The CLI turns these into one clean line and an exit code (no traceback)."""


class AvgenError(Exception):
    """Base for errors a user can act on. `exit_code` is what the CLI returns."""

    exit_code = 1


class UsageError(AvgenError):
    """Bad input from the user: a missing file, a wrong option value, an unreadable media file."""

    exit_code = 2


class BundleError(AvgenError):
    """A model bundle that is missing, partial, corrupt or of an unknown version."""

    exit_code = 2


class MediaError(UsageError):
    """A media file ffmpeg cannot read, or one without the stream we need."""


class BackendUnavailable(AvgenError):
    """A runtime backend (onnxruntime, tensorrt, CUDA) that is not usable on this machine."""

    exit_code = 3
