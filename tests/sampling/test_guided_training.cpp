// What guided generation needs from training (suite `guided`, continued from
// sampling/test_guided.cpp): sliced score matching learns the analytic score of Gaussian
// data; class-conditional networks take their labels and the null label; label dropout
// replaces labels by the null label at its rate; the guidance keys are validated.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "common.h"
#include "scorch/losses/loss.h"
#include "scorch/losses/ssm.h"
#include "scorch/models/analytic_gmm.h"
#include "scorch/models/model.h"
#include "scorch/sampling/constraint.h"
#include "scorch/sampling/guidance.h"
#include "scorch/sampling/sampler.h"
#include "scorch/sde/variants.h"
#include "scorch/train/batches.h"

using namespace scorch;

BOOST_AUTO_TEST_SUITE(guided)


// Sliced score matching (SSM-VR, Rademacher projections) trains a small MLP on N(mu, 0.5^2 I)
// under VP; its score sigma(t) s(x, t) matches the analytic -(x - alpha mu) sigma / v(t)
// within 15% (relative L2) at t = 0.1, 0.4, 0.8. The exact score has a lower SSM loss than
// a scaled one on the same inputs.
BOOST_AUTO_TEST_CASE(sliced_score_matching_learns_the_analytic_score) {
  Config cfg;
  cfg.training.sde = "vpsde";
  cfg.training.loss = "ssm";
  cfg.model.name = "mlp";
  cfg.model.nf = 64;
  cfg.model.num_res_blocks = 2;
  cfg.data.dim = 2;
  validate(cfg);
  auto s = sde::make_sde(cfg);
  auto mu = torch::tensor({1.0f, -0.5f});
  const double sd = 0.5;
  auto exact = [&](const torch::Tensor& x, const torch::Tensor& t) {
    auto a = s->alpha(t), sg = s->sigma(t);
    auto var = a * a * sd * sd + sg * sg;
    return -(x - a.unsqueeze(1) * mu) / var.unsqueeze(1);
  };
  auto g = at::make_generator<at::CPUGeneratorImpl>(41);
  {  // the objective ranks scores correctly
    auto x0 = mu + sd * torch::randn({4096, 2}, g);
    auto t = torch::rand({4096}, g) * 0.9 + 0.1;
    auto z = torch::randn({4096, 2}, g);
    auto vv = torch::randint(0, 2, {4096, 2}, g).to(torch::kFloat32) * 2 - 1;
    models::ScoreFn ex = exact;
    models::ScoreFn scaled = [&](const torch::Tensor& x, const torch::Tensor& t) { return 1.3 * exact(x, t); };
    const double l_exact = losses::ssm_loss_per_item(ex, *s, x0, t, z, vv, {}).mean().item<double>();
    const double l_scaled = losses::ssm_loss_per_item(scaled, *s, x0, t, z, vv, {}).mean().item<double>();
    BOOST_TEST_MESSAGE("SSM loss: exact score " << l_exact << ", 1.3 x exact " << l_scaled);
    BOOST_TEST(l_exact < l_scaled);
  }
  torch::manual_seed(0);
  auto net = models::make_model(cfg);
  auto loss = losses::make_loss(cfg, *s);
  BOOST_TEST(loss->name() == "ssm");
  BOOST_TEST(loss->needs_projections());
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(2e-3));
  const int64_t B = 256;
  for (int64_t step = 0; step < 1500; ++step) {
    losses::LossInputs in;
    in.x0 = mu + sd * torch::randn({B, 2}, g);
    in.t = torch::rand({B}, g) * (1.0 - 1e-3) + 1e-3;
    in.z = torch::randn({B, 2}, g);
    in.projections = torch::randint(0, 2, {B, 2}, g).to(torch::kFloat32) * 2 - 1;
    opt.zero_grad();
    loss->per_item(*net, in).mean().backward();
    opt.step();
  }
  torch::NoGradGuard ng;
  auto learned = models::make_score_fn(*net, *s);
  for (double tv : {0.1, 0.4, 0.8}) {
    auto t = torch::full({2000}, tv);
    auto a = s->alpha(t), sg = s->sigma(t);
    auto x = a.unsqueeze(1) * mu + (a * a * sd * sd + sg * sg).sqrt().unsqueeze(1) * torch::randn({2000, 2}, g);
    auto want = exact(x, t) * sg.unsqueeze(1), got = learned(x, t) * sg.unsqueeze(1);
    const double rel = ((got - want).norm() / want.norm()).item<double>();
    BOOST_TEST_MESSAGE("SSM-trained MLP at t = " << tv << ": relative error of sigma * score " << rel);
    BOOST_TEST(rel < 0.15);
  }
}

// A class-conditional U-Net: labels change the output, no labels mean the null label, an
// unconditional network refuses labels.
BOOST_AUTO_TEST_CASE(class_conditional_networks) {
  Config cfg;
  cfg.model.name = "unet";
  cfg.model.nf = 8;
  cfg.model.ch_mult = {1, 2};
  cfg.model.num_res_blocks = 1;
  cfg.model.attn_resolutions = {4};
  cfg.model.num_classes = 3;
  cfg.model.dropout = 0;
  cfg.data.image_size = 8;
  cfg.data.num_channels = 1;
  validate(cfg);
  torch::manual_seed(1);
  auto net = models::make_model(cfg);
  net->eval();
  {  // the output layers start at zero: random weights everywhere, so that inputs show
    torch::NoGradGuard ng;
    for (auto& p : net->parameters()) p.normal_(0, 0.2);
  }
  auto x = torch::rand({2, 1, 8, 8});
  auto lvl = torch::full({2}, 500.0f);
  auto y0 = net->forward(x, lvl, torch::tensor({0, 0}));
  auto y1 = net->forward(x, lvl, torch::tensor({1, 1}));
  auto yn = net->forward(x, lvl, torch::tensor({3, 3}));
  BOOST_TEST(!torch::allclose(y0, y1));
  BOOST_TEST(torch::equal(yn, net->forward(x, lvl)));
  cfg.model.num_classes = 0;
  auto plain = models::make_model(cfg);
  auto msg = test::error_of([&] { plain->forward(x, lvl, torch::tensor({0, 0})); });
  BOOST_TEST(msg.find("unconditional") != std::string::npos);
  BOOST_TEST(models::count_parameters(*net) - models::count_parameters(*plain) == 4 * 32);  // (K + 1) x temb_dim
}

// training.label_dropout = 0.3: about 30% of the rows of 20 steps get the null label K, the
// others keep their data label; the draws are a function of the step (two makers agree).
BOOST_AUTO_TEST_CASE(label_dropout_replaces_labels_by_the_null_label) {
  Config cfg;
  cfg.model.name = "mlp";
  cfg.data.dim = 2;
  cfg.model.num_classes = 2;
  cfg.training.label_dropout = 0.3;
  cfg.training.batch_size = 256;
  validate(cfg);
  data::Dataset ds;
  ds.path = "memory";
  ds.points = torch::randn({2560, 2});
  ds.labels = torch::arange(2560, torch::kInt64).remainder(2);
  auto src = data::in_memory(ds);
  train::BatchMaker a(cfg, *src, {0, 256}, false, 1.0, 1000), b(cfg, *src, {0, 256}, false, 1.0, 1000);
  int64_t null = 0, total = 0;
  for (int64_t step = 0; step < 20; ++step) {
    auto ha = a.make(step), hb = b.make(step);
    BOOST_TEST(torch::equal(ha.labels, hb.labels));
    null += (ha.labels == 2).sum().item<int64_t>();
    total += ha.labels.size(0);
  }
  const double frac = static_cast<double>(null) / static_cast<double>(total);
  BOOST_TEST_MESSAGE("label dropout 0.3: null fraction " << frac);
  BOOST_TEST(std::abs(frac - 0.3) < 0.03);  // 5 standard errors of 5120 draws
}

// The guidance keys are checked against each other before any work starts.
BOOST_AUTO_TEST_CASE(guidance_keys_are_validated) {
  Config c;
  c.sampling.guidance_scale = 2;
  c.sampling.class_label = "1";
  BOOST_TEST(test::error_of([&] { validate(c); }).find("model.num_classes") != std::string::npos);
  c.model.num_classes = 10;
  validate(c);
  c.sampling.class_label = "10";
  BOOST_TEST(test::error_of([&] { validate(c); }).find("[0, 10)") != std::string::npos);
  c.sampling.class_label = "balanced";
  validate(c);
  c.sampling.method = "heun";
  BOOST_TEST(test::error_of([&] { validate(c); }).find("vesde") != std::string::npos);
  c.sampling.method = "dpm_solver";
  c.training.loss = "ssm";
  c.training.continuous = false;
  BOOST_TEST(test::error_of([&] { validate(c); }).find("continuous") != std::string::npos);
  // analytic_gmm: dimension from the means, classes = components.
  auto cfg = load_config("", {"model.name=analytic_gmm", "model.gmm_means=[[0.0,1.0,2.0],[1.0,1.0,1.0]]",
                              "model.gmm_stds=[1.0,1.0]", "model.gmm_weights=[1.0,1.0]", "model.num_classes=2"});
  BOOST_TEST(cfg.data.dim == 3);
  BOOST_TEST(test::error_of([&] {
               load_config("", {"model.name=analytic_gmm", "model.gmm_means=[[0.0],[1.0]]", "model.gmm_stds=[1.0,1.0]",
                                "model.gmm_weights=[1.0,1.0]", "model.num_classes=3"});
             }).find("components") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
