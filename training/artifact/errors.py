"""What a model artifact that cannot be written or loaded raises.

::

    RecsysError
    └── ArtifactError          the artifact is refused whole (serving keeps the one it has)
        └── UnknownModelError  also a KeyError: a model name the artifact does not hold
"""

from __future__ import annotations

from features.errors import RecsysError


class ArtifactError(RecsysError):
    """A model artifact cannot be written or loaded as it is; a bad artifact is refused whole."""


class UnknownModelError(ArtifactError, KeyError):
    """A model was asked for by a name the artifact does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
