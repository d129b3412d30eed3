// The PC and ODE sampling loops and the config-driven entry point.
#include "scorch/core/error.h"
#include "scorch/core/names.h"
#include "scorch/sampling/constraint.h"
#include "scorch/sampling/sampler.h"

namespace scorch::sampling {

namespace {
// Counts the score evaluations a sampler makes.
models::ScoreFn counted(const models::ScoreFn& score, int64_t& calls) {
  return [&score, &calls](const torch::Tensor& x, const torch::Tensor& t) {
    ++calls;
    return score(x, t);
  };
}
}  // namespace

SampleResult pc_sample(const std::string& predictor_name, const std::string& corrector_name, const sde::SDE& s,
                       const models::ScoreFn& score, at::IntArrayRef shape, const SamplingConfig& cfg, double eps,
                       const Noise& noise, const Progress& progress, const Constraint* constraint) {
  torch::NoGradGuard ng;
  int64_t calls = 0;
  const auto f = counted(score, calls);
  auto predictor = make_predictor(predictor_name, s, f, cfg.probability_flow);
  auto corrector = make_corrector(corrector_name, s, f, cfg.snr, cfg.n_steps_each);
  const auto sched = pc_schedule(s, eps);
  auto x = s.prior_from_normal(noise.randn(shape));
  torch::Tensor x_mean = x;
  for (int64_t i = 0; i < sched.size(); ++i) {
    const double t = sched.t[static_cast<size_t>(i)];
    auto c = corrector->step(x, t, noise);
    if (constraint) constraint->apply(c.x, c.x_mean, s, t, noise);
    auto p = predictor->step(c.x, t, sched.t_next[static_cast<size_t>(i)], noise);
    if (constraint) constraint->apply(p.x, p.x_mean, s, t, noise);  // at t, as the reference does
    x = p.x;
    x_mean = p.x_mean;
    if (progress) progress(i + 1, sched.size());
  }
  auto out = cfg.noise_removal ? x_mean : x;
  return {constraint ? constraint->finish(out) : out, calls};
}

SampleResult fast_sample(const SamplingConfig& cfg, const sde::SDE& s, const models::ScoreFn& score,
                         at::IntArrayRef shape, double eps, const Noise& noise, const Progress& progress,
                         const Constraint* constraint) {
  torch::NoGradGuard ng;
  int64_t calls = 0;
  const auto f = counted(score, calls);
  const auto sched = cfg.method == "heun" ? edm_schedule(s, eps, cfg.steps) : logsnr_schedule(s, eps, cfg.steps);
  auto step = make_fast_step(cfg.method, s, f, cfg.eta, sched.size());
  auto x = s.prior_from_normal(noise.randn(shape));
  for (int64_t i = 0; i < sched.size(); ++i) {
    const double t_next = sched.t_next[static_cast<size_t>(i)];
    auto r = step->step(x, sched.t[static_cast<size_t>(i)], t_next, noise);
    if (constraint) constraint->apply(r.x, r.x_mean, s, t_next, noise);
    x = r.x;
    if (progress) progress(i + 1, sched.size());
  }
  return {constraint ? constraint->finish(x) : x, calls};
}

SampleResult ode_flow(const sde::SDE& s, const models::ScoreFn& score, const torch::Tensor& x0, double t0, double t1,
                      const OdeOptions& opt, const Constraint* constraint, const torch::Tensor& z_known) {
  torch::NoGradGuard ng;
  const int64_t B = x0.size(0);
  OdeRhs rhs = [&](double t, const OdeState& y) {
    auto tt = torch::full({B}, t, y[0].options().dtype(torch::kFloat32));
    if (!constraint) return OdeState{s.reverse_drift(y[0], tt, score(y[0], tt), /*probability_flow=*/true)};
    auto yp = constraint->project(y[0], s, t, z_known);
    return OdeState{constraint->free_part(s.reverse_drift(yp, tt, score(yp, tt), /*probability_flow=*/true))};
  };
  OdeStats stats;
  auto x = rk45(rhs, {x0.to(torch::kFloat32)}, t0, t1, opt, &stats)[0];
  return {x, stats.nfe};
}

SampleResult ode_sample(const sde::SDE& s, const models::ScoreFn& score, at::IntArrayRef shape, const OdeOptions& opt,
                        double eps, bool denoise, const Noise& noise, const Constraint* constraint) {
  torch::NoGradGuard ng;
  auto prior = s.prior_from_normal(noise.randn(shape));
  torch::Tensor z;  // the known part's path alpha(t) y + sigma(t) z
  if (constraint) z = noise.randn(shape);
  auto flow = ode_flow(s, score, prior, s.T(), eps, opt, constraint, z);
  if (constraint) flow.x = constraint->project(flow.x, s, eps, z);
  auto x = flow.x;
  int64_t nfe = flow.nfe;
  if (denoise) {
    auto t = torch::full({shape[0]}, eps, x.options().dtype(torch::kFloat32));
    auto [f, G] = s.reverse_discretize(x, t, score(x, t), /*probability_flow=*/false);
    x = x - f;
    ++nfe;
  }
  return {constraint ? constraint->finish(x) : x, nfe};
}

std::string settings(const Config& cfg) {
  const auto& sc = cfg.sampling;
  const auto& m = cfg.model;
  std::string s = fmt::format("sampling.method = {}\n", sc.method);
  if (sc.method == "ode") {
    s += fmt::format("sampling.rtol = {}\nsampling.atol = {}\n", sc.rtol, sc.atol);
  } else if (sc.method != "pc") {
    s += fmt::format("sampling.steps = {}\n", sc.steps);
    if (sc.method == "ddim") s += fmt::format("sampling.eta = {}\n", sc.eta);
  } else {
    s += fmt::format("sampling.predictor = {}\nsampling.corrector = {}\nsampling.snr = {}\nsampling.n_steps_each = {}\n"
                     "sampling.probability_flow = {}\n",
                     sc.predictor, sc.corrector, sc.snr, sc.n_steps_each, sc.probability_flow);
  }
  s += fmt::format("sampling.noise_removal = {}\nmodel.num_scales = {}\ntraining.sde = {}\n", sc.noise_removal,
                   m.num_scales, cfg.training.sde);
  if (cfg.training.sde == "vesde") {
    s += fmt::format("model.sigma_min = {}\nmodel.sigma_max = {}\n", m.sigma_min, m.sigma_max);
  } else {
    s += fmt::format("model.beta_min = {}\nmodel.beta_max = {}\n", m.beta_min, m.beta_max);
  }
  // Guidance (only when used, so unguided runs keep their names).
  if (sc.class_label != "none") {
    s += fmt::format("model.num_classes = {}\nsampling.class_label = {}\nsampling.guidance_scale = {}\n",
                     m.num_classes, sc.class_label, sc.guidance_scale);
    if (!sc.classifier.empty()) {
      s += fmt::format("sampling.classifier = {}\nsampling.classifier_scale = {}\n", sc.classifier,
                       sc.classifier_scale);
    }
  }
  s += fmt::format("eval.seed = {}\neval.batch_size = {}\n", cfg.eval.seed, cfg.eval.batch_size);
  return s;
}

std::string short_name(const Config& cfg) {
  const auto& sc = cfg.sampling;
  std::string name;
  if (sc.method == "ode") {
    name = "ode";
  } else if (sc.method == "pc") {
    name = fmt::format("pc-{}-{}{}", sc.predictor, sc.corrector, sc.probability_flow ? "-flow" : "");
  } else {
    name = fmt::format("{}{}{}", sc.method, sc.steps, sc.method == "ddim" && sc.eta > 0 ? fmt::format("-eta{}", sc.eta) : "");
  }
  if (sc.class_label != "none") {
    name += fmt::format("-c{}", sc.class_label);
    if (sc.guidance_scale > 0) name += fmt::format("-w{}", sc.guidance_scale);
    if (!sc.classifier.empty()) name += fmt::format("-clf{}", sc.classifier_scale);
  }
  return name;
}

SampleResult sample(const Config& cfg, const sde::SDE& s, const models::ScoreFn& score, at::IntArrayRef shape,
                    const Noise& noise, const Progress& progress, const Constraint* constraint) {
  const auto& sc = cfg.sampling;
  if (sc.method == "ode") {
    return ode_sample(s, score, shape, {sc.rtol, sc.atol}, s.sampling_eps(), sc.noise_removal, noise, constraint);
  }
  if (sc.method == "pc") {
    return pc_sample(sc.predictor, sc.corrector, s, score, shape, sc, s.sampling_eps(), noise, progress, constraint);
  }
  SCORCH_CHECK(names::contains(names::methods(), sc.method), "sampler '{}' not found (sampling.method): valid are {}",
               sc.method, names::joined(names::methods(), ", "));
  return fast_sample(sc, s, score, shape, s.sampling_eps(), noise, progress, constraint);
}

}  // namespace scorch::sampling
