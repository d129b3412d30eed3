// Shared model pieces: embeddings, initialisation, parameter counting and the factory.
#include "scorch/models/model.h"

#include <cmath>

#include "scorch/core/error.h"
#include "scorch/core/flops.h"
#include "scorch/core/names.h"
#include "scorch/models/score_fn.h"
#include "scorch/sde/variants.h"
#include "scorch/models/mlp.h"
#include "scorch/models/ncsnpp.h"
#include "scorch/models/unet.h"

namespace scorch::models {

ScoreNetPtr make_model(const Config& cfg) {
  const auto& name = cfg.model.name;
  if (name == "ncsnpp") return std::make_shared<NCSNppImpl>(cfg);
  if (name == "unet") return std::make_shared<UNetImpl>(cfg);
  if (name == "mlp") return std::make_shared<MLPImpl>(cfg);
  if (name == "analytic_gmm") SCORCH_THROW("model 'analytic_gmm' is an exact score, not a network");
  SCORCH_THROW("model '{}' not found (model.name): valid are {}", name, names::joined(names::models(), ", "));
}

void to_channels_last(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& p : m.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
}

int64_t forward_flops_per_item(ScoreNet& net, const Config& cfg, const torch::Device& device, int64_t batch) {
  SCORCH_CHECK(batch > 0, "forward_flops_per_item: batch must be positive");
  std::vector<int64_t> shape = cfg.item_shape();
  shape.insert(shape.begin(), batch);
  const auto opts = torch::TensorOptions().device(device);
  torch::NoGradGuard no_grad;
  auto x = torch::zeros(shape, opts);
  auto level = torch::full({batch}, 0.5, opts);
  FlopCounter counter;
  net.forward(x, level);
  return counter.total() / batch;
}

ScoreFn make_score_fn(ScoreNet& net, const sde::SDE& s, bool continuous, const torch::Tensor& class_labels) {
  const torch::Tensor c = class_labels;
  if (continuous) {
    return [&net, &s, c](const torch::Tensor& x, const torch::Tensor& t) {
      // The network may run under autocast: the score is formed in x's precision.
      return s.score_from_output(net.forward(x, s.time_label(t), c).to(x.scalar_type()), t);
    };
  }
  const double N1 = static_cast<double>(s.N() - 1);
  if (s.name() == "vesde") {
    return [&net, &s, N1, c](const torch::Tensor& x, const torch::Tensor& t) {
      return net.forward(x, ((s.T() - t) * N1).round(), c).to(x.scalar_type());
    };
  }
  if (s.name() == "vpsde") {
    auto s1m = dynamic_cast<const sde::VPSDE&>(s).ddpm_coefficients().second.to(torch::kFloat32);
    return [&net, s1m, N1, c](const torch::Tensor& x, const torch::Tensor& t) {
      auto level = t * N1;
      auto std = s1m.to(x.device()).index_select(0, level.to(torch::kInt64));
      return -net.forward(x, level, c).to(x.scalar_type()) / sde::per_item(std, x);
    };
  }
  SCORCH_THROW("discrete-time score models exist for vesde (SMLD) and vpsde (DDPM), not {}", s.name());
}

ClassScoreFn make_class_score_fn(ScoreNet& net, const sde::SDE& s, bool continuous) {
  return [&net, &s, continuous](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels) {
    return make_score_fn(net, s, continuous, labels)(x, t);
  };
}

NamedTensors named(const torch::OrderedDict<std::string, torch::Tensor>& d) {
  NamedTensors out;
  for (const auto& it : d) out.emplace_back(it.key(), it.value());
  return out;
}

void copy_named(const TensorMap& src, const NamedTensors& dst, const std::string& what) {
  for (const auto& [name, t] : dst) {
    auto it = src.find(name);
    SCORCH_CHECK(it != src.end(), "checkpoint lacks {} '{}' that the model has (was it trained with another model config?)",
                 what, name);
    SCORCH_CHECK(it->second.sizes() == t.sizes(), "checkpoint {} '{}' has shape [{}] but the model expects [{}]", what,
                 name, fmt::join(it->second.sizes(), ", "), fmt::join(t.sizes(), ", "));
  }
  for (const auto& [name, t] : src) {
    bool found = std::any_of(dst.begin(), dst.end(), [&](const auto& p) { return p.first == name; });
    SCORCH_CHECK(found, "checkpoint has {} '{}' that the model does not have", what, name);
  }
  torch::NoGradGuard ng;
  for (const auto& [name, t] : dst) t.copy_(src.at(name));
}

void load_weights(ScoreNet& model, const TensorMap& params, const TensorMap& buffers) {
  copy_named(params, named(model.named_parameters()), "parameter");
  copy_named(buffers, named(model.named_buffers()), "buffer");
}

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

torch::Tensor apply_norm(torch::nn::GroupNormImpl& norm, const torch::Tensor& x) {
  const auto dtype = norm.weight.scalar_type();
  return norm.forward(x.scalar_type() == dtype ? x : x.to(dtype));
}

torch::Tensor positional_embedding(const torch::Tensor& levels, int64_t dim, double max_positions) {
  int64_t half = dim / 2;
  double step = std::log(max_positions) / static_cast<double>(half - 1);
  auto freqs = torch::exp(torch::arange(half, levels.options().dtype(torch::kFloat32)) * -step);
  auto args = levels.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);
  auto emb = torch::cat({args.sin(), args.cos()}, 1);
  if (dim % 2 == 1) emb = torch::nn::functional::pad(emb, torch::nn::functional::PadFuncOptions({0, 1}));
  return emb;
}

void default_init(torch::Tensor& weight, torch::Tensor& bias, double scale) {
  torch::NoGradGuard ng;
  if (scale == 0.0) {
    weight.zero_();
  } else {
    torch::nn::init::xavier_uniform_(weight);
    weight.mul_(std::sqrt(scale));
  }
  if (bias.defined()) bias.zero_();
}

TimeEmbeddingImpl::TimeEmbeddingImpl(const Config& cfg, int64_t out_dim)
    : fourier_(cfg.model.embedding_type == "fourier"), nf_(cfg.model.nf) {
  if (fourier_) {
    SCORCH_CHECK(nf_ % 2 == 0, "model.nf = {} must be even for Fourier embeddings", nf_);
    fourier_W_ = register_parameter("fourier_W", torch::randn({nf_ / 2}) * cfg.model.fourier_scale,
                                    /*requires_grad=*/false);
  }
  dense0_ = register_module("dense0", torch::nn::Linear(nf_, out_dim));
  dense1_ = register_module("dense1", torch::nn::Linear(out_dim, out_dim));
  default_init(dense0_->weight, dense0_->bias);
  default_init(dense1_->weight, dense1_->bias);
}

torch::Tensor TimeEmbeddingImpl::forward(const torch::Tensor& noise_level) {
  torch::Tensor emb;
  if (fourier_) {
    auto proj = noise_level.log().unsqueeze(1) * fourier_W_.unsqueeze(0) * (2.0 * M_PI);
    emb = torch::cat({proj.sin(), proj.cos()}, 1);
  } else {
    emb = positional_embedding(noise_level, nf_);
  }
  return dense1_(torch::silu(dense0_(emb)));
}

ClassEmbeddingImpl::ClassEmbeddingImpl(int64_t num_classes, int64_t dim) : num_classes_(num_classes) {
  table_ = register_module("table", torch::nn::Embedding(num_classes + 1, dim));
}

torch::Tensor ClassEmbeddingImpl::forward(const torch::Tensor& labels, const torch::Tensor& like) {
  auto lab = labels.defined() ? labels.to(like.device(), torch::kInt64)
                              : torch::full({like.size(0)}, num_classes_, like.options().dtype(torch::kInt64));
  SCORCH_CHECK(lab.dim() == 1 && lab.size(0) == like.size(0), "class labels must be [B] with B = {} (got [{}])",
               like.size(0), fmt::join(lab.sizes(), ", "));
  return table_(lab);
}

torch::Tensor add_class_embedding(ClassEmbedding ce, const torch::Tensor& temb, const torch::Tensor& labels) {
  if (ce.is_empty()) {
    SCORCH_CHECK(!labels.defined(), "class labels given to an unconditional network (model.num_classes = 0)");
    return temb;
  }
  return temb + ce->forward(labels, temb).to(temb.scalar_type());
}

}  // namespace scorch::models
