"""Two training steps of tiny models that reach every nn kernel family (conv, pooling, norms,
dropout, embedding, LSTM, attention, losses, the fused optimizers), for tools/oclgrind_check.sh:
under Oclgrind the point is that every kernel runs, at sizes an interpreter gets through."""
import clgrad
import clgrad.nn as nn
import clgrad.nn.functional as F


def cnn():
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, groups=1), nn.AvgPool2d(2),
                      nn.Flatten(), nn.Dropout(0.5), nn.Linear(4, 3))
    return m, clgrad.randn(2, 1, 8, 8), clgrad.tensor([0, 2]), F.cross_entropy


def lstm():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(7, 4)
            self.rnn = nn.LSTM(4, 5, batch_first=True)
            self.out = nn.Linear(5, 7)

        def forward(self, x):
            h, _ = self.rnn(self.emb(x))
            return self.out(h).flatten(0, 1)
    return Net(), clgrad.tensor([[1, 2, 3], [4, 5, 6]]), clgrad.tensor([2, 3, 4, 5, 6, 0]), \
        F.cross_entropy


def transformer():
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1, batch_first=True)
    m = nn.Sequential(layer, nn.LayerNorm(8), nn.Flatten(), nn.Linear(24, 2))
    return m, clgrad.randn(2, 3, 8), clgrad.randn(2, 2), F.mse_loss


def main():
    clgrad.manual_seed(0)
    for build, opt in ((cnn, clgrad.optim.SGD), (lstm, clgrad.optim.AdamW),
                       (transformer, clgrad.optim.Adam)):
        model, x, y, loss_fn = build()
        kw = {"lr": 0.01, "momentum": 0.9} if opt is clgrad.optim.SGD else {"lr": 1e-3}
        o = opt(model.parameters(), **kw)
        for _ in range(2):
            o.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            o.step()
        print(f"{build.__name__}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
