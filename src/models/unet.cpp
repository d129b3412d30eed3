// The small U-Net. Module names are stable ("down1_res0.conv0.weight", "mid_attn.q.bias")
// because they are the checkpoint's dataset names.
#include "scorch/models/unet.h"

#include <cmath>

#include "scorch/core/error.h"

namespace scorch::models {

namespace nnf = torch::nn::functional;

int64_t num_groups(int64_t channels) { return std::max<int64_t>(1, std::min<int64_t>(channels / 4, 32)); }

namespace {
torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, double init = 1.0) {
  auto c = torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2));
  default_init(c->weight, c->bias, init);
  return c;
}
torch::nn::GroupNorm gn(int64_t ch) { return torch::nn::GroupNorm(torch::nn::GroupNormOptions(num_groups(ch), ch).eps(1e-6)); }
const double kSkipScale = 1.0 / std::sqrt(2.0);
}  // namespace

ResBlockImpl::ResBlockImpl(int64_t in, int64_t out, int64_t temb_dim, double dropout) {
  norm0_ = register_module("norm0", gn(in));
  conv0_ = register_module("conv0", conv(in, out, 3));
  dense_ = register_module("dense", torch::nn::Linear(temb_dim, out));
  default_init(dense_->weight, dense_->bias);
  norm1_ = register_module("norm1", gn(out));
  drop_ = register_module("dropout", torch::nn::Dropout(dropout));
  conv1_ = register_module("conv1", conv(out, out, 3, 1, /*init=*/0.0));
  if (in != out) skip_ = register_module("skip", conv(in, out, 1));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  auto h = conv0_(torch::silu(apply_norm(*norm0_, x)));
  h = h + dense_(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1);
  h = conv1_(drop_(torch::silu(apply_norm(*norm1_, h))));
  auto s = skip_ ? skip_(x) : x;
  return (s + h) * kSkipScale;
}

AttnBlockImpl::AttnBlockImpl(int64_t ch) {
  norm_ = register_module("norm", gn(ch));
  q_ = register_module("q", conv(ch, ch, 1));
  k_ = register_module("k", conv(ch, ch, 1));
  v_ = register_module("v", conv(ch, ch, 1));
  out_ = register_module("out", conv(ch, ch, 1, 1, /*init=*/0.0));
}

torch::Tensor AttnBlockImpl::forward(const torch::Tensor& x) {
  int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto h = apply_norm(*norm_, x);
  auto q = q_(h).reshape({B, C, H * W}), k = k_(h).reshape({B, C, H * W}), v = v_(h).reshape({B, C, H * W});
  auto w = torch::softmax(torch::bmm(q.transpose(1, 2), k) / std::sqrt(static_cast<double>(C)), -1);  // [B,HW,HW]
  auto o = torch::bmm(v, w.transpose(1, 2)).reshape({B, C, H, W});
  return (x + out_(o)) * kSkipScale;
}

UNetImpl::UNetImpl(const Config& cfg) : scale_by_sigma_(cfg.model.scale_by_sigma) {
  const auto& m = cfg.model;
  const int64_t nf = m.nf, L = static_cast<int64_t>(m.ch_mult.size()), C = cfg.data.num_channels;
  int64_t size = cfg.data.image_size;
  for (int64_t i = 0; i + 1 < L; ++i) {
    SCORCH_CHECK(size % 2 == 0,
                 "data.image_size = {} cannot be halved {} times for model.ch_mult of {} levels (level {} is {}x{})",
                 cfg.data.image_size, L - 1, L, i, size, size);
    size /= 2;
  }
  for (auto r : m.attn_resolutions) {
    bool reached = false;
    for (int64_t i = 0, s = cfg.data.image_size; i < L; ++i, s /= 2) reached |= (s == r);
    SCORCH_CHECK(reached, "model.attn_resolutions contains {}, which the U-Net never reaches from {}x{}", r,
                 cfg.data.image_size, cfg.data.image_size);
  }
  auto has_attn = [&](int64_t res) {
    return std::find(m.attn_resolutions.begin(), m.attn_resolutions.end(), res) != m.attn_resolutions.end();
  };
  const int64_t temb_dim = 4 * nf;
  temb_ = register_module("temb", TimeEmbedding(cfg, temb_dim));
  if (m.num_classes > 0) class_embed_ = register_module("class_embed", ClassEmbedding(m.num_classes, temb_dim));
  conv_in_ = register_module("conv_in", conv(C, nf, 3));

  std::vector<int64_t> skip_ch{nf};
  int64_t ch = nf, res = cfg.data.image_size;
  for (int64_t i = 0; i < L; ++i) {
    Level lv;
    int64_t out = nf * m.ch_mult[static_cast<size_t>(i)];
    for (int64_t j = 0; j < m.num_res_blocks; ++j) {
      lv.res.push_back(register_module(fmt::format("down{}_res{}", i, j), ResBlock(ch, out, temb_dim, m.dropout)));
      ch = out;
      if (has_attn(res)) lv.attn.push_back(register_module(fmt::format("down{}_attn{}", i, j), AttnBlock(ch)));
      skip_ch.push_back(ch);
    }
    if (i + 1 < L) {
      lv.resample = register_module(fmt::format("down{}_downsample", i), conv(ch, ch, 3, 2));
      skip_ch.push_back(ch);
      res /= 2;
    }
    down_.push_back(std::move(lv));
  }
  mid0_ = register_module("mid_res0", ResBlock(ch, ch, temb_dim, m.dropout));
  mid_attn_ = register_module("mid_attn", AttnBlock(ch));
  mid1_ = register_module("mid_res1", ResBlock(ch, ch, temb_dim, m.dropout));
  for (int64_t i = L - 1; i >= 0; --i) {
    Level lv;
    int64_t out = nf * m.ch_mult[static_cast<size_t>(i)];
    for (int64_t j = 0; j <= m.num_res_blocks; ++j) {
      int64_t in = ch + skip_ch.back();
      skip_ch.pop_back();
      lv.res.push_back(register_module(fmt::format("up{}_res{}", i, j), ResBlock(in, out, temb_dim, m.dropout)));
      ch = out;
      if (has_attn(res)) lv.attn.push_back(register_module(fmt::format("up{}_attn{}", i, j), AttnBlock(ch)));
    }
    if (i > 0) {
      lv.resample = register_module(fmt::format("up{}_upsample", i), conv(ch, ch, 3));
      res *= 2;
    }
    up_.push_back(std::move(lv));
  }
  norm_out_ = register_module("norm_out", gn(ch));
  conv_out_ = register_module("conv_out", conv(ch, C, 3, 1, /*init=*/0.0));
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& noise_level,
                                const torch::Tensor& class_labels) {
  auto temb = add_class_embedding(class_embed_, temb_(noise_level), class_labels);
  std::vector<torch::Tensor> hs{conv_in_(x)};
  auto h = hs.back();
  for (auto& lv : down_) {
    for (size_t j = 0; j < lv.res.size(); ++j) {
      h = lv.res[j](h, temb);
      if (!lv.attn.empty()) h = lv.attn[j](h);
      hs.push_back(h);
    }
    if (lv.resample) {
      h = lv.resample(h);
      hs.push_back(h);
    }
  }
  h = mid1_(mid_attn_(mid0_(h, temb)), temb);
  for (auto& lv : up_) {
    for (size_t j = 0; j < lv.res.size(); ++j) {
      h = lv.res[j](torch::cat({h, hs.back()}, 1), temb);
      hs.pop_back();
      if (!lv.attn.empty()) h = lv.attn[j](h);
    }
    if (lv.resample) {
      h = lv.resample(nnf::interpolate(
          h, nnf::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest)));
    }
  }
  h = conv_out_(torch::silu(apply_norm(*norm_out_, h)));
  if (scale_by_sigma_) h = h / noise_level.reshape({-1, 1, 1, 1});
  return h;
}

}  // namespace scorch::models
