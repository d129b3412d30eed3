// FID, IS, KID and .npz against ground truth: the Frechet distance of two Gaussians in
// closed form, moments against a direct covariance, FID of a set against itself, IS of
// known class distributions, KID of equal and shifted sets, .npz round trips (stored and
// deflated members, as np.savez and np.savez_compressed write them), and per-sample noise
// that does not depend on the batch.
#include <zlib.h>

#include <cmath>

#include "common.h"
#include "scorch/core/random.h"
#include "scorch/core/stop.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/communicator.h"
#include "scorch/eval/features.h"
#include "scorch/eval/metrics.h"
#include "scorch/eval/reference.h"
#include "scorch/io/npz.h"
#include "scorch/sampling/noise.h"

using namespace scorch;

namespace {

torch::Tensor rand_spd(int64_t F, uint64_t seed) {
  auto g = make_generator(seed);
  auto a = torch::randn({F, F}, g, torch::kFloat64);
  return a.mm(a.t()) / F + 0.1 * torch::eye(F, torch::kFloat64);
}

// tr sqrt(S1 S2) by a route independent of the implementation: the symmetric square root
// of S1 by Newton-Schulz-free eigen-decomposition of S2^(1/2) S1 S2^(1/2) would be the same
// formula, so use the definition instead: eigenvalues of S1 S2 (real, positive) via eig.
double trace_sqrt_by_eig(const torch::Tensor& s1, const torch::Tensor& s2) {
  auto ev = at::linalg_eigvals(s1.mm(s2));
  return torch::real(ev).clamp_min(0).sqrt().sum().item<double>();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(metrics)

BOOST_AUTO_TEST_CASE(frechet_distance_matches_closed_forms) {
  // Diagonal covariances: sum (sqrt(a) - sqrt(b))^2 + |mu1 - mu2|^2.
  auto a = torch::tensor({1.0, 4.0, 9.0}, torch::kFloat64), b = torch::tensor({4.0, 1.0, 0.25}, torch::kFloat64);
  auto mu1 = torch::tensor({0.0, 1.0, 2.0}, torch::kFloat64), mu2 = torch::tensor({1.0, 1.0, 0.0}, torch::kFloat64);
  const double want = (a.sqrt() - b.sqrt()).pow(2).sum().item<double>() + (mu1 - mu2).pow(2).sum().item<double>();
  BOOST_TEST(eval::frechet_distance(mu1, torch::diag(a), mu2, torch::diag(b)).value == want,
             boost::test_tools::tolerance(1e-12));
  // General (non-commuting) covariances: against the eigenvalues of S1 S2.
  auto s1 = rand_spd(16, 1), s2 = rand_spd(16, 2);
  auto m1 = torch::randn({16}, torch::kFloat64), m2 = torch::randn({16}, torch::kFloat64);
  const double ref = (m1 - m2).pow(2).sum().item<double>() + s1.trace().item<double>() + s2.trace().item<double>() -
                     2 * trace_sqrt_by_eig(s1, s2);
  auto f = eval::frechet_distance(m1, s1, m2, s2);
  BOOST_TEST(f.value == ref, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(!f.used_eps);
  // A set against itself: 0 (up to round-off), also for a singular covariance (n < F).
  BOOST_TEST(std::abs(eval::frechet_distance(m1, s1, m1, s1).value) < 1e-9);
  eval::Moments few;
  few.add(torch::randn({5, 16}, torch::kFloat64));
  auto fs = eval::frechet_distance(few.mean(), few.covariance(), few.mean(), few.covariance());
  BOOST_TEST(std::abs(fs.value) < 1e-6);
}

BOOST_AUTO_TEST_CASE(moments_give_the_unbiased_covariance_and_sample_fid_approaches_the_population_fid) {
  auto g = make_generator(5);
  auto x = torch::randn({2000, 6}, g, torch::kFloat64) * torch::tensor({1.0, 2.0, 0.5, 1.0, 3.0, 1.0}, torch::kFloat64) + 3;
  eval::Moments m, parts;
  m.add(x);
  parts.add(x.slice(0, 0, 700));
  parts.add(x.slice(0, 700, 2000));
  auto direct = torch::cov(x.t());  // rows = variables, unbiased
  BOOST_TEST(torch::allclose(m.covariance(), direct, 1e-10, 1e-10));
  BOOST_TEST(torch::allclose(m.mean(), x.mean(0), 1e-12, 1e-12));
  BOOST_TEST(torch::allclose(parts.covariance(), direct, 1e-10, 1e-10));
  // Samples of N(0, I) and N(d, diag(4)) in 4-D: FID -> |d|^2 + 4 (2 - 1)^2 = |d|^2 + 4.
  auto y = torch::randn({20000, 4}, g, torch::kFloat64);
  auto z = torch::randn({20000, 4}, g, torch::kFloat64) * 2 + torch::tensor({1.0, 0.0, 0.0, 1.0}, torch::kFloat64);
  eval::Moments my, mz;
  my.add(y);
  mz.add(z);
  const double fid = eval::frechet_distance(my.mean(), my.covariance(), mz.mean(), mz.covariance()).value;
  BOOST_TEST(fid == 2.0 + 4.0, boost::test_tools::tolerance(0.03));
}

BOOST_AUTO_TEST_CASE(inception_score_and_kid_of_known_sets) {
  // Confident and evenly spread over K classes: IS = K. Uniform predictions: IS = 1.
  const int64_t K = 5, N = 1000;
  auto labels = torch::arange(N) % K;
  auto logits = torch::nn::functional::one_hot(labels, K).to(torch::kFloat64) * 50;
  BOOST_TEST(eval::inception_score(logits, 10).mean == 5.0, boost::test_tools::tolerance(1e-6));
  BOOST_TEST(eval::inception_score(torch::zeros({N, K}), 10).mean == 1.0, boost::test_tools::tolerance(1e-12));
  // KID: two samples of one distribution -> ~0 (unbiased); shifted -> clearly positive.
  auto g = make_generator(9);
  auto a = torch::randn({3000, 8}, g), b = torch::randn({3000, 8}, g), c = torch::randn({3000, 8}, g) + 1;
  auto same = eval::kernel_inception_distance(a, b, 20, 500, 1);
  auto diff = eval::kernel_inception_distance(a, c, 20, 500, 1);
  BOOST_TEST(std::abs(same.mean) < 4 * same.std + 1e-3);
  BOOST_TEST(diff.mean > 10 * std::abs(same.mean) + 0.01);
}

BOOST_AUTO_TEST_CASE(npz_round_trips_stored_and_deflated) {
  test::TempDir d("npz");
  auto mu = torch::randn({7}, torch::kFloat64), sigma = torch::randn({7, 7}, torch::kFloat64);
  auto f32 = torch::randn({3, 2}), i64 = torch::arange(5);
  io::write_npz(d / "s.npz", {{"mu", mu}, {"sigma", sigma}, {"f", f32}, {"i", i64}});
  auto back = io::read_npz(d / "s.npz");
  BOOST_TEST(back.size() == 4u);
  BOOST_TEST(torch::equal(back.at("mu"), mu));
  BOOST_TEST(torch::equal(back.at("sigma"), sigma));
  BOOST_TEST(torch::equal(back.at("f"), f32));
  BOOST_TEST(torch::equal(back.at("i"), i64));
  // The .npy header as numpy writes it (format 1.0, 64-byte aligned, C order).
  auto npy = io::npy_bytes(mu);
  BOOST_TEST(npy.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  BOOST_TEST((npy.size() - 7 * 8) % 64 == 0u);
  BOOST_TEST(npy.find("{'descr': '<f8', 'fortran_order': False, 'shape': (7,), }") != std::string::npos);
  // A Fortran-ordered array reads back transposed into C order.
  auto hdr = std::string("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }");
  hdr += std::string((64 - (10 + hdr.size() + 1) % 64) % 64, ' ') + "\n";
  std::string f("\x93NUMPY\x01\x00", 8);
  f.push_back(static_cast<char>(hdr.size()));
  f.push_back(0);
  f += hdr;
  auto cm = torch::tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}, torch::kFloat64);
  auto fortran = cm.t().contiguous();  // column-major bytes of cm
  f.append(static_cast<const char*>(fortran.data_ptr()), 6 * 8);
  BOOST_TEST(torch::equal(io::parse_npy(f, "fortran"), cm));
  // A deflated archive (np.savez_compressed, what pytorch-fid writes): rewrite our file's
  // member as ZIP method 8 and read it back.
  auto payload = io::npy_bytes(mu);
  std::string deflated(compressBound(static_cast<uLong>(payload.size())) + 64, '\0');
  z_stream s{};
  BOOST_REQUIRE(deflateInit2(&s, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  s.next_in = reinterpret_cast<Bytef*>(payload.data());
  s.avail_in = static_cast<uInt>(payload.size());
  s.next_out = reinterpret_cast<Bytef*>(deflated.data());
  s.avail_out = static_cast<uInt>(deflated.size());
  BOOST_REQUIRE(deflate(&s, Z_FINISH) == Z_STREAM_END);
  deflated.resize(s.total_out);
  deflateEnd(&s);
  const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(payload.data()),
                                                   static_cast<uInt>(payload.size())));
  auto le = [](std::string& o, uint32_t v, int n) {
    for (int i = 0; i < n; ++i) o.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  const std::string name = "mu.npy";
  std::string zip;
  le(zip, 0x04034b50, 4); le(zip, 20, 2); le(zip, 0, 2); le(zip, 8, 2); le(zip, 0, 4);
  le(zip, crc, 4); le(zip, static_cast<uint32_t>(deflated.size()), 4); le(zip, static_cast<uint32_t>(payload.size()), 4);
  le(zip, static_cast<uint32_t>(name.size()), 2); le(zip, 0, 2);
  zip += name + deflated;
  const auto cd = static_cast<uint32_t>(zip.size());
  le(zip, 0x02014b50, 4); le(zip, 20, 2); le(zip, 20, 2); le(zip, 0, 2); le(zip, 8, 2); le(zip, 0, 4);
  le(zip, crc, 4); le(zip, static_cast<uint32_t>(deflated.size()), 4); le(zip, static_cast<uint32_t>(payload.size()), 4);
  le(zip, static_cast<uint32_t>(name.size()), 2); le(zip, 0, 2); le(zip, 0, 2); le(zip, 0, 2); le(zip, 0, 2);
  le(zip, 0, 4); le(zip, 0, 4);
  zip += name;
  const auto cd_size = static_cast<uint32_t>(zip.size()) - cd;
  le(zip, 0x06054b50, 4); le(zip, 0, 2); le(zip, 0, 2); le(zip, 1, 2); le(zip, 1, 2); le(zip, cd_size, 4); le(zip, cd, 4);
  le(zip, 0, 2);
  test::write_file(d / "c.npz", zip);
  BOOST_TEST(torch::equal(io::read_npz(d / "c.npz").at("mu"), mu));
  // A corrupted member is refused by name.
  zip[40] = static_cast<char>(zip[40] ^ 0x55);
  test::write_file(d / "bad.npz", zip);
  auto msg = test::error_of([&] { io::read_npz(d / "bad.npz"); });
  BOOST_TEST(msg.find("bad.npz") != std::string::npos, msg);
  // Hostile rerun: headers that lie. A shape whose size wraps 64 bits (matching an empty
  // payload), a negative dimension, and a deflated member claiming more than its header.
  auto npy_with = [](const std::string& shape, const std::string& data) {
    auto h = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + shape + "), }";
    h += std::string((64 - (10 + h.size() + 1) % 64) % 64, ' ') + "\n";
    std::string f("\x93NUMPY\x01\x00", 8);
    f.push_back(static_cast<char>(h.size()));
    f.push_back(0);
    return f + h + data;
  };
  msg = test::error_of([&] { io::parse_npy(npy_with("4611686018427387904, 4", ""), "wrap.npy"); });
  BOOST_TEST(msg.find("wrap.npy: .npy header claims shape (4611686018427387904, 4)") != std::string::npos, msg);
  BOOST_TEST(msg.find("overflows 64 bits") != std::string::npos, msg);
  msg = test::error_of([&] { io::parse_npy(npy_with("-3, 4", std::string(96, '\0')), "neg.npy"); });
  BOOST_TEST(msg.find("neg.npy: .npy header claims a negative dimension -3") != std::string::npos, msg);
  // The deflated member above, its ZIP sizes claiming 1 GiB more than the header says.
  std::string liar = zip;
  liar[40] = static_cast<char>(liar[40] ^ 0x55);  // undo the corruption
  const size_t usize_local = 22, usize_central = cd + 24;
  for (size_t at : {usize_local, usize_central}) {
    const uint32_t big = static_cast<uint32_t>(payload.size()) + (1u << 30);
    for (int i = 0; i < 4; ++i) liar[at + static_cast<size_t>(i)] = static_cast<char>((big >> (8 * i)) & 0xff);
  }
  test::write_file(d / "liar.npz", liar);
  msg = test::error_of([&] { io::read_npz(d / "liar.npz"); });
  BOOST_TEST(msg.find(fmt::format("liar.npz: 'mu.npy' claims {} bytes uncompressed", payload.size() + (1u << 30))) !=
                 std::string::npos,
             msg);
  // Reference statistics must be what they claim: sigma [F,F] symmetric, as mu [F].
  auto m3 = torch::zeros({3}, torch::kFloat64);
  auto sym = torch::eye(3, torch::kFloat64);
  io::write_npz(d / "ok.npz", {{"mu", m3}, {"sigma", sym}});
  BOOST_TEST(eval::read_reference_stats(d / "ok.npz").at("sigma").equal(sym));
  auto asym = sym.clone();
  asym[0][1] = 0.5;
  io::write_npz(d / "asym.npz", {{"mu", m3}, {"sigma", asym}});
  msg = test::error_of([&] { eval::read_reference_stats(d / "asym.npz"); });
  BOOST_TEST(msg.find("asym.npz: 'sigma' is not symmetric") != std::string::npos, msg);
  io::write_npz(d / "shape.npz", {{"mu", m3}, {"sigma", torch::eye(4, torch::kFloat64)}});
  msg = test::error_of([&] { eval::read_reference_stats(d / "shape.npz"); });
  BOOST_TEST(msg.find("shape.npz: 'sigma' must be a float matrix [F,F] = [3,3]") != std::string::npos, msg);
}

// Item i's noise is a function of (seed, i) and the draw count only: the rows of a batch
// equal the same items drawn inside another batch.
BOOST_AUTO_TEST_CASE(per_item_noise_does_not_depend_on_the_batch) {
  auto big = sampling::Noise::per_item(11, {4, 5, 6, 7}, torch::kCPU);
  auto small = sampling::Noise::per_item(11, {6, 5}, torch::kCPU);
  for (int draw = 0; draw < 3; ++draw) {
    auto a = big.randn({4, 3, 5});
    auto b = small.randn({2, 3, 5});
    BOOST_TEST(torch::equal(a[2], b[0]));
    BOOST_TEST(torch::equal(a[1], b[1]));
    BOOST_TEST(std::abs(a.mean().item<double>()) < 0.5);
  }
  auto other_seed = sampling::Noise::per_item(12, {4}, torch::kCPU).randn({1, 3, 5});
  BOOST_TEST(!torch::equal(other_seed[0], sampling::Noise::per_item(11, {4}, torch::kCPU).randn({1, 3, 5})[0]));
  // Standard normal: moments of many draws of one item.
  auto n = sampling::Noise::per_item(3, {0}, torch::kCPU).randn({1, 200000});
  BOOST_TEST(std::abs(n.mean().item<double>()) < 0.01);
  BOOST_TEST(std::abs(n.std().item<double>() - 1) < 0.01);
}

namespace {

// A feature network of F features per image: mean pixel value times 1..F (deterministic).
class WideNet : public eval::FeatureNet {
 public:
  explicit WideNet(int64_t F) : F_(F) {}
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x) override {
    ++calls;
    auto m = x.flatten(1).mean(1, true);
    return {m * torch::arange(1, F_ + 1, torch::kFloat32).unsqueeze(0), torch::Tensor()};
  }
  std::string describe() const override { return fmt::format("wide test net ({} features)", F_); }
  std::string interface() const override { return "test"; }
  std::string id() const override { return fmt::format("{:016x}", F_); }
  int calls = 0;

 private:
  int64_t F_;
};

}  // namespace

// Hostile rerun: a feature network of 20,000+ features would need F x F float64 moments far
// beyond memory: refused from one image's features, before any batch, naming F, the estimate
// and what is available. A stop signal while the moments are summed ends it (nothing
// written); the cached features stay.
BOOST_AUTO_TEST_CASE(feature_moments_are_bounded_before_they_are_allocated) {
  test::TempDir d("moments");
  auto comm = dist::mpi_self();
  eval::ImageReader read = [](int64_t begin, int64_t count) {
    return torch::rand({count, 1, 4, 4}, torch::kFloat32) * 0 + static_cast<double>(begin % 7) / 7.0;
  };
  const double avail = data::available_memory();
  int64_t F = 20000;
  while (eval::moments_bytes(F, 1) <= 0.8 * avail) F *= 2;
  WideNet wide(F);
  const auto msg = test::error_of([&] {
    eval::compute_features(*comm, wide, torch::kCPU, 64, 16, d / "wide", "dynamic", read);
  });
  BOOST_TEST(msg.find(fmt::format("{} features per image: their float64 moments need about", F)) != std::string::npos,
             msg);
  BOOST_TEST(msg.find("is available") != std::string::npos, msg);
  BOOST_TEST(wide.calls == 1);  // the probe only
  BOOST_TEST(!std::filesystem::exists(d / "wide/batch_000000.h5"));
  BOOST_TEST(eval::moments_bytes(2048, 2) == 8.0 * 2048 * 2048 * 6);
  // A signal during the last batch: the farm finishes it, the moments stop.
  WideNet small(8);
  eval::ImageReader stop_at_end = [&](int64_t begin, int64_t count) {
    if (begin + count == 64) request_stop();
    return read(begin, count);
  };
  const auto stopped = test::error_of([&] {
    eval::compute_features(*comm, small, torch::kCPU, 64, 16, d / "small", "static", stop_at_end);
  });
  clear_stop_request();
  BOOST_TEST(stopped.find("stopped by a signal while summing the moments") != std::string::npos, stopped);
  auto again = eval::compute_features(*comm, small, torch::kCPU, 64, 16, d / "small", "static", read);
  BOOST_TEST(again.report.skipped == 4);  // the cached features
  BOOST_TEST(again.moments.n == 64);
}

BOOST_AUTO_TEST_SUITE_END()
