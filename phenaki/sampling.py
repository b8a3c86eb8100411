"""MaskGIT decoding: fill a window of video tokens in a few parallel steps.

Each step predicts every masked token, samples it, then masks again the least confident ones so that the number
still masked follows the cosine schedule cos(pi/2 * r). Confidence is the generator's log-probability, blended
with the Token Critic's belief that the token is real when `critic_strength` > 0, plus Gumbel noise whose scale
(`temperature`) anneals linearly to zero over the steps.

Then, with `refine_passes` > 0, refinement: the even latent frames (counted from the first new one) are masked
again and filled in two steps of the same kind with the odd ones fixed, then the odd frames beside the even ones;
conditioned on the text, without guidance. The last parallel steps fill most of an object's tokens at once, each
drawn on its own, so neighbours can disagree (a square with a circle's corner, a fragment one patch off); a frame
redrawn between fixed neighbours agrees with them, and no two frames redrawn together are neighbours.

Work done per step: one forward of MaskGit over the window, conditioned and unconditioned rows in one batch when
guidance is on (`MaskGit.guided_logits_at`: the unconditioned rows skip the text cross-attention, both halves share
the layers before the first cross-attention, and the guided mix is taken before the output layer), logits only at
the positions still masked, tokens drawn by inverse CDF, and nothing after the last step. On a GPU the
transformers run under bf16 autocast. Under `phenaki.models.attention.reference_paths()` all of that is done the plain way
(both halves in full, the text masked out in the second, logits mixed after the output layer, `torch.multinomial`,
fp32): the reference the fast path is tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .models.attention import fast_paths_enabled
from .models.maskgit import MaskGit


@dataclass
class SamplingSettings:
    steps: int = 12
    temperature: float = 1.0
    guidance_scale: float = 3.0
    critic_strength: float = 0.0
    top_k: int | None = None
    # Tokens are drawn from the softmax at this temperature (0: the most likely). Below 1 the neighbouring tokens
    # of an object agree more often: the default model's squares came out with circle corners at 1 (shape 0.71
    # right at 1, 0.83 at 0.25 on 100 held-out clips), while the choice noise keeps layouts varied.
    token_temperature: float = 0.25
    # Refinement passes (0: none), each 4 unguided forwards. On the default model's held-out eval, with 0 / 1 / 2
    # passes: shape drawn as prompted 83 / 100 / 99%, object kept through scene changes 80 / 100 / 100%. Guidance
    # is left out because it pulls each token toward the prompt rather than toward its neighbours.
    refine_passes: int = 1

    def validate(self, has_critic: bool) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
        if isinstance(self.refine_passes, bool) or not isinstance(self.refine_passes, int) or self.refine_passes < 0:
            raise ValueError(f"refine_passes must be an integer >= 0, got {self.refine_passes!r}")
        for name in ("temperature", "guidance_scale", "critic_strength", "token_temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.token_temperature < 0:
            raise ValueError(f"token_temperature must be >= 0, got {self.token_temperature}")
        if not 0.0 <= self.critic_strength <= 1.0:
            raise ValueError(f"critic_strength must be in [0, 1], got {self.critic_strength}")
        if self.critic_strength > 0 and not has_critic:
            raise ValueError("critic_strength > 0 needs a model with a Token Critic; this one has none")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise ValueError(f"top_k must be None or an integer >= 1, got {self.top_k!r}")


@dataclass
class StepState:
    """What one decoding step did, for inspection: the ids after the step ([MASK] where still masked), which
    positions were filled at this step and kept, which were fixed before and masked again (by the critic, or by
    refinement at the start of its steps), the score that ranked them before the Gumbel noise (the generator's
    log-probability, blended with the critic's log-probability of 'real'; +inf for tokens that may no longer
    change), and the phase: "parallel", or "refinement k, even frames" / "odd frames"."""
    step: int
    ids: Tensor
    filled: Tensor
    confidence: Tensor
    sent_back: Tensor
    phase: str = "parallel"


def masked_count(step: int, steps: int, total: int) -> int:
    """Tokens still masked after `step` (0-based) of `steps`: cosine schedule, none after the last step."""
    return math.floor(total * math.cos(math.pi / 2 * (step + 1) / steps))


@torch.no_grad()
def sample_tokens(maskgit: MaskGit, *, length: int, context: Tensor | None, context_mask: Tensor | None,
                  settings: SamplingSettings, critic=None, prefix: Tensor | None = None,
                  generator: torch.Generator | None = None, batch: int = 1, frame_tokens: int | None = None,
                  on_step: Callable[[StepState], None] | None = None, autocast: bool | None = None) -> Tensor:
    """Returns (batch, length) token ids. `prefix` (batch, p) ids are kept as given (a primed continuation).
    `frame_tokens`: tokens per latent frame, which refinement needs (by default the rows x columns of MaskGit's
    `position_grid`). `autocast`: run the transformers under bf16 autocast; by default on CUDA only (a CPU without
    bf16 matrix units is slower in bf16) and not under `reference_paths()`."""
    device = maskgit.token_emb.weight.device
    if autocast is None:
        autocast = fast_paths_enabled() and device.type == "cuda"
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(autocast))
    if context is not None:
        batch = context.shape[0]
    num_prefix = 0 if prefix is None else prefix.shape[1]
    if length - num_prefix < 1:
        raise ValueError(f"nothing to sample: window of {length} tokens and a prefix of {num_prefix}")
    if settings.refine_passes:
        grid = maskgit.config["position_grid"]
        frame_tokens = frame_tokens or (grid[1] * grid[2] if grid else None)
        if not frame_tokens or num_prefix % frame_tokens:
            raise ValueError("refine_passes > 0 needs frame_tokens (tokens per latent frame) and a prefix of whole "
                             f"frames; got frame_tokens={frame_tokens}, a prefix of {num_prefix} tokens")

    ids = torch.full((batch, length), maskgit.mask_id, dtype=torch.long, device=device)
    if prefix is not None:
        ids[:, :num_prefix] = prefix
    fill = _Filler(maskgit, context, context_mask, critic, generator, on_step, num_prefix)
    # one autocast region for the whole window: autocast keeps the bf16 copies of the weights until its outermost
    # region ends, so they are made once a window, not once a step (1.8 B parameters at the paper's size)
    with amp:
        ids = fill(ids, torch.arange(num_prefix, length, device=device), settings, "parallel")
        if settings.refine_passes:
            plain = replace(settings, steps=2, guidance_scale=1.0, critic_strength=0.0, temperature=0.0)
            frames = torch.arange(num_prefix, length, device=device).split(frame_tokens)
            halves = [torch.cat(frames[0::2])] + ([torch.cat(frames[1::2])] if len(frames) > 1 else [])
            for k in range(settings.refine_passes):
                for half, name in zip(halves, ("even", "odd")):
                    ids = fill(ids.index_fill(1, half, maskgit.mask_id), half, plain,
                               f"refinement {k + 1}, {name} frames", sent_back=True)
    return ids


class _Filler:
    """MaskGIT steps that fill the masked tokens among `region` (window positions) of `ids`; `on_step` sees every
    step of every call, numbered on. `sent_back`: the caller masked the region's fixed tokens again."""

    def __init__(self, maskgit, context, context_mask, critic, generator, on_step, num_prefix):
        self.maskgit, self.context, self.context_mask, self.critic = maskgit, context, context_mask, critic
        self.generator, self.on_step, self.num_prefix = generator, on_step, num_prefix
        self.steps_done = 0

    def __call__(self, ids: Tensor, region: Tensor, settings: SamplingSettings, phase: str,
                 sent_back: bool = False) -> Tensor:
        maskgit, batch, total, device = self.maskgit, ids.shape[0], region.numel(), ids.device
        # confidence of every token of the region: -inf while masked; fixed tokens keep the score they were chosen with
        confidence = torch.full((batch, total), -math.inf, device=device)
        for step in range(settings.steps):
            still_masked = ids[:, region] == maskgit.mask_id
            num_masked = int(still_masked[0].sum())
            if num_masked == 0:
                break
            where = still_masked.nonzero()[:, 1].view(batch, num_masked)  # indices into the region
            positions = region[where]

            logits = step_logits(maskgit, ids, positions, self.context, self.context_mask, settings.guidance_scale)
            if settings.top_k is not None and settings.top_k < logits.shape[-1]:
                kth = logits.topk(settings.top_k, dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < kth, -math.inf)
            log_probs = logits.log_softmax(dim=-1)
            if settings.token_temperature == 0:
                sampled = log_probs.argmax(dim=-1)
            else:
                sampled = draw_categorical((log_probs / settings.token_temperature).softmax(dim=-1), self.generator)

            ids = ids.scatter(1, positions, sampled)
            confidence = confidence.scatter(1, where, log_probs.gather(-1, sampled[..., None])[..., 0])

            keep_masked = min(masked_count(step, settings.steps, total), num_masked - 1)
            if keep_masked == 0 and self.on_step is None:
                break  # all filled: no choice to make, no critic pass after the last step
            if settings.critic_strength > 0:
                # the critic may also send back tokens fixed at earlier steps: that is how it redoes mistakes
                scores = self.critic(ids, self.context, self.context_mask)[:, region].float()
                choice = (1 - settings.critic_strength) * confidence + settings.critic_strength * F.logsigmoid(-scores)
            else:
                choice = confidence.masked_fill(~still_masked, math.inf)  # plain MaskGIT: fixed tokens stay
            score = choice
            noise_scale = settings.temperature * (1 - (step + 1) / settings.steps)
            if noise_scale > 0 and keep_masked > 0:  # no draw when nothing is chosen: inspecting changes no seed
                choice = choice + noise_scale * _gumbel(choice.shape, self.generator, device)

            remask = torch.zeros_like(still_masked)
            if keep_masked > 0:
                remask.scatter_(1, choice.topk(keep_masked, dim=-1, largest=False).indices, True)
                ids[:, region] = ids[:, region].masked_fill(remask, maskgit.mask_id)
            if self.on_step is not None:
                back = remask & ~still_masked
                if sent_back and step == 0:
                    back = torch.ones_like(back)
                self._report(ids, region, ~remask & still_masked, back, score, phase)
        return ids

    def _report(self, ids: Tensor, region: Tensor, filled: Tensor, sent_back: Tensor, score: Tensor,
                phase: str) -> None:
        """StepState over the generated tokens (after the prefix); outside the region: untouched, score +inf."""
        local, shape = region - self.num_prefix, (ids.shape[0], ids.shape[1] - self.num_prefix)

        def spread(x: Tensor, outside) -> Tensor:
            return torch.full(shape, outside, dtype=x.dtype, device=x.device).index_copy(1, local, x)

        with torch.autocast(ids.device.type, enabled=False):  # the caller's code runs as it would outside
            self.on_step(StepState(self.steps_done, ids.clone(), spread(filled, False),
                                   spread(score.float(), math.inf), spread(sent_back, False), phase))
        self.steps_done += 1


def step_logits(maskgit: MaskGit, ids: Tensor, positions: Tensor, context: Tensor | None,
                context_mask: Tensor | None, guidance_scale: float) -> Tensor:
    """fp32 logits (b, k, num_tokens) at `positions` (b, k) of the window `ids` (b, n), with classifier-free
    guidance (uncond + s * (cond - uncond)) when there is a text and the scale is not 1. Fast path:
    `MaskGit.guided_logits_at`. Reference: both passes as one doubled batch, the text masked out in its second half,
    their logits mixed after the output layer."""
    if context is None or guidance_scale == 1.0:
        return maskgit.logits_at(ids, positions, context, context_mask).float()
    if fast_paths_enabled():
        return maskgit.guided_logits_at(ids, positions, context, context_mask, guidance_scale).float()
    if context_mask is None:
        context_mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
    logits = maskgit.logits_at(torch.cat((ids, ids)), torch.cat((positions, positions)), torch.cat((context, context)),
                               torch.cat((context_mask, torch.zeros_like(context_mask)))).float()
    cond, uncond = logits.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


def draw_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One index per row of `probs` (..., V), drawn with probability proportional to the row. Fast path:
    `draw_by_inverse_cdf`; reference: `torch.multinomial`, which on the CPU draws V exponentials per row (~8% of a
    small model's sampling time). Both draw from the same distribution, not the same indices."""
    if fast_paths_enabled():
        return draw_by_inverse_cdf(probs, generator)
    return torch.multinomial(probs.flatten(0, -2), 1, generator=generator).view(probs.shape[:-1])


def draw_by_inverse_cdf(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """`draw_categorical` with one uniform per row: the first entry whose cumulative sum reaches a level in
    (0, total] has cdf[i-1] < level <= cdf[i], so a nonzero probability, and it exists (1 * total rounds to total)."""
    cdf = probs.cumsum(-1)
    level = 1 - torch.rand(cdf.shape[:-1] + (1,), generator=generator, device=cdf.device, dtype=cdf.dtype)
    return torch.searchsorted(cdf, level * cdf[..., -1:]).squeeze(-1)


def _gumbel(shape, generator, device) -> Tensor:
    u = torch.rand(shape, generator=generator, device=device).clamp(1e-20, 1.0)
    return -torch.log((-torch.log(u)).clamp(min=1e-20))
