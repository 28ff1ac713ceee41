# ruff: noqa: F821  -- run with `%run -i` in the page's namespace, which defines these names
"""The model Chapter 8's page trains (book/08_encoder_decoder.md and its deep dive
book/08_encoder_decoder/odd_sizes.md run this file with `%run -i`).

It lives outside the page on purpose: writing this wiring is the chapter's exercise, and a page's
source is shipped with the book (its download button), while this file is not. `%run -i` runs it in
the page's namespace, where `make_upsampler`, `match_size`, `nn`, `torch` and `F` are defined.
"""


def conv_bn_relu(c_in, c_out, stride=1):
    layers = [nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)]
    return nn.Sequential(*layers, nn.BatchNorm2d(c_out), nn.ReLU())


class TwoStageEncoderDecoder(nn.Module):
    def __init__(self, upsampler, in_channels=3, num_classes=4, width=16):
        super().__init__()
        self.encoder = nn.ModuleList([conv_bn_relu(in_channels, width), conv_bn_relu(width, 2 * width, stride=2),
                                      conv_bn_relu(2 * width, 4 * width, stride=2)])
        self.ups = nn.ModuleList([make_upsampler(upsampler, 4 * width, 2 * width),
                                  make_upsampler(upsampler, 2 * width, width)])
        self.fuse = nn.ModuleList([conv_bn_relu(4 * width, 2 * width), conv_bn_relu(2 * width, width)])
        self.head = nn.Conv2d(width, num_classes, kernel_size=1)

    def forward(self, x, trace=None):
        features = []
        for stage in self.encoder:
            x = stage(x)
            features.append(x)
            if trace is not None:
                trace.append(("encoder: 3×3 conv + BN + ReLU", x))
        x = features.pop()
        for up, fuse in zip(self.ups, self.fuse):
            skip = features.pop()
            x = match_size(up(x), skip)
            if trace is not None:
                trace.append(("decoder: upsample ×2, land on the skip's size", x))
            x = fuse(torch.cat([x, skip], dim=1))
            if trace is not None:
                trace.append(("decoder: concatenate the skip, 3×3 conv + BN + ReLU", x))
        x = self.head(x)
        if trace is not None:
            trace.append(("head: 1×1 conv, one logit per class", x))
        return x


def make_model(upsampler, width=16, seed=0):
    torch.manual_seed(seed)
    return TwoStageEncoderDecoder(upsampler, width=width)
