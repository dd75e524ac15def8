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

The ``talkbench train`` / ``talkbench sample`` commands are ``talkbench.commands.refmodel``.
"""
