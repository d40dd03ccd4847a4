"""Stable Diffusion features after DDIM inversion (FaceShot Sec. 3.2, Eq. 2-3).

What is computed, exactly (paper + reference code, see ``docs/faceshot-method.md``):

1. The image is resized to ``image_size`` x ``image_size`` (512; the whole image, no crop, so a
   feature cell maps back to the image by scaling each axis), scaled to [-1, 1] and encoded by
   the VAE.  The latent is *sampled* from the VAE posterior (mean + std * noise), not its mean,
   with noise from a CPU generator seeded ``seed`` (42) *per image*, so an image gets the same
   latent alone or in any batch, on any device; then multiplied by the VAE's scaling factor.
2. DDIM inversion with ``DDIMInverseScheduler`` built from the model's own scheduler config
   (betas, ``set_alpha_to_one`` = False and ``clip_sample`` = False for SD 1.5 and 2.1,
   ``prediction_type``: epsilon for 1.5, v for 2.1), with ``timestep_spacing="leading"`` and
   ``steps_offset=1`` imposed: on the 50-step schedule the timesteps are 1, 21, 41, ..., 981,
   and t=301 is the 16th.  Text condition "a photo of a face" (its CLIP text embedding is
   computed once and reused), no classifier-free guidance.
3. The feature is the output of ``unet.up_blocks[1]`` (1280 x 32 x 32 for a 512 input; the
   paper's "layer l=6", the DIFT convention) during the UNet call *with timestep 301*.  That
   call is the 16th; its input latent is the one produced by the 15th inversion step (the step
   at t=281), i.e. z0 inverted to noise level alpha_bar[281] - this is the paper's
   eps_theta(z^{t-1}, t-1, c, c') with t-1 = 301 in its notation.  Inversion stops there: the
   scheduler step at t=301 is never taken (its output is not needed), and the UNet call itself
   is cut short by raising from the block's forward hook, so the decoder blocks after
   ``up_blocks[1]`` (the most expensive, highest-resolution ones) do not run.  Exactly 16 UNet
   calls per batch, exposed as :attr:`DiffusionFeatureExtractor.last_unet_calls`.
4. IP-Adapter (the paper's setting, SD 1.5 + ``ip-adapter_sd15``: 4 image tokens, scale 1.0):
   ``prompts[i]`` - the *other* image of Eq. 3 - goes through the CLIP ViT-H-14 image encoder,
   the adapter's image projection, and the decoupled cross-attention of every ``attn2``.  An
   image given no prompt in IP-Adapter mode gets a zero CLIP embedding: this is IP-Adapter's
   own "no image" condition (it was trained with the image embedding zeroed at random for
   classifier-free guidance, and diffusers uses zeros as the negative image embedding), and it
   keeps every batch the same shape.  Without an IP-Adapter (the reference code's default,
   SD 2.1) prompts are ignored and ``spec.image_prompt`` is None.

One module per job, imported one way (schedule, ip_adapter, cache, checkpoint <- extractor):

* :mod:`.schedule` - the inverse DDIM schedule on FaceShot's timestep grid, block channels;
* :mod:`.ip_adapter` - reading, checking and attaching the released IP-Adapter checkpoint
  with diffusers' own loader, so a wrong file fails with a clear message;
* :mod:`.cache` - the feature cache (in memory, LRU; optionally on disk as safetensors) under a
  key of everything that determines a map, so the gallery's and the reference's features are
  computed once;
* :mod:`.checkpoint` - the UNet, VAE, text encoder and tokenizer of a located checkpoint;
* :mod:`.extractor` - :class:`DiffusionFeatureExtractor`, which runs steps 1-4.

torch and diffusers are imported lazily: importing this package costs nothing.
"""

from faceshot_core.matching.diffusion.cache import CacheKey, FeatureCache, array_digest
from faceshot_core.matching.diffusion.extractor import DEFAULT_PROMPT, DiffusionFeatureExtractor
from faceshot_core.matching.diffusion.ip_adapter import (
    IPAdapterStateDict,
    attach_ip_adapter,
    check_ip_adapter_layout,
    cross_attention_layers,
    has_ip_adapter,
    load_ip_adapter_state_dict,
)
from faceshot_core.matching.diffusion.schedule import (
    block_channels,
    inverse_scheduler,
    inversion_timesteps,
)

__all__ = [
    "DEFAULT_PROMPT",
    "CacheKey",
    "DiffusionFeatureExtractor",
    "FeatureCache",
    "IPAdapterStateDict",
    "array_digest",
    "attach_ip_adapter",
    "block_channels",
    "check_ip_adapter_layout",
    "cross_attention_layers",
    "has_ip_adapter",
    "inverse_scheduler",
    "inversion_timesteps",
    "load_ip_adapter_state_dict",
]
