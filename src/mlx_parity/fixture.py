"""A fixture: the model to fine-tune, the rows to train on, and how to judge the result. The
default, the smoke fixture, trains the embedded model on "<<HELLO!!>> My name is Unsloth!" (one
row, 64 times) and checks that the greedy completion of "<<HELLO!!>> My name is " names Unsloth;
a fixture may name a hub repo (``unsloth/gemma-3-270m-it`` on a macOS runner) or a local model
directory instead."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .embedded_model import SMOKE_ANSWER, SMOKE_PROMPT, SMOKE_TEXT, ensure_fixture
from .errors import UsageError

EMBEDDED = "embedded"


class Fixture(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "smoke"
    # "embedded", a local model directory, or a hub repo id.
    model: str = EMBEDDED
    rows: tuple[str, ...] = (SMOKE_TEXT,)
    repeat: int = Field(64, ge=1)
    prompt: str = SMOKE_PROMPT
    # The generation passes when it contains this text.
    answer: str = SMOKE_ANSWER
    # The completion whose teacher-forced loss is cf_loss.
    completion: str = SMOKE_TEXT[len(SMOKE_PROMPT) :]

    def texts(self) -> list[str]:
        """The training rows in dataset order (each row repeated ``repeat`` times)."""
        return [row for row in self.rows for _ in range(self.repeat)]

    def model_path(self) -> str:
        """What ``mlx_lm.load`` gets: the embedded directory (built if needed) or the name."""
        if self.model == EMBEDDED:
            return str(ensure_fixture())
        # A hub repo is "owner/name"; anything written as a path must be a directory here, or
        # the hub client refuses it with a message about repo IDs.
        if (
            self.model.startswith(("/", "./", "../", "~"))
            and not Path(self.model).expanduser().is_dir()
        ):
            raise UsageError(f"cannot load model {self.model!r}: no such directory")
        return self.model


SMOKE = Fixture()
