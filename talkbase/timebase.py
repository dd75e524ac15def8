"""The time base every stored array and every score is expressed in: 25 fps video, 16 kHz mono audio.

Wav2Lip's mel (hop 200 samples = 80 steps per second) gives 3.2 mel steps per video frame and a 16-step
window per 5 frames; SyncNet's MFCC (10 ms steps) gives 4 rows per frame and 20 per 5-frame window.
"""
FPS = 25.0
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = int(SAMPLE_RATE / FPS)  # 640

MEL_HOP = 200  # samples
MEL_STEPS_PER_SECOND = SAMPLE_RATE / MEL_HOP  # 80
MEL_WINDOW = 16  # mel steps under one 5-frame window (Wav2Lip's syncnet_mel_step_size)
MFCC_PER_FRAME = 4  # python_speech_features' 10 ms winstep
SYNC_WINDOW = 5  # video frames per SyncNet / sync-expert window

__all__ = ["FPS", "SAMPLE_RATE", "SAMPLES_PER_FRAME", "MEL_HOP", "MEL_STEPS_PER_SECOND", "MEL_WINDOW",
           "MFCC_PER_FRAME", "SYNC_WINDOW"]
