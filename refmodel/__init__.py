"""The reference lip-sync model: a Diff2Lip-style conditional diffusion model trained on talkbench shards.

Layering: refmodel sits above evalkit (it may import ``evalkit``, ``prep`` and ``talkbase``; evalkit never
imports refmodel). Shards are read only through ``prep.output.PrepOutput``.

Modules (import what you need; nothing heavy is imported here):

- ``refmodel.config``        named configurations (``tiny``, ``base``) as plain dataclasses
- ``refmodel.data``          ``ShardFrameDataset``: a torch ``IterableDataset`` streaming straight from Parquet
- ``refmodel.unet``          audio encoder + UNet with AdaGN (scale-shift) conditioning
- ``refmodel.diffusion``     noise schedule, training losses, DDIM sampling of the masked lower face
- ``refmodel.sync_training`` training of the contrastive lip/audio sync expert (InfoNCE with offset
  negatives) and the generator's sync loss; the expert's network, scorer and checkpoint format are
  ``evalkit.nets.sync_expert``
- ``refmodel.train``         ``train(prep_out, run_dir, config=...)`` with exact resume
- ``refmodel.sample``        ``sample_videos(...)``: submission videos (``<clip_id>.mp4``)
- ``refmodel.baselines``     ``copy-reference``, ``mean-fill`` and ``clip-mean`` submissions
- ``refmodel.submission``    shared paste-back / driving-audio / video-writing plumbing
- ``refmodel.evaluate``      held-out masked-region PSNR / LMD / sync comparison used for acceptance
- ``refmodel.testing``       small real shard sets for tests (real prep job on trimmed shared clips)
- ``refmodel.models``        the reference models by name (``diff2lip``, ``oneshot3dmm``): train / sample
  functions and the checkpoint ``kind`` ``talkbench sample`` dispatches on
- ``refmodel.oneshot``       ``oneshot3dmm``: one photo + any audio → a talking video (3DMM lip / blink
  codes, audio → lip, transformer-VAE pose + blinks, diffusion renderer; ``talkbench animate``)

The ``talkbench train`` / ``talkbench sample`` commands are ``talkbench.commands.refmodel``.
"""
