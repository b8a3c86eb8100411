"""Saving and loading a Phenaki model: `config.json`, `model.safetensors` and a model card, in a folder or on the
Hugging Face Hub. Mixed into `Phenaki`, so that the pipeline module holds only what the model does."""

from __future__ import annotations

from pathlib import Path

import torch

from .models.cvivit import CViViT
from .models.maskgit import MaskGit, SelfCritic, TokenCritic
from .models.text import build_text_encoder
from .serialization import WEIGHTS_NAME, check_config_version, load_weights, read_config, save_weights, write_config
from .vocabulary import check_vocabulary


class PretrainedMixin:
    """`save_pretrained`, `from_config`, `from_pretrained` and `push_to_hub` for `Phenaki`, and its `vocabulary`."""

    @property
    def vocabulary(self) -> dict[str, list[str]] | None:
        """The words of the model's training captions, grouped ({"colours": [...], ...}; `phenaki.vocabulary`),
        saved in its config; None when not recorded (a model trained on real videos, or an older one)."""
        return self.__dict__.get("_vocabulary")

    @vocabulary.setter
    def vocabulary(self, value) -> None:
        self.__dict__["_vocabulary"] = check_vocabulary(value)

    def _unsaved_prefixes(self) -> tuple[str, ...]:
        saved = self.text_encoder is None or getattr(self.text_encoder, "saved_with_model", True)
        return () if saved else ("text_encoder.",)

    def save_pretrained(self, save_directory: str | Path, model_card: str | None = None) -> Path:
        from .model_card import write_model_card

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(self, folder / WEIGHTS_NAME, self._unsaved_prefixes())
        write_config(self.config, folder)
        write_model_card(folder, self.config, model_card)
        return folder

    @classmethod
    def from_config(cls, config: dict, **hub_kwargs):
        check_config_version(config)
        try:
            cvivit = CViViT.from_config(config["cvivit"])
            maskgit = MaskGit(**config["maskgit"])
            critic_config = config.get("critic")
            if critic_config is None:
                critic = None
            elif critic_config.get("self_critic"):
                critic = SelfCritic(maskgit)
            else:
                critic = TokenCritic(**critic_config)
            text_config = config.get("text_encoder")
            text_encoder = None if text_config is None else build_text_encoder(text_config, **hub_kwargs)
            keys = ("frame_size", "fps", "prime_frames", "cond_drop_prob", "continuation_prob", "vocabulary")
            return cls(
                cvivit=cvivit,
                maskgit=maskgit,
                critic=critic,
                text_encoder=text_encoder,
                **{k: config[k] for k in keys if k in config},
            )
        except TypeError as error:  # unknown or missing constructor arguments
            raise ValueError(f"config does not describe a Phenaki model: {error}") from error

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        revision: str | None = None,
        token: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool | None = None,
        device: str | torch.device | None = None,
    ):
        """A local folder or a Hub repo id; the model comes back in eval mode, on `device` if given."""
        from .hub import check_safetensors, resolve_model_dir

        hub = dict(token=token, cache_dir=cache_dir, local_files_only=local_files_only)
        folder = Path(resolve_model_dir(str(name_or_path), revision=revision, **hub))
        config = read_config(folder)
        model = cls.from_config(config, **hub)
        check_safetensors(folder / WEIGHTS_NAME)
        load_weights(model, folder / WEIGHTS_NAME, model._unsaved_prefixes())
        model.eval()
        return model.to(device) if device is not None else model

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        from .hub import push_to_hub

        return push_to_hub(self.save_pretrained, repo_id, **kwargs)
