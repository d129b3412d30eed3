// score_sde_pytorch <-> scorch checkpoints (see interop/score_sde_pytorch.h). The zip/pickle
// is read by io/torch_pickle onto the CPU (CUDA-saved checkpoints load on CPU-only builds)
// and written by it. Mapping is by name: scorch's NCSN++ registers the reference's module
// names.
#include "scorch/interop/score_sde_pytorch.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <fstream>
#include <set>

#include "scorch/core/error.h"
#include "scorch/io/torch_pickle.h"
#include "scorch/models/ncsnpp.h"

namespace scorch::interop {

namespace {

using GenericDict = c10::Dict<c10::IValue, c10::IValue>;

c10::IValue get(const GenericDict& d, const std::string& key, const std::string& where) {
  auto it = d.find(c10::IValue(key));
  SCORCH_CHECK(it != d.end(), "{}: key '{}' not found", where, key);
  return it->value();
}

GenericDict as_dict(const c10::IValue& v, const std::string& where) {
  SCORCH_CHECK(v.isGenericDict(), "{}: expected a dict, found {}", where, v.tagKind());
  return v.toGenericDict();
}

int64_t as_int(const c10::IValue& v, const std::string& where) {
  if (v.isInt()) return v.toInt();
  if (v.isTensor() && v.toTensor().numel() == 1) return static_cast<int64_t>(v.toTensor().item<double>());
  if (v.isDouble()) return static_cast<int64_t>(v.toDouble());
  SCORCH_THROW("{}: expected an integer, found {}", where, v.tagKind());
}

double as_double(const c10::IValue& v, const std::string& where) {
  if (v.isDouble()) return v.toDouble();
  if (v.isInt()) return static_cast<double>(v.toInt());
  if (v.isTensor() && v.toTensor().numel() == 1) return v.toTensor().item<double>();
  SCORCH_THROW("{}: expected a number, found {}", where, v.tagKind());
}

std::vector<c10::IValue> as_list(const c10::IValue& v, const std::string& where) {
  if (v.isList()) return v.toListRef().vec();
  if (v.isTuple()) return v.toTupleRef().elements().vec();
  SCORCH_THROW("{}: expected a list, found {}", where, v.tagKind());
}

std::string job_name(const Config& cfg) {
  for (const auto& s : cfg.sources)
    if (s != "defaults" && s.rfind("--set", 0) != 0) return s;
  return "the default config";
}

std::string shape_str(const torch::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

}  // namespace

ReferenceCheckpoint read_score_sde_pytorch(const std::string& path) {
  {
    std::ifstream f(path, std::ios::binary);
    SCORCH_CHECK(f.good(), "cannot open reference checkpoint '{}'", path);
    char magic[4] = {0, 0, 0, 0};
    f.read(magic, 4);
    SCORCH_CHECK(magic[0] == 'P' && magic[1] == 'K',
                 "'{}' is not a zip-format torch checkpoint (saved by torch < 1.6?). Re-save it with Debian's "
                 "python3-torch: python3 -c \"import torch; torch.save(torch.load('{}', map_location='cpu'), "
                 "'new.pth')\"",
                 path, path);
  }
  c10::IValue root = io::load_torch_zip(path);
  ReferenceCheckpoint r;
  auto top = as_dict(root, path);
  const std::string w = path;

  for (const auto& e : as_dict(get(top, "model", w), w + ": model")) {
    SCORCH_CHECK(e.key().isString() && e.value().isTensor(), "{}: model state_dict holds a non-tensor entry", path);
    std::string name = e.key().toStringRef();
    if (name.rfind("module.", 0) == 0) name = name.substr(7);
    r.model[name] = e.value().toTensor();
  }

  auto ema = as_dict(get(top, "ema", w), w + ": ema");
  r.ema_decay = as_double(get(ema, "decay", w + ": ema"), w + ": ema.decay");
  auto updates = get(ema, "num_updates", w + ": ema");  // None when the EMA ran without update counting
  r.ema_num_updates = updates.isNone() ? 0 : as_int(updates, w + ": ema.num_updates");
  for (const auto& v : as_list(get(ema, "shadow_params", w + ": ema"), w + ": ema.shadow_params")) {
    SCORCH_CHECK(v.isTensor(), "{}: ema.shadow_params holds a non-tensor", path);
    r.ema_shadow.push_back(v.toTensor());
  }

  auto opt = as_dict(get(top, "optimizer", w), w + ": optimizer");
  bool first_group = true;
  for (const auto& g : as_list(get(opt, "param_groups", w + ": optimizer"), w + ": optimizer.param_groups")) {
    auto gd = as_dict(g, w + ": optimizer.param_groups[]");
    for (const auto& id : as_list(get(gd, "params", w + ": param_group"), w + ": param_group.params"))
      r.optim_param_ids.push_back(as_int(id, w + ": param_group.params[]"));
    if (first_group) {
      auto betas = as_list(get(gd, "betas", w + ": param_group"), w + ": param_group.betas");
      SCORCH_CHECK(betas.size() == 2, "{}: param_group.betas has {} entries", path, betas.size());
      r.beta1 = as_double(betas[0], "betas");
      r.beta2 = as_double(betas[1], "betas");
      r.eps = as_double(get(gd, "eps", w + ": param_group"), "eps");
      r.weight_decay = as_double(get(gd, "weight_decay", w + ": param_group"), "weight_decay");
      first_group = false;
    }
  }
  for (const auto& e : as_dict(get(opt, "state", w + ": optimizer"), w + ": optimizer.state")) {
    const int64_t id = as_int(e.key(), w + ": optimizer.state key");
    auto sd = as_dict(e.value(), fmt::format("{}: optimizer.state[{}]", w, id));
    const std::string where = fmt::format("{}: optimizer.state[{}]", w, id);
    auto m = get(sd, "exp_avg", where), v = get(sd, "exp_avg_sq", where);
    SCORCH_CHECK(m.isTensor() && v.isTensor(), "{}: exp_avg / exp_avg_sq are not tensors", where);
    r.exp_avg[id] = m.toTensor();
    r.exp_avg_sq[id] = v.toTensor();
    r.optim_steps = std::max(r.optim_steps, as_int(get(sd, "step", where), where + ".step"));
  }
  r.step = as_int(get(top, "step", w), w + ": step");
  if (top.contains("scorch_config")) {
    const auto c = top.at("scorch_config");
    SCORCH_CHECK(c.isString(), "{}: 'scorch_config' is not a string", path);
    r.scorch_config = c.toStringRef();
  }
  return r;
}

TrainState convert_reference(const ReferenceCheckpoint& ref, models::ScoreNet& net, const Config& cfg,
                             const std::string& source) {
  TrainState st;
  std::vector<std::string> missing, misshaped, extra;
  auto check_into = [&](const std::string& name, const torch::Tensor& mine, TensorMap& out) {
    auto it = ref.model.find(name);
    if (it == ref.model.end()) {
      missing.push_back(fmt::format("missing 'module.{}' (scorch expects {})", name, shape_str(mine)));
      return;
    }
    if (it->second.sizes() != mine.sizes()) {
      misshaped.push_back(fmt::format("'module.{}' has shape {}, the job's network expects {}", name,
                                     shape_str(it->second), shape_str(mine)));
      return;
    }
    out[name] = it->second.to(mine.dtype()).contiguous();
  };
  std::vector<std::pair<std::string, torch::Tensor>> all_params, trainable;
  std::set<std::string> known;
  for (const auto& p : net.named_parameters()) {
    all_params.emplace_back(p.key(), p.value());
    if (p.value().requires_grad()) trainable.emplace_back(p.key(), p.value());
    check_into(p.key(), p.value(), st.params);
    known.insert(p.key());
  }
  for (const auto& b : net.named_buffers()) {
    check_into(b.key(), b.value(), st.buffers);
    known.insert(b.key());
  }
  for (const auto& [name, t] : ref.model)
    if (!known.count(name) && !(name == "sigmas" && cfg.model.name == "ncsnpp"))
      extra.push_back(fmt::format("extra 'module.{}' {} has no counterpart in the job's network", name,
                                     shape_str(t)));
  if (!missing.empty() || !misshaped.empty() || !extra.empty()) {
    std::string list;
    for (const auto* group : {&misshaped, &missing, &extra}) {
      const size_t shown = std::min<size_t>(group->size(), 6);
      for (size_t i = 0; i < shown; ++i) list += "\n  " + (*group)[i];
      if (shown < group->size()) list += fmt::format("\n  ... and {} more like it", group->size() - shown);
    }
    SCORCH_THROW("{} does not fit the network of {} ({} mis-shaped, {} missing, {} extra tensors; is it the right job "
                 "file?):{}",
                 source, job_name(cfg), misshaped.size(), missing.size(),
                 extra.size(), list);
  }
  if (cfg.model.name == "ncsnpp") {  // its sigmas buffer must be the job's noise schedule
    auto it = ref.model.find("sigmas");
    SCORCH_CHECK(it != ref.model.end(), "{}: missing 'module.sigmas' (every NCSN++ checkpoint has it)", source);
    auto expect = models::reference_sigmas(cfg.model);
    SCORCH_CHECK(it->second.sizes() == expect.sizes(),
                 "{}: module.sigmas has {} entries but the job's model.num_scales = {} (import with the training "
                 "config's value; sampling may override it afterwards)",
                 source, it->second.numel(), expect.numel());
    const double diff = (it->second.to(torch::kFloat64) - expect).abs().max().item<double>();
    SCORCH_CHECK(diff <= 1e-6 * expect.abs().max().item<double>(),
                 "{}: module.sigmas differs from the job's model.sigma_min/sigma_max (max |diff| {:.3g})", source, diff);
  }

  SCORCH_CHECK(ref.ema_shadow.size() == trainable.size(),
               "{}: ema.shadow_params has {} tensors, the network has {} trainable parameters", source,
               ref.ema_shadow.size(), trainable.size());
  for (size_t i = 0; i < trainable.size(); ++i) {
    const auto& [name, p] = trainable[i];
    SCORCH_CHECK(ref.ema_shadow[i].sizes() == p.sizes(), "{}: ema.shadow_params[{}] has shape {}, but '{}' is {}",
                 source, i, shape_str(ref.ema_shadow[i]), name, shape_str(p));
    st.ema[name] = ref.ema_shadow[i].to(p.dtype()).contiguous();
  }

  SCORCH_CHECK(ref.optim_param_ids.size() == all_params.size(),
               "{}: the optimizer holds {} parameters, the network has {}", source, ref.optim_param_ids.size(),
               all_params.size());
  for (size_t j = 0; j < all_params.size(); ++j) {
    const auto& [name, p] = all_params[j];
    if (!p.requires_grad()) continue;
    const int64_t id = ref.optim_param_ids[j];
    auto m = ref.exp_avg.find(id), v = ref.exp_avg_sq.find(id);
    if (m == ref.exp_avg.end() || v == ref.exp_avg_sq.end()) {  // never updated: Adam's state starts at zero
      st.exp_avg[name] = torch::zeros_like(p);
      st.exp_avg_sq[name] = torch::zeros_like(p);
      continue;
    }
    SCORCH_CHECK(m->second.sizes() == p.sizes() && v->second.sizes() == p.sizes(),
                 "{}: optimizer state of parameter {} ('{}') has shape {}, expected {}", source, id, name,
                 shape_str(m->second), shape_str(p));
    st.exp_avg[name] = m->second.to(p.dtype()).contiguous();
    st.exp_avg_sq[name] = v->second.to(p.dtype()).contiguous();
  }

  auto differs = [](double a, double b) { return std::abs(a - b) > 1e-12 * std::max(1.0, std::abs(b)); };
  if (differs(ref.ema_decay, cfg.model.ema_rate))
    spdlog::warn("{}: EMA decay {} differs from model.ema_rate = {} (the job's value is used when training resumes)",
                 source, ref.ema_decay, cfg.model.ema_rate);
  if (differs(ref.beta1, cfg.optim.beta1) || differs(ref.beta2, cfg.optim.beta2) || differs(ref.eps, cfg.optim.eps) ||
      differs(ref.weight_decay, cfg.optim.weight_decay))
    spdlog::warn("{}: Adam betas ({}, {}), eps {}, weight decay {} differ from the job's optim.*", source, ref.beta1,
                 ref.beta2, ref.eps, ref.weight_decay);

  if (cfg.model.name == "ncsnpp") st.imported["sigmas"] = ref.model.at("sigmas").contiguous();
  st.step = ref.step;
  st.world_size = 1;
  st.config_toml = to_toml(cfg);
  st.ema_decay = ref.ema_decay;
  st.ema_updates = ref.ema_num_updates;
  st.adam_steps = ref.optim_steps;
  return st;
}

namespace {

// The network's tensors by state_dict name: NCSN++'s sigmas (registered first by the
// reference), then the parameters and the buffers in registration order. (PyTorch's own
// state_dict interleaves a module's buffers with its parameters; loading is by name.)
std::vector<std::pair<std::string, torch::Tensor>> state_dict_entries(const TrainState& st, models::ScoreNet& net,
                                                                     const Config& cfg, bool ema) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (cfg.model.name == "ncsnpp") {  // registered first in the reference's NCSNpp.__init__
    auto it = st.imported.find("sigmas");
    out.emplace_back("sigmas", it != st.imported.end() ? it->second : models::reference_sigmas(cfg.model));
  }
  auto pick = [&](const std::string& name, const TensorMap& m, const char* what) {
    auto it = m.find(name);
    SCORCH_CHECK(it != m.end(), "checkpoint '{}' lacks {} '{}'", st.source, what, name);
    return it->second;
  };
  for (const auto& p : net.named_parameters()) {
    const bool use_ema = ema && p.value().requires_grad();
    out.emplace_back(p.key(), pick(p.key(), use_ema ? st.ema : st.params, use_ema ? "EMA tensor" : "parameter"));
  }
  for (const auto& b : net.named_buffers()) out.emplace_back(b.key(), pick(b.key(), st.buffers, "buffer"));
  return out;
}

}  // namespace

c10::IValue to_state_dict(const TrainState& st, models::ScoreNet& net, const Config& cfg, bool ema) {
  c10::Dict<std::string, torch::Tensor> d;
  for (const auto& [name, t] : state_dict_entries(st, net, cfg, ema)) d.insert(name, t.cpu().contiguous());
  return d;
}

c10::IValue to_score_sde_pytorch(const TrainState& st, models::ScoreNet& net, const Config& cfg) {
  c10::Dict<std::string, torch::Tensor> model;
  for (const auto& [name, t] : state_dict_entries(st, net, cfg, /*ema=*/false))
    model.insert("module." + name, t.cpu().contiguous());

  // score_sde_pytorch's models/ema.py ExponentialMovingAverage.state_dict().
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& p : net.named_parameters()) params.emplace_back(p.key(), p.value());
  // Lists typed Any: LibTorch pickles a List[Tensor] or List[int] through a torch.jit
  // builder global (build_tensorlist, build_intlist) that Python's weights_only load refuses.
  c10::impl::GenericList shadow(c10::AnyType::get());
  for (const auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    auto it = st.ema.find(name);
    SCORCH_CHECK(it != st.ema.end(), "checkpoint '{}' lacks EMA tensor '{}'", st.source, name);
    shadow.push_back(it->second.cpu().contiguous());
  }
  c10::impl::GenericDict ema(c10::StringType::get(), c10::AnyType::get());
  ema.insert("decay", st.ema_decay);
  ema.insert("num_updates", st.ema_updates);
  ema.insert("shadow_params", shadow);

  // torch.optim.Adam.state_dict() over model.parameters() (../shared/REFERENCE.md): every
  // parameter has an index; those never updated (requires_grad false) have no state.
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  c10::impl::GenericList ids(c10::AnyType::get());
  for (size_t i = 0; i < params.size(); ++i) {
    ids.push_back(static_cast<int64_t>(i));
    const auto& [name, p] = params[i];
    if (!p.requires_grad()) continue;
    c10::impl::GenericDict s(c10::StringType::get(), c10::AnyType::get());
    s.insert("step", torch::tensor(static_cast<float>(st.adam_steps)));
    s.insert("exp_avg", st.exp_avg.at(name).cpu().contiguous());
    s.insert("exp_avg_sq", st.exp_avg_sq.at(name).cpu().contiguous());
    state.insert(static_cast<int64_t>(i), s);
  }
  c10::impl::GenericDict group(c10::StringType::get(), c10::AnyType::get());
  group.insert("lr", cfg.optim.lr);
  group.insert("betas", c10::ivalue::Tuple::create({c10::IValue(cfg.optim.beta1), c10::IValue(cfg.optim.beta2)}));
  group.insert("eps", cfg.optim.eps);
  group.insert("weight_decay", cfg.optim.weight_decay);
  group.insert("amsgrad", false);
  group.insert("maximize", false);
  group.insert("foreach", c10::IValue());
  group.insert("capturable", false);
  group.insert("differentiable", false);
  group.insert("fused", c10::IValue());
  group.insert("params", ids);
  c10::impl::GenericList groups(c10::AnyType::get());
  groups.push_back(group);
  c10::impl::GenericDict optimizer(c10::StringType::get(), c10::AnyType::get());
  optimizer.insert("state", state);
  optimizer.insert("param_groups", groups);

  c10::impl::GenericDict root(c10::StringType::get(), c10::AnyType::get());
  root.insert("optimizer", optimizer);
  root.insert("model", model);
  root.insert("ema", ema);
  root.insert("step", st.step);
  root.insert("scorch_config", st.config_toml);
  return root;
}

}  // namespace scorch::interop
