"""Errors of the importer: each names the file, key, shape or value at fault and what was
expected, so a failed import says how to fix its input."""

from __future__ import annotations


class ImportFailure(Exception):
    """Base class: the conversion stopped and wrote nothing."""


class SnapshotError(ImportFailure):
    """A local Hugging Face snapshot is missing files, unreadable, or unsafe to read."""


class ProfileError(ImportFailure):
    """A snapshot's config disagrees with the pinned facts of the profile it was imported as."""


class AuditError(ImportFailure):
    """The conversion found a difference no recipe justifies (missing, unexpected or
    resized tensors)."""


class ParityError(ImportFailure):
    """Our logits differ from the `transformers` reference by more than the tolerance, or
    the reference cannot run."""


class ExportError(ImportFailure):
    """A checkpoint cannot be written in Hugging Face format (e.g. it carries TTT prime MLPs)."""

