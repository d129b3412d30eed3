// The PC and ODE sampling loops and the config-driven entry point.
#include "scorch/core/error.h"
#include "scorch/sampling/sampler.h"

namespace scorch::sampling {

SampleResult pc_sample(const std::string& predictor_name, const std::string& corrector_name, const sde::SDE& s,
                       const models::ScoreFn& score, at::IntArrayRef shape, const SamplingConfig& cfg, double eps,
                       const Noise& noise, const Progress& progress) {
  torch::NoGradGuard ng;
  int64_t calls = 0;
  models::ScoreFn counted = [&](const torch::Tensor& x, const torch::Tensor& t) {
    ++calls;
    return score(x, t);
  };
  auto predictor = make_predictor(predictor_name, s, counted, cfg.probability_flow);
  auto corrector = make_corrector(corrector_name, s, counted, cfg.snr, cfg.n_steps_each);
  const int64_t N = s.N();
  auto x = s.prior_from_normal(noise.randn(shape));
  // The time grid on the host (score_sde's linspace(T, eps, N)); each t on x's device.
  auto ts = torch::linspace(s.T(), eps, N, torch::kFloat64);
  const auto* grid = ts.data_ptr<double>();
  torch::Tensor x_mean = x;
  for (int64_t i = 0; i < N; ++i) {
    auto t = torch::full({shape[0]}, grid[i], x.options().dtype(torch::kFloat32));
    auto c = corrector->step(x, t, noise);
    auto p = predictor->step(c.x, t, noise);
    x = p.x;
    x_mean = p.x_mean;
    if (progress) progress(i + 1, N);
  }
  return {cfg.noise_removal ? x_mean : x, calls};
}

SampleResult ode_flow(const sde::SDE& s, const models::ScoreFn& score, const torch::Tensor& x0, double t0, double t1,
                      const OdeOptions& opt) {
  torch::NoGradGuard ng;
  const int64_t B = x0.size(0);
  OdeRhs rhs = [&](double t, const OdeState& y) {
    auto tt = torch::full({B}, t, y[0].options().dtype(torch::kFloat32));
    return OdeState{s.reverse_drift(y[0], tt, score(y[0], tt), /*probability_flow=*/true)};
  };
  OdeStats stats;
  auto x = rk45(rhs, {x0.to(torch::kFloat32)}, t0, t1, opt, &stats)[0];
  return {x, stats.nfe};
}

SampleResult ode_sample(const sde::SDE& s, const models::ScoreFn& score, at::IntArrayRef shape, const OdeOptions& opt,
                        double eps, bool denoise, const Noise& noise) {
  torch::NoGradGuard ng;
  auto flow = ode_flow(s, score, s.prior_from_normal(noise.randn(shape)), s.T(), eps, opt);
  auto x = flow.x;
  int64_t nfe = flow.nfe;
  if (denoise) {
    auto t = torch::full({shape[0]}, eps, x.options().dtype(torch::kFloat32));
    auto [f, G] = s.reverse_discretize(x, t, score(x, t), /*probability_flow=*/false);
    x = x - f;
    ++nfe;
  }
  return {x, nfe};
}

std::string settings(const Config& cfg) {
  const auto& sc = cfg.sampling;
  const auto& m = cfg.model;
  std::string s = fmt::format("sampling.method = {}\n", sc.method);
  if (sc.method == "ode") {
    s += fmt::format("sampling.rtol = {}\nsampling.atol = {}\n", sc.rtol, sc.atol);
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
  s += fmt::format("eval.seed = {}\neval.batch_size = {}\n", cfg.eval.seed, cfg.eval.batch_size);
  return s;
}

std::string short_name(const Config& cfg) {
  const auto& sc = cfg.sampling;
  if (sc.method == "ode") return "ode";
  return fmt::format("pc-{}-{}{}", sc.predictor, sc.corrector, sc.probability_flow ? "-flow" : "");
}

SampleResult sample(const Config& cfg, const sde::SDE& s, const models::ScoreFn& score, at::IntArrayRef shape,
                    const Noise& noise, const Progress& progress) {
  const auto& sc = cfg.sampling;
  if (sc.method == "ode") {
    return ode_sample(s, score, shape, {sc.rtol, sc.atol}, s.sampling_eps(), sc.noise_removal, noise);
  }
  SCORCH_CHECK(sc.method == "pc", "sampler '{}' not found (sampling.method): valid are pc, ode", sc.method);
  return pc_sample(sc.predictor, sc.corrector, s, score, shape, sc, s.sampling_eps(), noise, progress);
}

}  // namespace scorch::sampling
