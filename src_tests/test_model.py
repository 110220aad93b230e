import pytest
import torch

from napari_attunet.model import AttentionUNet


@pytest.mark.parametrize("height,width", [(64, 64), (65, 97), (33, 50)])
def test_output_and_attention_shapes_follow_odd_inputs(height, width):
    model = AttentionUNet(base_channels=4, depth=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width), return_attention=True)
    assert out.logits.shape == (2, 2, height, width)
    assert len(out.attention) == model.num_gates == 3
    for k, alpha in enumerate(out.attention):
        assert alpha.shape == (2, 1, -(-height // 2**k), -(-width // 2**k))
        assert float(alpha.min()) >= 0.0 and float(alpha.max()) <= 1.0


def test_attention_is_only_returned_on_request():
    model = AttentionUNet(base_channels=4, depth=3).eval()
    assert model(torch.randn(1, 3, 32, 32)).attention == []


def test_gradients_reach_every_gate():
    model = AttentionUNet(base_channels=4, depth=4)
    out = model(torch.randn(2, 3, 64, 64))
    out.logits.square().mean().backward()
    for gate in model.gates:
        for name in ("theta", "phi", "psi"):
            grad = getattr(gate, name).weight.grad
            assert grad is not None and float(grad.abs().sum()) > 0, name


def test_config_rebuilds_the_network_and_plain_variant_has_no_gates():
    model = AttentionUNet(base_channels=8, depth=4, norm="group")
    clone = type(model)(**model.config)
    assert clone.config == model.config
    assert clone.load_state_dict(model.state_dict()) is not None
    plain = AttentionUNet(**{**model.config, "attention": False})
    assert plain.num_gates == 0 and not plain.config["attention"]
    assert plain(torch.randn(1, 3, 32, 32), return_attention=True).attention == []


def test_parameter_counts_of_the_shipped_configuration():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    gated = AttentionUNet(base_channels=16, depth=5, norm="batch")
    plain = AttentionUNet(base_channels=16, depth=5, norm="batch", attention=False)
    assert count(plain) == 1_942_594
    assert count(gated) == 2_030_358
    # The gates add under 5% parameters.
    assert count(gated) / count(plain) < 1.05


def test_deep_supervision_heads_only_in_training_mode():
    model = AttentionUNet(base_channels=4, depth=4, deep_supervision=True)
    out = model(torch.randn(1, 3, 40, 40))
    assert len(out.deep_supervision) == 2
    assert all(d.shape == (1, 2, 40, 40) for d in out.deep_supervision)
    assert model.eval()(torch.randn(1, 3, 40, 40)).deep_supervision == []
    # Inference asks for them to judge its own confidence.
    assert len(model.eval()(torch.randn(1, 3, 40, 40), return_deep=True).deep_supervision) == 2


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match="expected input of shape"):
        AttentionUNet(base_channels=4, depth=3)(torch.randn(1, 1, 32, 32))


def test_unknown_norm_is_rejected():
    with pytest.raises(ValueError, match="norm must be one of"):
        AttentionUNet(norm="layer")
