// NCSN++ / DDPM++ construction and forward pass. Both walk the same flat module list with
// one index, exactly as the reference does, so module i here is `all_modules.i` there
// (parameterless resamplers included: they occupy an index too).
#include "scorch/models/ncsnpp.h"

#include <algorithm>
#include <cmath>

namespace scorch::models {

using namespace ncsnpp;

namespace {
bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }
}  // namespace

torch::Tensor reference_sigmas(const ModelConfig& m) {
  return torch::linspace(std::log(m.sigma_max), std::log(m.sigma_min), m.num_scales, torch::kFloat64).exp();
}

NCSNppImpl::NCSNppImpl(const Config& cfg) : cfg_(cfg), act_(make_act(cfg.model.nonlinearity)) {
  const auto& m = cfg.model;
  const int64_t nf = m.nf;
  const int64_t num_res = static_cast<int64_t>(m.ch_mult.size());
  for (int64_t i = 0; i < num_res; ++i) all_resolutions_.push_back(cfg.data.image_size >> i);

  // The reference registers these as a buffer; here they follow the config (not the
  // checkpoint), so sampling may change model.num_scales. Import checks the two agree.
  sigmas_ = reference_sigmas(m);

  const bool fourier = m.embedding_type == "fourier";
  const bool biggan = m.resblock_type == "biggan";
  const bool cat = m.progressive_combine == "cat";
  const std::string& prog = m.progressive;
  const std::string& prog_in = m.progressive_input;
  const int64_t temb_dim = nf * 4;

  all_modules_ = torch::nn::ModuleList();
  auto& L = *all_modules_;
  if (fourier) L.push_back(GaussianFourierProjection(nf, m.fourier_scale));
  const int64_t embed_dim = fourier ? 2 * nf : nf;
  if (m.conditional) {
    L.push_back(dense(embed_dim, temb_dim));
    L.push_back(dense(temb_dim, temb_dim));
  }

  auto resblock = [&](int64_t in, int64_t out, bool up, bool down) {
    ResBlockOptions o;
    o.biggan = biggan;
    o.in_ch = in;
    o.out_ch = out;
    o.temb_dim = temb_dim;
    o.up = up;
    o.down = down;
    o.dropout = m.dropout;
    o.fir = m.fir;
    o.fir_kernel = m.fir_kernel;
    o.skip_rescale = m.skip_rescale;
    o.init_scale = m.init_scale;
    return ResnetBlockpp(o, act_);
  };
  auto attn = [&](int64_t ch) { return AttnBlockpp(ch, m.skip_rescale, m.init_scale); };
  auto resample = [&](int64_t in, int64_t out, bool with_conv) {
    ResampleOptions o;
    o.in_ch = in;
    o.out_ch = out;
    o.with_conv = with_conv;
    o.fir = m.fir;
    o.fir_kernel = m.fir_kernel;
    return o;
  };

  const int64_t channels = cfg.data.num_channels;
  int64_t input_pyramid_ch = channels;
  L.push_back(conv3x3(channels, nf));
  std::vector<int64_t> hs_c{nf};
  int64_t in_ch = nf;
  for (int64_t lvl = 0; lvl < num_res; ++lvl) {
    for (int64_t b = 0; b < m.num_res_blocks; ++b) {
      const int64_t out_ch = nf * m.ch_mult[lvl];
      L.push_back(resblock(in_ch, out_ch, false, false));
      in_ch = out_ch;
      if (contains(m.attn_resolutions, all_resolutions_[lvl])) L.push_back(attn(in_ch));
      hs_c.push_back(in_ch);
    }
    if (lvl != num_res - 1) {
      if (biggan) {
        L.push_back(resblock(in_ch, in_ch, false, true));
      } else {
        L.push_back(Downsample(resample(in_ch, 0, m.resamp_with_conv)));
      }
      if (prog_in == "input_skip") {
        L.push_back(Downsample(resample(input_pyramid_ch, 0, false)));
        L.push_back(Combine(input_pyramid_ch, in_ch, m.progressive_combine));
        if (cat) in_ch *= 2;
      } else if (prog_in == "residual") {
        L.push_back(Downsample(resample(input_pyramid_ch, in_ch, true)));
        input_pyramid_ch = in_ch;
      }
      hs_c.push_back(in_ch);
    }
  }

  in_ch = hs_c.back();
  L.push_back(resblock(in_ch, in_ch, false, false));
  L.push_back(attn(in_ch));
  L.push_back(resblock(in_ch, in_ch, false, false));

  int64_t pyramid_ch = 0;
  for (int64_t lvl = num_res - 1; lvl >= 0; --lvl) {
    for (int64_t b = 0; b < m.num_res_blocks + 1; ++b) {
      const int64_t out_ch = nf * m.ch_mult[lvl];
      L.push_back(resblock(in_ch + hs_c.back(), out_ch, false, false));
      hs_c.pop_back();
      in_ch = out_ch;
    }
    if (contains(m.attn_resolutions, all_resolutions_[lvl])) L.push_back(attn(in_ch));
    if (prog != "none") {
      if (lvl == num_res - 1) {
        L.push_back(group_norm(in_ch));
        if (prog == "output_skip") {
          L.push_back(conv3x3(in_ch, channels, m.init_scale));
          pyramid_ch = channels;
        } else {
          L.push_back(conv3x3(in_ch, in_ch));
          pyramid_ch = in_ch;
        }
      } else if (prog == "output_skip") {
        L.push_back(Upsample(resample(pyramid_ch, 0, false)));
        L.push_back(group_norm(in_ch));
        L.push_back(conv3x3(in_ch, channels, m.init_scale));
        pyramid_ch = channels;
      } else {
        L.push_back(Upsample(resample(pyramid_ch, in_ch, true)));
        pyramid_ch = in_ch;
      }
    }
    if (lvl != 0) {
      if (biggan) {
        L.push_back(resblock(in_ch, in_ch, true, false));
      } else {
        L.push_back(Upsample(resample(in_ch, 0, m.resamp_with_conv)));
      }
    }
  }
  SCORCH_CHECK(hs_c.empty(), "ncsnpp: {} skip connections left unmatched", hs_c.size());

  if (prog != "output_skip") {
    L.push_back(group_norm(in_ch));
    L.push_back(conv3x3(in_ch, channels, m.init_scale));
  }
  register_module("all_modules", all_modules_);
  if (m.num_classes > 0) {
    SCORCH_CHECK(m.conditional, "model.num_classes = {} needs model.conditional = true (the class embedding joins the "
                 "time embedding)", m.num_classes);
    class_embed_ = register_module("class_embed", ClassEmbedding(m.num_classes, nf * 4));
  }
}

torch::Tensor NCSNppImpl::forward(const torch::Tensor& x_in, const torch::Tensor& noise_level,
                                  const torch::Tensor& class_labels) {
  const auto& labels = noise_level;
  const auto& m = cfg_.model;
  const int64_t num_res = static_cast<int64_t>(m.ch_mult.size());
  const bool biggan = m.resblock_type == "biggan";
  const std::string& prog = m.progressive;
  const std::string& prog_in = m.progressive_input;
  const double sqrt2 = std::sqrt(2.0);
  size_t i = 0;

  torch::Tensor temb, used_sigmas;
  if (m.embedding_type == "fourier") {
    used_sigmas = labels;
    temb = at<GaussianFourierProjectionImpl>(i++)->forward(labels.log());
  } else {
    if (m.scale_by_sigma)
      used_sigmas = sigmas_.to(labels.device()).index_select(0, labels.to(torch::kInt64)).to(x_in.dtype());
    temb = positional_embedding(labels, m.nf);
  }
  if (m.conditional) {
    temb = at<torch::nn::LinearImpl>(i++)->forward(temb);
    temb = at<torch::nn::LinearImpl>(i++)->forward(act_(temb));
    temb = add_class_embedding(class_embed_, temb, class_labels);
  } else {
    SCORCH_CHECK(!class_labels.defined(), "class labels given to an ncsnpp network with model.conditional = false");
    temb = torch::Tensor();  // unconditional: the blocks ignore time (their Dense_0 exists but is unused)
  }
  auto res = [&](const torch::Tensor& h) { return at<ResnetBlockppImpl>(i++)->forward(h, temb); };

  auto x = cfg_.data.centered ? x_in : 2.0 * x_in - 1.0;
  torch::Tensor input_pyramid = prog_in != "none" ? x : torch::Tensor();

  std::vector<torch::Tensor> hs{at<torch::nn::Conv2dImpl>(i++)->forward(x)};
  for (int64_t lvl = 0; lvl < num_res; ++lvl) {
    for (int64_t b = 0; b < m.num_res_blocks; ++b) {
      auto h = res(hs.back());
      if (contains(m.attn_resolutions, h.size(-1))) h = at<AttnBlockppImpl>(i++)->forward(h);
      hs.push_back(h);
    }
    if (lvl != num_res - 1) {
      auto h = biggan ? res(hs.back()) : at<DownsampleImpl>(i++)->forward(hs.back());
      if (prog_in == "input_skip") {
        input_pyramid = at<DownsampleImpl>(i++)->forward(input_pyramid);
        h = at<CombineImpl>(i++)->forward(input_pyramid, h);
      } else if (prog_in == "residual") {
        input_pyramid = at<DownsampleImpl>(i++)->forward(input_pyramid);
        input_pyramid = m.skip_rescale ? (input_pyramid + h) / sqrt2 : input_pyramid + h;
        h = input_pyramid;
      }
      hs.push_back(h);
    }
  }

  auto h = hs.back();
  h = res(h);
  h = at<AttnBlockppImpl>(i++)->forward(h);
  h = res(h);

  torch::Tensor pyramid;
  for (int64_t lvl = num_res - 1; lvl >= 0; --lvl) {
    for (int64_t b = 0; b < m.num_res_blocks + 1; ++b) {
      h = res(torch::cat({h, hs.back()}, 1));
      hs.pop_back();
    }
    if (contains(m.attn_resolutions, h.size(-1))) h = at<AttnBlockppImpl>(i++)->forward(h);
    if (prog != "none") {
      if (lvl == num_res - 1) {
        pyramid = act_(apply_norm(*at<torch::nn::GroupNormImpl>(i++), h));
        pyramid = at<torch::nn::Conv2dImpl>(i++)->forward(pyramid);
      } else if (prog == "output_skip") {
        pyramid = at<UpsampleImpl>(i++)->forward(pyramid);
        auto ph = act_(apply_norm(*at<torch::nn::GroupNormImpl>(i++), h));
        ph = at<torch::nn::Conv2dImpl>(i++)->forward(ph);
        pyramid = pyramid + ph;
      } else {
        pyramid = at<UpsampleImpl>(i++)->forward(pyramid);
        pyramid = m.skip_rescale ? (pyramid + h) / sqrt2 : pyramid + h;
        h = pyramid;
      }
    }
    if (lvl != 0) h = biggan ? res(h) : at<UpsampleImpl>(i++)->forward(h);
  }

  if (prog == "output_skip") {
    h = pyramid;
  } else {
    h = act_(apply_norm(*at<torch::nn::GroupNormImpl>(i++), h));
    h = at<torch::nn::Conv2dImpl>(i++)->forward(h);
  }
  SCORCH_CHECK(i == all_modules_->size(), "ncsnpp: forward used {} of {} modules", i, all_modules_->size());
  if (m.scale_by_sigma) h = h / used_sigmas.reshape({-1, 1, 1, 1});
  return h;
}

}  // namespace scorch::models
