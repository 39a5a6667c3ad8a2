"""dsnet: DSResNet, a two-input encoder-decoder that predicts the foreground's mask and the
scene's depth from a background image (BG) and the same scene with a foreground (BG-FG)."""
__version__ = "0.1.0"
