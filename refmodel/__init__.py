"""The reference lip-sync models, trained on talkbench shards: a Diff2Lip-style conditional diffusion model
(``diff2lip``) and LPIPS-AttnWav2Lip (``attnwav2lip``; ``attnwav2lip-msssim`` without the LPIPS weights).

Layering: refmodel sits above evalkit (it may import ``evalkit``, ``prep`` and ``talkbase``; evalkit never
imports refmodel). Shards are read only through ``prep.output.PrepOutput``.

Modules (import what you need; nothing heavy is imported here):

- ``refmodel.models``        the registry: name → train / sample / crop generator, dispatch on checkpoint kind
- ``refmodel.config``        Diff2Lip's named configurations (``tiny``, ``base``) as plain dataclasses
- ``refmodel.data``          ``ShardFrameDataset``: a torch ``IterableDataset`` streaming straight from Parquet
- ``refmodel.training``      the training loop both models share (EMA, checkpoints with exact resume, DDP)
- ``refmodel.unet``          audio encoders + UNet with AdaGN (scale-shift) conditioning, audio FiLM path
- ``refmodel.diffusion``     noise schedule, training losses, DDIM sampling (with audio guidance)
- ``refmodel.train``         Diff2Lip's loss and ``train(prep_out, run_dir, config=...)``
- ``refmodel.attnwav2lip``   the AttnWav2Lip model: config, CBAM U-Net, MS-SSIM / LPIPS, training, generator
- ``refmodel.sync_training`` training of the contrastive lip/audio sync expert (InfoNCE with offset
  negatives) and the generators' sync loss; the expert's network, scorer and checkpoint format are
  ``evalkit.nets.sync_expert``
- ``refmodel.sample``        crop generators and ``sample_videos(...)``: submission videos (``<clip_id>.mp4``)
- ``refmodel.baselines``     ``copy-reference``, ``mean-fill`` and ``clip-mean`` submissions
- ``refmodel.submission``    shared paste-back / driving-audio / video-writing plumbing
- ``refmodel.lipsync``       mouth opening from dlib landmarks (videos, crops) and block-bootstrap statistics
- ``refmodel.evaluate``      held-out PSNR / LMD / sync / mouth-opening correlation (true, shuffled and
  another clip's audio) against the baselines, with intervals: the acceptance measure
- ``refmodel.testing``       small real shard sets for tests (real prep job on trimmed shared clips)
- ``refmodel.models``        the reference models by name (``diff2lip``, ``oneshot3dmm``): train / sample
  functions and the checkpoint ``kind`` ``talkbench sample`` dispatches on
- ``refmodel.oneshot``       ``oneshot3dmm``: one photo + any audio → a talking video (3DMM lip / blink
  codes, audio → lip, transformer-VAE pose + blinks, diffusion renderer; ``talkbench animate``)

The ``talkbench train`` / ``talkbench sample`` commands are ``talkbench.commands.refmodel``.
"""
