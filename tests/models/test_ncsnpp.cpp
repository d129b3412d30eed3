// NCSN++ / DDPM++: parameter counts of every reference job equal those of score_sde_pytorch's
// models/ncsnpp.py with the published configs; FIR resampling equals its direct definition;
// forward shapes at 32 and 256; and reference checkpoints (tests/fixtures, written by
// make_reference_checkpoints.py on Debian's python3-torch) import to networks whose outputs
// equal the reference definition's.
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <caffe2/serialize/inline_container.h>

#include "common.h"
#include "scorch/core/flops.h"
#include "scorch/io/checkpoint.h"
#include "scorch/interop/score_sde_pytorch.h"
#include "scorch/io/torch_pickle.h"
#include "scorch/models/fir.h"
#include "scorch/models/model.h"
#include "test_paths.h"

using namespace scorch;
using scorch::test::error_of;

namespace {

std::string job(const std::string& name) { return std::string(SCORCH_SOURCE_DIR) + "/jobs/" + name + ".toml"; }
std::string fixture(const std::string& name) { return std::string(SCORCH_SOURCE_DIR) + "/tests/fixtures/" + name; }

// upfirdn2d from its definition as a scatter of input samples through the kernel:
// y[a,b] = sum_{m1,m2} x[m1,m2] k[a*down + K-1 - (m1*up + pad0)][b*down + K-1 - (m2*up + pad0)].
torch::Tensor upfirdn_direct(const torch::Tensor& x, const torch::Tensor& k, int64_t up, int64_t down, int64_t pad0,
                             int64_t pad1) {
  const int64_t H = x.size(2), W = x.size(3), K = k.size(0);
  const int64_t Ho = (H * up + pad0 + pad1 - K) / down + 1, Wo = (W * up + pad0 + pad1 - K) / down + 1;
  auto xd = x.to(torch::kFloat64);
  auto kd = k.to(torch::kFloat64);
  auto y = torch::zeros({x.size(0), x.size(1), Ho, Wo}, torch::kFloat64);
  auto xa = xd.accessor<double, 4>();
  auto ka = kd.accessor<double, 2>();
  auto ya = y.accessor<double, 4>();
  for (int64_t b = 0; b < x.size(0); ++b)
    for (int64_t c = 0; c < x.size(1); ++c)
      for (int64_t m1 = 0; m1 < H; ++m1)
        for (int64_t m2 = 0; m2 < W; ++m2)
          for (int64_t a = 0; a < Ho; ++a) {
            const int64_t i = a * down + K - 1 - (m1 * up + pad0);
            if (i < 0 || i >= K) continue;
            for (int64_t e = 0; e < Wo; ++e) {
              const int64_t j = e * down + K - 1 - (m2 * up + pad0);
              if (j >= 0 && j < K) ya[b][c][a][e] += xa[b][c][m1][m2] * ka[i][j];
            }
          }
  return y;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// A torch.save-format zip holding `pickle` as data.pkl and each record under data/.
void write_torch_zip(const std::string& path, const std::string& pickle,
                     const std::map<std::string, std::string>& records) {
  caffe2::serialize::PyTorchStreamWriter zip(path);
  zip.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [key, bytes] : records) zip.writeRecord("data/" + key, bytes.data(), bytes.size());
  zip.writeEndOfFile();
}

// The pickle (protocol 2) of {'w': tensor}: a float tensor of `shape` over storage '0' that
// claims `claimed` elements.
std::string one_tensor_pickle(const std::string& shape, const std::string& stride, char claimed) {
  using namespace std::string_literals;
  auto unicode = [](const std::string& text) {  // BINUNICODE: 'X', a 4-byte little-endian length, the bytes
    return "X"s + static_cast<char>(text.size()) + "\x00\x00\x00"s + text;
  };
  return "\x80\x02}q\x00("s + unicode("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" + unicode("storage") +
         "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + "K" + claimed + "tQK\x00"s + shape + stride +
         "\x89" "ccollections\nOrderedDict\n)RtRu.";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(networks)

BOOST_AUTO_TEST_CASE(parameter_counts_equal_the_reference) {
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"cifar10_ve_ncsnpp_continuous", 62758915},       {"cifar10_ve_ncsnpp_deep_continuous", 107587075},
      {"cifar10_vp_ddpmpp_continuous", 61804419},       {"cifar10_vp_ddpmpp_deep_continuous", 106632579},
      {"cifar10_subvp_ddpmpp_continuous", 61804419},    {"cifar10_subvp_ddpmpp_deep_continuous", 106632579},
      {"cifar10_vp_ncsnpp_continuous", 62693251},       {"celebahq256_ve_ncsnpp_continuous", 65574549}};
  for (const auto& [name, count] : expected) {
    auto net = models::make_model(load_config(job(name), {}));
    BOOST_TEST(models::count_parameters(*net) == count, name);
  }
}

// The FLOP counter against the multiply-adds of each layer kind written out by hand.
BOOST_AUTO_TEST_CASE(flop_counter_counts_each_layer_kind_exactly) {
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 3, 16, 16});
  auto count = [](const std::function<void()>& f) {
    FlopCounter c;
    f();
    return c.total();
  };
  // 3x3 convolution, 3 -> 8 channels, padding 1: 2 x [2 images, 8, 16, 16] outputs x 3 x 9 products.
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 8, 3).padding(1));
  BOOST_TEST(count([&] { conv(x); }) == 2 * 2 * 8 * 16 * 16 * 3 * 9);
  // 4x4, stride 2, padding 1, no bias: outputs 8x8.
  torch::nn::Conv2d down(torch::nn::Conv2dOptions(3, 6, 4).stride(2).padding(1).bias(false));
  BOOST_TEST(count([&] { down(x); }) == 2 * 2 * 6 * 8 * 8 * 3 * 16);
  // Grouped 4 -> 6 in 2 groups, 3x3 with dilation 2 (no padding): outputs 12x12, 2 inputs each.
  torch::nn::Conv2d grouped(torch::nn::Conv2dOptions(4, 6, 3).groups(2).dilation(2));
  auto x4 = torch::randn({1, 4, 16, 16});
  BOOST_TEST(count([&] { grouped(x4); }) == 2 * 1 * 6 * 12 * 12 * 2 * 9);
  // Transposed 3 -> 5, 4x4 stride 2: every input element times 5 x 16 weights.
  torch::nn::ConvTranspose2d up(torch::nn::ConvTranspose2dOptions(3, 5, 4).stride(2).padding(1));
  BOOST_TEST(count([&] { up(x); }) == 2 * 2 * 3 * 16 * 16 * 5 * 16);
  // Linear on [4,10] and [2,5,10] -> 20, attention-style bmm [2,3,4] x [2,4,5].
  torch::nn::Linear lin(10, 20);
  BOOST_TEST(count([&] { lin(torch::randn({4, 10})); }) == 2 * 4 * 10 * 20);
  BOOST_TEST(count([&] { lin(torch::randn({2, 5, 10})); }) == 2 * 10 * 10 * 20);
  BOOST_TEST(count([&] { torch::bmm(torch::randn({2, 3, 4}), torch::randn({2, 4, 5})); }) == 2 * 2 * 3 * 4 * 5);
  // Element-wise work counts nothing; the counter stops with its scope.
  BOOST_TEST(count([&] { (x * 2 + 1).relu(); }) == 0);
  BOOST_TEST(count([] {}) == 0);
}

// A network's FLOPs per image do not depend on the batch; DDPM++ at twice the width costs
// exactly 2x in attention (q^T k and the weighted sum are linear in the channels) and just
// under 4x in convolutions and linear layers (twice the inputs and twice the outputs, but
// the first and last convolutions have 3 image channels on one side).
BOOST_AUTO_TEST_CASE(network_flops_per_image_scale_with_width_not_batch) {
  Config cfg = load_config(job("cifar10_vp_ddpmpp_continuous"), {"model.nf=16", "model.num_res_blocks=1"});
  auto flops = [&](int64_t nf) {
    cfg.model.nf = nf;
    auto net = models::make_model(cfg);
    net->eval();
    torch::NoGradGuard ng;
    FlopCounter c;
    net->forward(torch::zeros({1, 3, 32, 32}), torch::full({1}, 0.5));
    return c.by_op();
  };
  auto narrow = flops(16), wide = flops(32);
  BOOST_TEST(narrow.at("aten::bmm") > 0);
  BOOST_TEST(wide.at("aten::bmm") == 2 * narrow.at("aten::bmm"));
  const double conv = static_cast<double>(wide.at("aten::convolution")) / narrow.at("aten::convolution");
  const double linear = static_cast<double>(wide.at("aten::addmm")) / narrow.at("aten::addmm");
  BOOST_TEST_INFO("convolutions x" << conv << ", linear x" << linear);
  BOOST_TEST(conv > 3.95);
  BOOST_TEST(conv < 4.0);
  BOOST_TEST(linear == 4.0);
  cfg.model.nf = 16;
  auto net = models::make_model(cfg);
  net->eval();
  const int64_t one = models::forward_flops_per_item(*net, cfg, torch::kCPU, 1);
  int64_t sum = 0;
  for (const auto& [op, f] : narrow) sum += f;
  BOOST_TEST(one == sum);
  BOOST_TEST(models::forward_flops_per_item(*net, cfg, torch::kCPU, 3) == one);
}

BOOST_AUTO_TEST_CASE(fir_resampling_equals_its_direct_definition) {
  torch::manual_seed(3);
  auto x = torch::randn({2, 3, 6, 7});
  for (const std::vector<int64_t>& k : {std::vector<int64_t>{1, 3, 3, 1}, std::vector<int64_t>{1, 1},
                                        std::vector<int64_t>{1, 2, 1}, std::vector<int64_t>{1, 4, 6, 4, 1}}) {
    const int64_t K = static_cast<int64_t>(k.size());
    auto kk = models::fir::setup_kernel(k);
    auto up = models::fir::upsample_2d(x, k);
    auto up_direct = upfirdn_direct(x, kk * 4.0, 2, 1, (K - 2 + 1) / 2 + 1, (K - 2) / 2);
    BOOST_TEST(up.sizes() == torch::IntArrayRef({2, 3, 12, 14}));
    BOOST_TEST(max_abs_diff(up, up_direct) < 1e-5, "upsample K=" << K);
    if (x.size(2) % 2 == 0) {
      auto down = models::fir::downsample_2d(x.narrow(3, 0, 6), k);
      auto down_direct = upfirdn_direct(x.narrow(3, 0, 6), kk, 1, 2, (K - 2 + 1) / 2, (K - 2) / 2);
      BOOST_TEST(down.sizes() == torch::IntArrayRef({2, 3, 3, 3}));
      BOOST_TEST(max_abs_diff(down, down_direct) < 1e-5, "downsample K=" << K);
    }
  }
  // [1,1] is exactly nearest-neighbour upsampling and 2x2 average pooling.
  auto x6 = x.narrow(3, 0, 6);
  BOOST_TEST(max_abs_diff(models::fir::upsample_2d(x6, {1, 1}),
                          torch::nn::functional::interpolate(
                              x6, torch::nn::functional::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{12, 12})
                                      .mode(torch::kNearest))) < 1e-6);
  BOOST_TEST(max_abs_diff(models::fir::downsample_2d(x6, {1, 1}), torch::avg_pool2d(x6, 2, 2)) < 1e-6);
  BOOST_TEST(max_abs_diff(models::fir::naive_downsample_2d(x6), torch::avg_pool2d(x6, 2, 2)) < 1e-6);
}

BOOST_AUTO_TEST_CASE(fused_fir_convolutions_equal_resample_then_conv_inside_the_border) {
  // StyleGAN2's fused ops pad once, so they differ from the two-step version only within
  // a couple of pixels of the border; a wrong kernel flip or offset changes the interior.
  torch::manual_seed(4);
  auto x = torch::randn({2, 3, 8, 8});
  auto w = torch::randn({5, 3, 3, 3});
  const std::vector<int64_t> k{1, 3, 3, 1};
  auto fused_up = models::fir::upsample_conv_2d(x, w, k);
  auto two_step_up = torch::conv2d(models::fir::upsample_2d(x, k), w, {}, 1, 1);
  BOOST_TEST(fused_up.sizes() == torch::IntArrayRef({2, 5, 16, 16}));
  auto in = [](const torch::Tensor& t, int64_t b) { return t.narrow(2, b, t.size(2) - 2 * b).narrow(3, b, t.size(3) - 2 * b); };
  BOOST_TEST(max_abs_diff(in(fused_up, 2), in(two_step_up, 2)) < 1e-4);
  auto fused_down = models::fir::conv_downsample_2d(x, w, k);
  auto two_step_down = models::fir::downsample_2d(torch::conv2d(x, w, {}, 1, 1), k);
  BOOST_TEST(fused_down.sizes() == torch::IntArrayRef({2, 5, 4, 4}));
  BOOST_TEST(max_abs_diff(in(fused_down, 1), in(two_step_down, 1)) < 1e-4);
}

BOOST_AUTO_TEST_CASE(forward_shapes_at_32_and_256_with_small_nf) {
  torch::manual_seed(5);
  for (const char* name : {"cifar10_ve_ncsnpp_continuous", "cifar10_vp_ddpmpp_continuous",
                           "cifar10_vp_ncsnpp_continuous", "celebahq256_ve_ncsnpp_continuous"}) {
    auto cfg = load_config(job(name), {"model.nf=8", "model.num_res_blocks=1"});
    auto net = models::make_model(cfg);
    const int64_t R = cfg.data.image_size;
    auto x = torch::rand({2, 3, R, R});
    auto labels = cfg.model.embedding_type == "fourier" ? torch::tensor({0.5f, 20.0f}) : torch::tensor({10.0f, 900.0f});
    auto y = net->forward(x, labels);
    BOOST_TEST(y.sizes() == x.sizes(), name);
    BOOST_TEST(torch::isfinite(y).all().item<bool>(), name);
    y.pow(2).mean().backward();  // every trainable parameter gets a gradient
    for (const auto& p : net->named_parameters())
      if (p.value().requires_grad()) BOOST_TEST(p.value().grad().defined(), name << ": " << p.key());
  }
}

BOOST_AUTO_TEST_CASE(every_option_combination_runs) {
  // The structural options the published configs do not use, on a small network.
  torch::manual_seed(6);
  const std::vector<std::vector<std::string>> variants = {
      {"model.conditional=false", "model.scale_by_sigma=false"},
      {"model.resblock_type=\"ddpm\"", "model.resamp_with_conv=false"},
      {"model.resblock_type=\"ddpm\"", "model.fir=false", "model.progressive=\"residual\""},
      {"model.progressive=\"residual\"", "model.progressive_input=\"input_skip\"", "model.progressive_combine=\"cat\""},
      {"model.skip_rescale=false", "model.init_scale=0.5", "model.nonlinearity=\"elu\""},
      {"model.embedding_type=\"positional\"", "model.scale_by_sigma=true"}};
  for (auto sets : variants) {
    sets.insert(sets.end(), {"model.nf=8", "model.num_res_blocks=1", "model.ch_mult=[1,2,2]", "data.image_size=16",
                             "model.attn_resolutions=[8]"});
    auto cfg = load_config(job("cifar10_ve_ncsnpp_continuous"), sets);
    auto net = models::make_model(cfg);
    auto x = torch::rand({2, 3, 16, 16});
    auto labels = cfg.model.embedding_type == "fourier" ? torch::tensor({0.5f, 20.0f}) : torch::tensor({10.0f, 900.0f});
    auto y = net->forward(x, labels);
    BOOST_TEST(y.sizes() == x.sizes(), sets[0]);
    BOOST_TEST(torch::isfinite(y).all().item<bool>(), sets[0]);
    if (!cfg.model.conditional) {  // no time input: the output ignores the label
      net->eval();
      BOOST_TEST(torch::allclose(net->forward(x, labels), net->forward(x, labels * 2)));
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused_with_the_key) {
  auto msg = error_of([] { load_config(job("cifar10_ve_ncsnpp_continuous"), {"training.continuous=false"}); });
  BOOST_TEST(msg.find("embedding_type") != std::string::npos, msg);
  msg = error_of([] { load_config(job("cifar10_ve_ncsnpp_continuous"), {"model.progressive=\"skip\""}); });
  BOOST_TEST(msg.find("model.progressive") != std::string::npos, msg);
  msg = error_of([] { load_config(job("cifar10_ve_ncsnpp_continuous"), {"data.image_size=36"}); });
  BOOST_TEST(msg.find("data.image_size") != std::string::npos, msg);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(reference_import)

BOOST_AUTO_TEST_CASE(imported_networks_reproduce_the_reference_outputs) {
  test::TempDir dir("import");
  for (const char* name : {"ncsnpp_ve", "ddpmpp_vp", "ncsnpp_skip", "ncsnpp_ddpmblocks"}) {
    auto cfg = load_config(fixture(std::string(name) + ".toml"), {});
    auto ref = interop::read_score_sde_pytorch(fixture(std::string(name) + ".pth"));
    auto expected = io::load_torch_zip(fixture(std::string(name) + "_expected.pt")).toGenericDict();
    auto x = expected.at("x").toTensor(), labels = expected.at("labels").toTensor();
    auto out_model = expected.at("out_model").toTensor(), out_ema = expected.at("out_ema").toTensor();
    BOOST_TEST(max_abs_diff(out_model, out_ema) > 1e-3, name << ": raw and EMA outputs must differ to test both");

    auto net = models::make_model(cfg);
    auto st = interop::convert_reference(ref, *net, cfg, name);
    BOOST_TEST(st.step == 3);
    BOOST_TEST(st.adam_steps == 3);
    BOOST_TEST(st.ema_updates == 3);
    // Through the HDF5 checkpoint, as the CLI does.
    const std::string path = dir / (std::string(name) + ".h5");
    io::save_checkpoint(path, st);
    auto loaded = io::load_checkpoint(path);
    net->eval();
    torch::NoGradGuard ng;
    const double scale = out_model.abs().max().item<double>();
    models::load_weights(*net, io::weights(loaded, /*use_ema=*/false), loaded.buffers);
    auto y = net->forward(x, labels);
    BOOST_TEST(max_abs_diff(y, out_model) < 1e-4 * scale, name << ": raw weights, max diff " << max_abs_diff(y, out_model));
    models::load_weights(*net, io::weights(loaded, /*use_ema=*/true), loaded.buffers);
    y = net->forward(x, labels);
    BOOST_TEST(max_abs_diff(y, out_ema) < 1e-4 * scale, name << ": EMA weights, max diff " << max_abs_diff(y, out_ema));
    // Adam moments are mapped by the optimizer's parameter ids: the first trainable one.
    BOOST_TEST(loaded.exp_avg_sq.size() == loaded.ema.size());
  }
}

// import -> scorch checkpoint -> export gives back the published file: the same keys, and
// every tensor with its dtype and bits (model with module.sigmas, EMA shadow list, Adam
// moments by parameter id), the step, the EMA counters and Adam's step. Python's torch.load
// (2.x, its default weights_only=True) reads the export with the tests' Python (SCORCH_PYTHON:
// the venv of jobs/setup.sh --torch pip; skipped, not failed, where it has no torch).
BOOST_AUTO_TEST_CASE(import_then_export_gives_back_the_file_bitwise) {
  test::TempDir dir("export");
  for (const char* name : {"ncsnpp_ve", "ddpmpp_vp", "ncsnpp_skip", "ncsnpp_ddpmblocks"}) {
    BOOST_TEST_CONTEXT(name) {
      auto cfg = load_config(fixture(std::string(name) + ".toml"), {});
      auto net = models::make_model(cfg);
      auto st = interop::convert_reference(interop::read_score_sde_pytorch(fixture(std::string(name) + ".pth")), *net, cfg, name);
      const std::string h5 = dir / (std::string(name) + ".h5"), pth = dir / (std::string(name) + ".pth");
      io::save_checkpoint(h5, st);
      io::save_torch_file(pth, interop::to_score_sde_pytorch(io::load_checkpoint(h5), *net, cfg));
      auto a = io::load_torch_zip(fixture(std::string(name) + ".pth")).toGenericDict();
      auto b = io::load_torch_zip(pth).toGenericDict();
      auto same_tensor = [](const c10::IValue& x, const c10::IValue& y) {
        return x.isTensor() && y.isTensor() && x.toTensor().dtype() == y.toTensor().dtype() &&
               x.toTensor().sizes() == y.toTensor().sizes() && torch::equal(x.toTensor(), y.toTensor());
      };
      int64_t bad = 0, compared = 0;
      auto ma = a.at("model").toGenericDict(), mb = b.at("model").toGenericDict();
      BOOST_TEST(ma.size() == mb.size());
      for (const auto& e : ma) {
        const bool ok = mb.contains(e.key()) && same_tensor(e.value(), mb.at(e.key()));
        if (!ok) BOOST_TEST_MESSAGE("model tensor differs: " << e.key().toStringRef());
        bad += !ok;
        ++compared;
      }
      BOOST_TEST(mb.contains("module.sigmas"));
      auto ea = a.at("ema").toGenericDict(), eb = b.at("ema").toGenericDict();
      auto la = ea.at("shadow_params").toList(), lb = eb.at("shadow_params").toList();
      BOOST_TEST(la.size() == lb.size());
      for (size_t i = 0; i < std::min(la.size(), lb.size()); ++i, ++compared) bad += !same_tensor(la.get(i), lb.get(i));
      BOOST_TEST(ea.at("decay").toScalar().toDouble() == eb.at("decay").toScalar().toDouble());
      BOOST_TEST(ea.at("num_updates").toInt() == eb.at("num_updates").toInt());
      auto sa = a.at("optimizer").toGenericDict().at("state").toGenericDict();
      auto sb = b.at("optimizer").toGenericDict().at("state").toGenericDict();
      BOOST_TEST(sa.size() == sb.size());
      for (const auto& e : sa) {
        BOOST_REQUIRE(sb.contains(e.key()));
        auto x = e.value().toGenericDict(), y = sb.at(e.key()).toGenericDict();
        bad += !same_tensor(x.at("exp_avg"), y.at("exp_avg")) + !same_tensor(x.at("exp_avg_sq"), y.at("exp_avg_sq"));
        compared += 2;
        auto step_of = [](const c10::IValue& v) {
          return v.isTensor() ? v.toTensor().item<double>() : v.isInt() ? static_cast<double>(v.toInt()) : v.toDouble();
        };
        BOOST_TEST(step_of(x.at("step")) == step_of(y.at("step")));
      }
      auto pa = a.at("optimizer").toGenericDict().at("param_groups").toList();
      auto pb = b.at("optimizer").toGenericDict().at("param_groups").toList();
      BOOST_TEST(pa.get(0).toGenericDict().at("params").toList().size() ==
                 pb.get(0).toGenericDict().at("params").toList().size());
      BOOST_TEST(a.at("step").toInt() == b.at("step").toInt());
      BOOST_TEST(bad == 0);
      BOOST_TEST(compared > 20);
      // A plain state_dict of the EMA weights: no prefix, the shadow values in the parameters.
      io::save_torch_file(dir / "sd.pth", interop::to_state_dict(st, *net, cfg, /*ema=*/true));
      auto sd = io::load_torch_zip(dir / "sd.pth").toGenericDict();
      BOOST_TEST(sd.size() == ma.size());
      int64_t ema_bad = 0;
      for (const auto& [key, t] : st.ema) ema_bad += !torch::equal(sd.at(key).toTensor(), t);
      BOOST_TEST(ema_bad == 0);
      BOOST_TEST(!torch::equal(st.ema.begin()->second, st.params.at(st.ema.begin()->first)));  // EMA differs from raw
      if (std::system(SCORCH_PYTHON " -c 'import torch' > /dev/null 2>&1") == 0) {
        // score_sde_pytorch's restore in Python: strict load of the model, Adam, EMA, and
        // the reference network's recorded outputs (tests/fixtures/check_export.py).
        const std::string cmd = fmt::format("{} {} {} {}", SCORCH_PYTHON, fixture("check_export.py"), name, pth);
        BOOST_TEST(std::system(cmd.c_str()) == 0, "torch.load and strict restore of " << pth);
      } else {
        BOOST_TEST_MESSAGE(SCORCH_PYTHON " has no torch (jobs/setup.sh --torch pip): torch.load of the export skipped");
      }
    }
  }
}

// Full-size networks, when SCORCH_REFERENCE_DIR holds <job>.pth and <job>_expected.pt
// ({x, labels, out_model, out_ema} from the reference) for any of the jobs/ networks.
BOOST_AUTO_TEST_CASE(full_size_jobs_when_reference_files_are_given) {
  const char* dir = std::getenv("SCORCH_REFERENCE_DIR");
  if (dir == nullptr) {
    BOOST_TEST_MESSAGE("SCORCH_REFERENCE_DIR not set: full-size comparison not run");
    return;
  }
  int checked = 0;
  for (const char* name : {"cifar10_ve_ncsnpp_continuous", "cifar10_ve_ncsnpp_deep_continuous",
                           "cifar10_vp_ddpmpp_continuous", "cifar10_vp_ddpmpp_deep_continuous",
                           "cifar10_subvp_ddpmpp_continuous", "cifar10_subvp_ddpmpp_deep_continuous",
                           "cifar10_vp_ncsnpp_continuous", "celebahq256_ve_ncsnpp_continuous"}) {
    const std::string base = std::string(dir) + "/" + name;
    if (!std::filesystem::exists(base + ".pth") || !std::filesystem::exists(base + "_expected.pt")) continue;
    auto cfg = load_config(job(name), {});
    auto net = models::make_model(cfg);
    auto st = interop::convert_reference(interop::read_score_sde_pytorch(base + ".pth"), *net, cfg, base + ".pth");
    auto expected = io::load_torch_zip(base + "_expected.pt").toGenericDict();
    auto x = expected.at("x").toTensor(), labels = expected.at("labels").toTensor();
    net->eval();
    torch::NoGradGuard ng;
    for (bool ema : {false, true}) {
      auto want = expected.at(ema ? "out_ema" : "out_model").toTensor();
      models::load_weights(*net, io::weights(st, ema), st.buffers);
      auto y = net->forward(x, labels);
      const double diff = max_abs_diff(y, want), scale = want.abs().max().item<double>();
      BOOST_TEST_MESSAGE(name << (ema ? " EMA" : " raw") << ": max |diff| " << diff << " (output scale " << scale << ")");
      BOOST_TEST(diff < 1e-4 * scale, name << (ema ? " EMA" : " raw") << ": max diff " << diff);
    }
    ++checked;
  }
  BOOST_TEST(checked > 0, "SCORCH_REFERENCE_DIR=" << dir << " holds no <job>.pth + <job>_expected.pt pair");
}

BOOST_AUTO_TEST_CASE(checkpoints_of_another_network_are_refused_by_name) {
  auto ref = interop::read_score_sde_pytorch(fixture("ncsnpp_ve.pth"));
  {
    auto cfg = load_config(fixture("ddpmpp_vp.toml"), {});
    auto net = models::make_model(cfg);
    auto msg = error_of([&] { interop::convert_reference(ref, *net, cfg, "ncsnpp_ve.pth"); });
    BOOST_TEST(msg.find("extra 'module.all_modules.0.W'") != std::string::npos, msg);
  }
  {
    auto cfg = load_config(fixture("ncsnpp_ve.toml"), {"model.nf=8"});
    auto net = models::make_model(cfg);
    auto msg = error_of([&] { interop::convert_reference(ref, *net, cfg, "ncsnpp_ve.pth"); });
    BOOST_TEST(msg.find("'module.all_modules.0.W' has shape [4], the job's network expects [8]") != std::string::npos,
               msg);
  }
  {
    auto cfg = load_config(fixture("ncsnpp_ve.toml"), {"model.sigma_max=60.0"});
    auto net = models::make_model(cfg);
    auto msg = error_of([&] { interop::convert_reference(ref, *net, cfg, "ncsnpp_ve.pth"); });
    BOOST_TEST(msg.find("module.sigmas") != std::string::npos, msg);
  }
  {
    auto cfg = load_config(fixture("ncsnpp_ve.toml"), {});
    auto net = models::make_model(cfg);
    auto bad = ref;
    bad.ema_shadow.pop_back();
    auto msg = error_of([&] { interop::convert_reference(bad, *net, cfg, "x.pth"); });
    BOOST_TEST(msg.find("ema.shadow_params has 155 tensors") != std::string::npos, msg);
  }
}

BOOST_AUTO_TEST_CASE(damaged_or_legacy_files_are_errors_naming_the_file) {
  test::TempDir dir("import_bad");
  auto bytes = test::read_file(fixture("ncsnpp_ve.pth"));
  const std::string cut = dir / "cut.pth";
  test::write_file(cut, bytes.substr(0, bytes.size() / 2));
  auto msg = error_of([&] { interop::read_score_sde_pytorch(cut); });
  BOOST_TEST(msg.find("cut.pth") != std::string::npos, msg);
  const std::string legacy = dir / "legacy.pth";
  const char legacy_head[] = {'\x80', '\x02', '\x8a', '\x0a', 'l', '\xfc', '\x9c', 'F', '\xf9', ' ', 'j', '\xa8', 'P', '\x19', '.'};
  test::write_file(legacy, std::string(legacy_head, sizeof(legacy_head)));  // the pre-1.6 magic-number pickle
  msg = error_of([&] { interop::read_score_sde_pytorch(legacy); });
  BOOST_TEST(msg.find("legacy.pth") != std::string::npos, msg);
  BOOST_TEST(msg.find("zip-format") != std::string::npos, msg);
}

// The hostile files of issue 22: a 2,000,000-deep list (a stack overflow when destroyed),
// cyclic lists, a shape of 2^31 x 2^31 over four floats, and a storage whose claimed size
// differs from its archive record. Each is an error naming the file (and the key).
BOOST_AUTO_TEST_CASE(hostile_pickles_are_refused_naming_the_file_and_the_key) {
  test::TempDir dir("import_hostile");
  const std::string four_floats(reinterpret_cast<const char*>(std::array<float, 4>{1, 2, 3, 4}.data()), 16);
  const std::string k2 = "K\x02K\x02\x86", strides = "K\x02K\x01\x86";
  // The well-formed file of the same form loads, so each refusal below is the one edit's.
  const std::string good = dir / "good.pth";
  write_torch_zip(good, one_tensor_pickle(k2, strides, '\x04'), {{"0", four_floats}});
  auto w = io::load_torch_zip(good).toGenericDict().at("w").toTensor();
  BOOST_TEST(w.sizes().vec() == (std::vector<int64_t>{2, 2}));
  BOOST_TEST(w[1][0].item<float>() == 3.0f);

  const std::string deep = dir / "deep.pth";
  write_torch_zip(deep, "\x80\x02" + std::string(2000000, ']') + std::string(1999999, 'a') + ".", {});
  auto msg = error_of([&] { interop::read_score_sde_pytorch(deep); });
  BOOST_TEST(msg.find("deep.pth: the pickle nests containers more than 1000 deep") != std::string::npos, msg);

  const std::string self = dir / "self.pth";
  write_torch_zip(self, std::string("\x80\x02]q\x00h\x00" "a.", 8), {});
  msg = error_of([&] { interop::read_score_sde_pytorch(self); });
  BOOST_TEST(msg.find("self.pth: malformed pickle: a list contains itself") != std::string::npos, msg);
  const std::string cycle = dir / "cycle.pth";  // A = [B], then B.append(A)
  write_torch_zip(cycle, std::string("\x80\x02]q\x00]q\x01" "ah\x01h\x00" "a0.", 14), {});
  msg = error_of([&] { interop::read_score_sde_pytorch(cycle); });
  BOOST_TEST(msg.find("cycle.pth: malformed pickle: a container is modified after being placed inside another") !=
                 std::string::npos,
             msg);

  const std::string huge = dir / "huge.pth";
  const std::string two31 = std::string("\x8a\x05\x00\x00\x00\x80\x00", 7);
  write_torch_zip(huge, one_tensor_pickle(two31 + two31 + "\x86", "K\x01K\x01\x86", '\x04'), {{"0", four_floats}});
  msg = error_of([&] { io::load_torch_zip(huge); });
  BOOST_TEST(msg.find("huge.pth: a tensor claims shape [2147483648, 2147483648] (strides [1, 1], offset 0), near key "
                      "'w', beyond its storage of 4 elements") != std::string::npos,
             msg);

  const std::string claim = dir / "claim.pth";
  write_torch_zip(claim, one_tensor_pickle(k2, strides, '\x08'), {{"0", four_floats}});
  msg = error_of([&] { io::load_torch_zip(claim); });
  BOOST_TEST(msg.find("claim.pth: storage '0' claims 8 elements of 4 bytes, but its archive record 'data/0' holds 16 "
                      "bytes, near key 'w'") != std::string::npos,
             msg);
  // Hostile rerun: the storage record re-zipped as 64 MB of deflated zeros (torch.save never
  // compresses): refused from the ZIP directory, naming the member, before inflating anything.
  const std::string bomb = dir / "bomb.pth";
  const std::string py = "import sys, zipfile\n"
                         "src, dst = sys.argv[1:3]\n"
                         "zin, zout = zipfile.ZipFile(src), zipfile.ZipFile(dst, 'w')\n"
                         "for i in zin.infolist():\n"
                         "  if i.filename.endswith('/data/0'):\n"
                         "    zout.writestr(i.filename, bytes(64 << 20), compress_type=zipfile.ZIP_DEFLATED)\n"
                         "  else:\n"
                         "    zout.writestr(i.filename, zin.read(i.filename), compress_type=zipfile.ZIP_STORED)\n"
                         "zout.close()\n";
  test::write_file(dir / "bomb.py", py);
  BOOST_REQUIRE(std::system(fmt::format("/usr/bin/python3 {} {} {}", dir / "bomb.py", good, bomb).c_str()) == 0);
  BOOST_REQUIRE(std::filesystem::file_size(bomb) < (4u << 20));
  msg = error_of([&] { io::load_torch_zip(bomb); });
  BOOST_TEST(msg.find("bomb.pth: archive member 'good/data/0' is compressed (ZIP method 8, 67108864 bytes claimed") !=
                 std::string::npos,
             msg);
}

BOOST_AUTO_TEST_SUITE_END()
