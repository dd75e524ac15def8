"""``oneshot3dmm``: the one-shot reference model — one photo + any audio → a talking video, with 3DMM-
disentangled head pose and blinks (the design of the ICASSP 2023 diffusion talking-face system; our own
implementation). Trained from prep shards that hold the 3DMM columns.

Parts (one module each; trained in this order by :func:`refmodel.oneshot.train.train`):

1. ``disentangle`` — a fully-connected autoencoder splits ``mm_exp`` into a lip-motion code and a blink
   code (blink supervised by the eye-aspect-ratio drop, lips by the mouth shape, decorrelated);
2. ``lipsync``     — deterministic audio → lip code, trained with the sync expert's InfoNCE (offset
   negatives) plus L1;
3. ``motion``      — a transformer VAE over pose + blink sequences, sampled into long smooth sequences;
4. ``renderer``    — a conditional DDPM: source face + (lip, blink, source codes, relative pose) → the
   face crop's residual; one x_T per video (``render_train``: its training pairs and inference).

Around them: ``features`` (series and measures from the shards), ``stages`` (the resumable loop),
``composite`` (head motion and paste-back into the photo's frame), ``generate`` (one video from one
face), ``animate`` (photo + audio file), ``sample`` (benchmark submissions), ``measure`` (dlib-based
face / mouth / blink / head-motion measures of a video). ``config``: ``tiny`` (CPU) and ``base`` (GPU).
"""
