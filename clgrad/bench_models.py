"""The ported-example kind of model of the scoreboard's jit section (clgrad/bench.py), built from
either library's modules: `lib` is clgrad or torch."""
from __future__ import annotations


def lstm_lm(lib, vocab, embed, hidden, layers, device=None):
    """Embedding -> LSTM -> Linear over the vocabulary (PyTorch's word_language_model,
    examples/char_lstm.py)."""
    kw = {"device": device} if device is not None else {}
    L = lib.nn

    class LSTMLM(L.Module):
        def __init__(self):
            super().__init__()
            self.embed = L.Embedding(vocab, embed, **kw)
            self.lstm = L.LSTM(embed, hidden, num_layers=layers, batch_first=True, **kw)
            self.head = L.Linear(hidden, vocab, **kw)

        def forward(self, idx):                                   # (B, T)
            out, _ = self.lstm(self.embed(idx))                   # (B, T, E) -> (B, T, H)
            return self.head(out)                                 # (B, T, V)
    return LSTMLM()


def vae(lib, d_in, hidden, latent, device=None):
    """PyTorch's examples/vae model: 784-400-(20, 20) encoder, 20-400-784 decoder."""
    kw = {"device": device} if device is not None else {}
    L = lib.nn

    class VAE(L.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = L.Linear(d_in, hidden, **kw)
            self.fc21 = L.Linear(hidden, latent, **kw)
            self.fc22 = L.Linear(hidden, latent, **kw)
            self.fc3 = L.Linear(latent, hidden, **kw)
            self.fc4 = L.Linear(hidden, d_in, **kw)

        def forward(self, x):                                     # (B, 784)
            h = self.fc1(x).relu()                                # (B, 400)
            mu, logvar = self.fc21(h), self.fc22(h)               # (B, 20) each
            z = mu + lib.randn_like(mu) * (0.5 * logvar).exp()    # reparameterization
            return self.fc4(self.fc3(z).relu()).sigmoid(), mu, logvar   # (B, 784)
    return VAE()
