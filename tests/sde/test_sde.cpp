// Ground truth for the SDE pieces on Gaussian data N(mu, s^2 I), whose perturbed marginals
// are Gaussian in closed form: exact score, exact log-density, known sample moments.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "common.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/losses/discrete.h"
#include "scorch/losses/dsm.h"
#include "scorch/sampling/rk45.h"
#include "scorch/sampling/sampler.h"
#include "scorch/sde/sde.h"
#include "scorch/sde/variants.h"

using namespace scorch;

namespace {

// p_t = N(a(t) mu, v(t) I) with a = mean coefficient, v = a^2 s^2 + std^2.
struct GaussianTruth {
  const sde::SDE& s;
  torch::Tensor mu;  // [D]
  double sd;
  std::pair<torch::Tensor, torch::Tensor> moments(const torch::Tensor& t) const {  // [B,D] mean, [B] var
    auto [m, std] = s.marginal_prob(mu.unsqueeze(0).expand({t.size(0), mu.size(0)}), t);
    auto a = s.marginal_prob(torch::ones({t.size(0), 1}), t).first.squeeze(1);
    return {m, a * a * sd * sd + std * std};
  }
  torch::Tensor score(const torch::Tensor& x, const torch::Tensor& t) const {
    auto [m, v] = moments(t);
    return -(x - m) / v.unsqueeze(1);
  }
  torch::Tensor logp0(const torch::Tensor& x) const { return sde::gaussian_logp(x - mu.unsqueeze(0), sd); }
};

at::Generator gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

Config cfg_for(const std::string& name) {
  Config c;
  c.training.sde = name;
  c.model.sigma_max = 5.0;  // a small VE prior keeps the test ODE mild
  return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sde_ground_truth)

BOOST_AUTO_TEST_CASE(marginals_match_closed_forms) {
  auto t = torch::tensor({0.0, 0.3, 1.0}, torch::kFloat64);
  auto x = torch::ones({3, 1}, torch::kFloat64);
  auto vp = sde::make_sde(cfg_for("vpsde"));
  auto [m, std] = vp->marginal_prob(x, t);
  double lm = -0.25 * 0.09 * 19.9 - 0.5 * 0.3 * 0.1;
  BOOST_TEST(m[1][0].item<double>() == std::exp(lm), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(std[1].item<double>() == std::sqrt(1 - std::exp(2 * lm)), boost::test_tools::tolerance(1e-12));
  auto sub = sde::make_sde(cfg_for("subvpsde"));
  BOOST_TEST(sub->marginal_prob(x, t).second[1].item<double>() == 1 - std::exp(2 * lm),
             boost::test_tools::tolerance(1e-12));
  auto ve = sde::make_sde(cfg_for("vesde"));
  BOOST_TEST(ve->marginal_prob(x, t).second[2].item<double>() == 5.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(ve->sde(x, t).second[0].item<double>() == 0.01 * std::sqrt(2 * std::log(500.0)),
             boost::test_tools::tolerance(1e-12));
  auto msg = test::error_of([] {
    Config c;
    c.training.sde = "nope";
    sde::make_sde(c);
  });
  BOOST_TEST(msg.find("nope") != std::string::npos);
}

// Likelihood through the probability-flow ODE equals the exact Gaussian log-density. The
// drift is linear and isotropic, so Rademacher Hutchinson is exact; what remains is the
// solver error. Data std 0.3 (smooth) and 0.004 (the scale of a dequantised 8-bit pixel in
// [-1,1], where the drift varies like 1/t near t = 0 and fixed uniform steps fail): at
// rtol = atol = 1e-5 the error stays below 1e-3 nats per item in 3-D.
BOOST_AUTO_TEST_CASE(ode_likelihood_matches_exact_logp) {
  for (auto [name, sd] : {std::pair{"vpsde", 0.3}, std::pair{"subvpsde", 0.3}, std::pair{"vesde", 0.3},
                          std::pair{"vpsde", 0.004}, std::pair{"subvpsde", 0.004}, std::pair{"vesde", 0.004}}) {
    auto s = sde::make_sde(cfg_for(name));
    const int64_t D = 3;
    GaussianTruth truth{*s, torch::tensor({0.5f, -0.25f, 0.1f}), sd};
    auto g = gen(11);
    auto x = truth.mu.unsqueeze(0) + truth.sd * torch::randn({64, D}, g, torch::kFloat32);
    models::ScoreFn score = [&](const torch::Tensor& xx, const torch::Tensor& t) { return truth.score(xx, t); };
    auto res = likelihood::logp_ode(score, *s, x, likelihood::rademacher({64, D}, g), {1e-5, 1e-5});
    // The solver ends on the SDE's prior; swap in the true p_T of this Gaussian, so that the
    // comparison measures the ODE and divergence integration alone.
    auto [mT, vT] = truth.moments(torch::ones({64}));
    auto true_logpT = -0.5 * D * std::log(2 * M_PI) - 0.5 * D * vT.log() - (res.z - mT).pow(2).sum(1) / (2 * vT);
    auto logp = res.logp - s->prior_logp(res.z) + true_logpT;
    // The ODE starts at eps = 1e-5, so the exact reference is the marginal density there
    // (for VE, sigma(eps) = 0.01 is not negligible against s = 0.3).
    auto [me, ve] = truth.moments(torch::full({64}, likelihood::kLikelihoodEps));
    auto exact = -0.5 * D * std::log(2 * M_PI) - 0.5 * D * ve.log() - (x - me).pow(2).sum(1) / (2 * ve);
    auto err = (logp - exact).abs().max().item<double>();
    BOOST_TEST_MESSAGE(name << " sd " << sd << " max |logp - exact| = " << err);
    BOOST_TEST(err < 1e-3);
    BOOST_TEST(res.nfe > 10);
    // bits/dim conversion: -logp / (D ln 2) + offset
    auto bpd = likelihood::bits_per_dim(res.logp, D, 8.0);
    BOOST_TEST(bpd[0].item<double>() == -res.logp[0].item<double>() / (D * std::log(2.0)) + 8.0,
               boost::test_tools::tolerance(1e-6));
  }
}

// Euler-Maruyama with the exact score reproduces the data moments. n = 20000 items in 2-D:
// the standard error of the mean is s/sqrt(n) = 0.0021, of the std about s/sqrt(2n) = 0.0015;
// we allow 5 standard errors plus 0.01 for the O(1/N) discretisation bias at N = 500.
BOOST_AUTO_TEST_CASE(euler_maruyama_recovers_gaussian_moments) {
  for (const char* name : {"vpsde", "vesde"}) {
    auto s = sde::make_sde(cfg_for(name));
    GaussianTruth truth{*s, torch::tensor({1.0f, -2.0f}), 0.3};
    models::ScoreFn score = [&](const torch::Tensor& xx, const torch::Tensor& t) { return truth.score(xx, t); };
    auto g = gen(5);
    const int64_t n = 20000;
    Config c = cfg_for(name);
    c.model.num_scales = 500;
    auto s500 = sde::make_sde(c);
    auto res = sampling::pc_sample("euler_maruyama", "none", *s500, score, {n, 2}, c.sampling, s->sampling_eps(), g);
    auto mean = res.x.mean(0), sd = res.x.std(0);
    for (int d = 0; d < 2; ++d) {
      BOOST_TEST_INFO(name << " dim " << d << " mean " << mean[d].item<double>() << " std " << sd[d].item<double>());
      BOOST_TEST(std::abs(mean[d].item<double>() - truth.mu[d].item<double>()) < 5 * 0.0021 + 0.01);
      BOOST_TEST(std::abs(sd[d].item<double>() - 0.3) < 5 * 0.0015 + 0.01);
    }
    BOOST_TEST(res.nfe == 500);
  }
}

// DSM with sigma^2 weighting is minimised by the true score: E||s std + z||^2 at the exact
// score equals E||z - std^2 (x_t - m)/v ...|| which is below any perturbed score's loss.
BOOST_AUTO_TEST_CASE(dsm_prefers_the_true_score) {
  auto s = sde::make_sde(cfg_for("vpsde"));
  GaussianTruth truth{*s, torch::tensor({0.5f, -1.0f}), 0.5};
  auto g = gen(3);
  const int64_t n = 200000;
  auto x0 = truth.mu.unsqueeze(0) + truth.sd * torch::randn({n, 2}, g, torch::kFloat32);
  auto t = torch::rand({n}, g, torch::kFloat32) * (1 - 1e-5) + 1e-5;
  auto z = torch::randn({n, 2}, g, torch::kFloat32);
  models::ScoreFn exact = [&](const torch::Tensor& x, const torch::Tensor& tt) { return truth.score(x, tt); };
  models::ScoreFn scaled = [&](const torch::Tensor& x, const torch::Tensor& tt) { return 1.1 * truth.score(x, tt); };
  models::ScoreFn shifted = [&](const torch::Tensor& x, const torch::Tensor& tt) { return truth.score(x, tt) + 0.1; };
  for (bool lw : {false, true}) {
    losses::DsmOptions o{false, lw};
    double l0 = losses::dsm_loss(exact, *s, x0, t, z, o).item<double>();
    BOOST_TEST(l0 < losses::dsm_loss(scaled, *s, x0, t, z, o).item<double>());
    BOOST_TEST(l0 < losses::dsm_loss(shifted, *s, x0, t, z, o).item<double>());
  }
  // reduce_mean = mean over dims = (0.5 * sum) * 2 / D
  losses::DsmOptions sum{false, false}, mean{true, false};
  double a = losses::dsm_loss(exact, *s, x0, t, z, sum).item<double>();
  double b = losses::dsm_loss(exact, *s, x0, t, z, mean).item<double>();
  BOOST_TEST(b == a * 2 / 2.0, boost::test_tools::tolerance(1e-5));
}

// RK45 on ODEs with closed-form solutions, forward and backward in time: the global error
// follows the tolerance (within a small factor), tighter tolerances cost more evaluations.
BOOST_AUTO_TEST_CASE(rk45_reaches_the_requested_tolerance) {
  // y' = -2 t y -> exp(-t^2); z' = cos(t) -> sin(t); on a [3] float64 state and a scalar.
  sampling::OdeRhs f = [](double t, const sampling::OdeState& y) {
    return sampling::OdeState{-2.0 * t * y[0], torch::full_like(y[1], std::cos(t))};
  };
  int64_t prev_nfe = 0;
  for (double tol : {1e-3, 1e-5, 1e-7}) {
    sampling::OdeStats st;
    auto y = sampling::rk45(f, {torch::ones({3}, torch::kFloat64), torch::zeros({1}, torch::kFloat64)}, 0.0, 3.0,
                            {tol, tol}, &st);
    double e0 = std::abs(y[0][0].item<double>() - std::exp(-9.0));
    double e1 = std::abs(y[1][0].item<double>() - std::sin(3.0));
    BOOST_TEST_MESSAGE("tol " << tol << ": errors " << e0 << ", " << e1 << "; NFE " << st.nfe << " (" << st.accepted
                              << " accepted, " << st.rejected << " rejected)");
    BOOST_TEST(e0 < 20 * tol);
    BOOST_TEST(e1 < 20 * tol);
    BOOST_TEST(st.nfe > prev_nfe);
    BOOST_TEST(st.nfe == 2 + 6 * (st.accepted + st.rejected));  // FSAL: 6 new evaluations per step
    prev_nfe = st.nfe;
  }
  // Backward in time: from y(2) = exp(-4) back to y(0) = 1.
  auto y = sampling::rk45(f, {torch::full({1}, std::exp(-4.0), torch::kFloat64), torch::full({1}, std::sin(2.0), torch::kFloat64)},
                          2.0, 0.0, {1e-8, 1e-8});
  BOOST_TEST(std::abs(y[0][0].item<double>() - 1.0) < 1e-6);
  BOOST_TEST(std::abs(y[1][0].item<double>()) < 1e-6);
}

// Known minima. For data N(mu, s^2 I), at a noise level with mean coefficient a and std
// sigma, the exact score gives a per-dimension expected loss of a^2 s^2 / (a^2 s^2 + sigma^2)
// for continuous DSM (sigma^2 weighting), SMLD (weight sigma^2) and DDPM (epsilon error)
// alike. The expected value averages it over t ~ U(eps, 1) (midpoint rule, 20000 points)
// or over the N discrete levels; Monte Carlo with 200000 items must agree within 5
// standard errors, and a score off by 10% must lose on the same items (paired difference).
BOOST_AUTO_TEST_CASE(losses_of_the_exact_score_equal_their_known_minimum) {
  const int64_t n = 200000, D = 2;
  const double sd = 0.5;
  auto mu = torch::tensor({0.5, -1.0}, torch::kFloat64);
  auto level_min = [&](const torch::Tensor& a, const torch::Tensor& sigma) {
    return a * a * sd * sd / (a * a * sd * sd + sigma * sigma);
  };
  auto check = [&](const std::string& what, const torch::Tensor& exact_items, const torch::Tensor& wrong_items,
                   double expected) {
    double mc = exact_items.mean().item<double>();
    double se = exact_items.std().item<double>() / std::sqrt(static_cast<double>(n));
    // The wrong score is judged on the same items: the paired difference must be positive
    // by more than 5 of its standard errors.
    auto diff = wrong_items - exact_items;
    double excess = diff.mean().item<double>();
    double excess_se = diff.std().item<double>() / std::sqrt(static_cast<double>(n));
    BOOST_TEST_MESSAGE(what << ": Monte Carlo " << mc << " +- " << se << ", known minimum " << expected
                            << "; 10% wrong score costs " << excess << " +- " << excess_se);
    BOOST_TEST_CONTEXT(what) {
      BOOST_TEST(std::abs(mc - expected) < 5 * se);
      BOOST_TEST(excess > 5 * excess_se);
    }
  };
  auto g = gen(17);
  auto x0 = mu.unsqueeze(0) + sd * torch::randn({n, D}, g, torch::kFloat64);
  auto z = torch::randn({n, D}, g, torch::kFloat64);
  for (const char* name : {"vpsde", "subvpsde", "vesde"}) {
    auto s = sde::make_sde(cfg_for(name));
    GaussianTruth truth{*s, mu.to(torch::kFloat32), sd};
    auto t = torch::rand({n}, g, torch::kFloat64) * (1 - 1e-5) + 1e-5;
    models::ScoreFn exact = [&](const torch::Tensor& x, const torch::Tensor& tt) {
      auto [m, v] = GaussianTruth{*s, mu, sd}.moments(tt);
      return -(x - m) / v.unsqueeze(1);
    };
    models::ScoreFn wrong = [&](const torch::Tensor& x, const torch::Tensor& tt) { return 1.1 * exact(x, tt); };
    auto grid = (torch::arange(20000, torch::kFloat64) + 0.5) / 20000 * (1 - 1e-5) + 1e-5;
    auto [a, sigma] = s->marginal_prob(torch::ones({20000, 1}, torch::kFloat64), grid);
    double expected = level_min(a.squeeze(1), sigma).mean().item<double>();
    losses::DsmOptions o{/*reduce_mean=*/true, false};
    check(std::string("continuous ") + name, losses::dsm_loss_per_item(exact, *s, x0, t, z, o),
          losses::dsm_loss_per_item(wrong, *s, x0, t, z, o), expected);
  }
  auto labels = torch::randint(0, 1000, {n}, g, torch::kInt64);
  {  // SMLD: the network returns the score at sigma_desc[label].
    auto s = sde::make_sde(cfg_for("vesde"));
    auto& ve = dynamic_cast<const sde::VESDE&>(*s);
    auto desc = ve.discrete_sigmas().flip(0);
    auto net = [&](double scale) {
      return losses::OutputFn([&, scale](const torch::Tensor& x, const torch::Tensor& l) {
        auto sig = desc.index_select(0, l.to(torch::kInt64));
        return -scale * (x - mu) / (sd * sd + sig * sig).unsqueeze(1);
      });
    };
    double expected = level_min(torch::ones_like(desc), desc).mean().item<double>();
    check("SMLD", losses::smld_loss_per_item(net(1.0), ve, x0, labels, z, true),
          losses::smld_loss_per_item(net(1.1), ve, x0, labels, z, true), expected);
  }
  {  // DDPM: the network predicts the noise, -std * score.
    auto s = sde::make_sde(cfg_for("vpsde"));
    auto& vp = dynamic_cast<const sde::VPSDE&>(*s);
    auto [sa, s1m] = vp.ddpm_coefficients();
    auto net = [&](double scale) {
      return losses::OutputFn([&, scale](const torch::Tensor& x, const torch::Tensor& l) {
        auto i = l.to(torch::kInt64);
        auto a = sa.index_select(0, i).unsqueeze(1), b = s1m.index_select(0, i).unsqueeze(1);
        return scale * b * (x - a * mu) / (a * a * sd * sd + b * b);
      });
    };
    double expected = level_min(sa, s1m).mean().item<double>();
    check("DDPM", losses::ddpm_loss_per_item(net(1.0), vp, x0, labels, z, true),
          losses::ddpm_loss_per_item(net(1.1), vp, x0, labels, z, true), expected);
  }
}

BOOST_AUTO_TEST_SUITE_END()
