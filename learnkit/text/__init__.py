"""learnkit.text: tokenization, text loaders, AWD-LSTM, the ULMFiT flow (filled in below)."""
