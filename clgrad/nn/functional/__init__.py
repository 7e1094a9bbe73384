"""clgrad.nn.functional: the stateless layer, activation, normalisation, loss, convolution,
pooling and attention functions, one module per group."""
from ...tensor.activation import (celu, elu, gelu, hardshrink, hardsigmoid, hardswish, hardtanh,
                                  leaky_relu, logsigmoid, mish, selu, silu, softplus, softshrink,
                                  softsign, threshold)
from ...tensor.shape import one_hot, pad
from .activation import (relu, relu_, relu6, sigmoid, tanh, tanhshrink, prelu, rrelu, glu,
                         log_softmax, softmax, softmin)
from .linear import (linear, bilinear, embedding, normalize, cosine_similarity, pairwise_distance)
from .dropout import (dropout, dropout1d, dropout2d, dropout3d, alpha_dropout)
from .normalization import (layer_norm, batch_norm, instance_norm, group_norm, rms_norm,
                            local_response_norm)
from .loss import (l1_loss, mse_loss, smooth_l1_loss, huber_loss, binary_cross_entropy,
                   binary_cross_entropy_with_logits, kl_div, nll_loss, cross_entropy,
                   cosine_embedding_loss, margin_ranking_loss, soft_margin_loss,
                   hinge_embedding_loss, _reduction)
from .conv import (conv_forward, conv_input_grad, conv_weight_grad, conv1d, conv2d,
                   conv_transpose1d, conv_transpose2d, pad_spatial)
from .pooling import (max_pool1d, max_pool2d, avg_pool1d, avg_pool2d, adaptive_avg_pool1d,
                      adaptive_avg_pool2d, adaptive_max_pool1d, adaptive_max_pool2d, max_unpool1d,
                      max_unpool2d, interpolate, upsample, pixel_shuffle, pixel_unshuffle)
from .attention import (scaled_dot_product_attention, multi_head_attention_forward)
from .pooling3d import (max_pool3d, avg_pool3d, adaptive_avg_pool3d, adaptive_max_pool3d,
                        unfold, fold)
from .conv3d import conv3d, conv_transpose3d
