"""Errors a user can fix. The CLI prints them as one line and exits with status 2."""

import importlib


class MnistlabError(Exception):
    """Bad input or a missing resource: the message says what is wrong and what to do."""


class DataError(MnistlabError):
    """A dataset file is missing, corrupt, or could not be downloaded."""


class CheckpointError(MnistlabError):
    """A checkpoint is missing, of the wrong kind, or unsafe to load."""


class TrainingDiverged(MnistlabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def one_line(e: BaseException) -> str:
    """An exception as a phrase for a one-line message: its first line of text, or its type's name."""
    if isinstance(e, RecursionError):  # Python's text for it says nothing a user can act on
        return "nested too deeply"
    lines = str(e).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(e).__name__


def require_extra(purpose: str, extra: str, modules: tuple[str, ...]) -> None:
    """Raise MnistlabError naming the extra to install when one of `modules` (import names) is missing."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MnistlabError(f"{purpose} needs {module}, which is not installed: "
                                f"pip install 'mnistlab[{extra}]'") from None
