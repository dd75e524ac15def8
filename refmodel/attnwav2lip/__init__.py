"""LPIPS-AttnWav2Lip (Chen et al., Speech Communication 2023), the second reference model (seed 002).

A GAN-free U-Net over the masked target ⊕ a reference frame with residual CBAM blocks (channel + spatial
attention, :mod:`.net`), the audio injected by a semantic-alignment module (AdaIN: instance-normalised
visual features, scale/shift from the audio vector), trained with L1 + the in-domain sync-expert loss + a
perceptual loss (:mod:`.losses`): LPIPS (AlexNet) when its weights are found (``talkbase.weights`` model
``lpips-alex``), otherwise MS-SSIM — and then the model is *named* ``attnwav2lip-msssim``, never LPIPS.

- ``refmodel.attnwav2lip.config``  ``W2LConfig``, ``CONFIGS`` (``tiny`` CPU, ``base`` GPU), ``get_config``
- ``refmodel.attnwav2lip.net``     ``AttnWav2Lip`` (``forward(masked, reference, mel) -> lower half``)
- ``refmodel.attnwav2lip.losses``  ``ms_ssim``, ``LPIPS``, ``load_lpips``, ``perceptual_name``
- ``refmodel.attnwav2lip.train``   ``train`` (the shared loop of ``refmodel.training``), ``AttnWav2LipGenerator``
"""
