// The sampler farm and distributed evaluation end to end, through the real binary: samples
// bitwise equal on 1, 2 and 3 ranks (and with static dealing), close at another batch size
// for a per-sample sampler; a run killed with SIGKILL or stopped with SIGUSR1 finishes on
// rerun with exactly N unique indices; a run larger than 2 GiB with bounded memory; FID
// statistics equal on 1 and 2 ranks, FID of a set against itself 0, FID from a .npz equal
// to FID from features, FID of a sample run with cached features; bits/dim from the farm
// equal to the direct computation on the same images.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>

#include "cli/cli_common.h"
#include "scorch/cli/evaluation.h"
#include "common.h"
#include "scorch/core/random.h"
#include "scorch/data/dataset.h"
#include "scorch/eval/metrics.h"
#include "scorch/io/hdf5.h"
#include "scorch/io/npz.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/models/analytic_gmm.h"
#include "scorch/sde/sde.h"

using namespace scorch;
using test::run;
using test::scorch_cmd;
namespace fs = std::filesystem;

namespace {

// The 2-D mixture (no training needed, a per-sample exact score) sampled by the farm.
Config mixture(int64_t n, int64_t batch) {
  Config c = test::mixture_2d();
  c.model.num_scales = 50;
  c.eval.num_samples = n;
  c.eval.batch_size = batch;
  c.sampling.predictor = "reverse_diffusion";
  c.sampling.corrector = "langevin";  // its step uses batch means: the batch is the unit of work
  return c;
}

std::string job(const test::TempDir& d, const Config& c, const std::string& name = "job.toml") {
  test::write_file(d / name, to_toml(c));
  return " --config " + d / name;
}

double last_number(const std::string& out, const std::string& key) {
  std::smatch m;
  BOOST_REQUIRE_MESSAGE(std::regex_search(out, m, std::regex(key + R"( (-?[0-9.]+(e[-+]?[0-9]+)?))")), out);
  return std::stod(m[1]);
}

// A result at full precision from the JSON record an evaluation names ("provenance -> X").
double record_result(const std::string& out, const std::string& metric) {
  std::smatch m;
  BOOST_REQUIRE_MESSAGE(std::regex_search(out, m, std::regex(R"(provenance -> (\S+\.json))")), out);
  std::ifstream in(m[1].str());
  return nlohmann::json::parse(in)["results"][metric]["value"].get<double>();
}

// Every index of the newest run exactly once.
void check_unique_indices(const std::string& workdir, int64_t n) {
  auto idx = test::read_sample_run(workdir, "index");
  BOOST_TEST(idx.size(0) == n);
  BOOST_TEST(torch::equal(std::get<0>(idx.sort()), torch::arange(n, torch::kInt64)));
}

// A feature network in TorchScript, built here: [B,3,8,8] -> (tanh(x W^T) [B,12], logits [B,4]).
std::string feature_net(const test::TempDir& d) {
  torch::jit::Module m("FeatNet");
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  m.register_parameter("w", torch::randn({12, 3 * 8 * 8}, g) * 0.1, false);
  m.register_parameter("v", torch::randn({4, 12}, g), false);
  m.define(R"(
def forward(self, x):
    f = torch.tanh(torch.matmul(torch.flatten(x, 1), self.w.t()))
    return (f, torch.matmul(f, self.v.t()))
)");
  m.save(d / "feat.pt");
  return d / "feat.pt";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(farm)

BOOST_AUTO_TEST_CASE(samples_are_bitwise_equal_on_any_world_size_and_close_at_another_batch_size) {
  test::TempDir d("farmws");
  const auto base = job(d, mixture(300, 40));
  std::vector<torch::Tensor> out;
  for (int ranks : {1, 2, 3}) {
    auto w = d / ("w" + std::to_string(ranks));
    auto r = run(scorch_cmd(ranks) + " sample" + base + " --workdir " + w);
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    BOOST_TEST(r.out.find("8 batches (0 already done), 8 computed") != std::string::npos, r.out);
    out.push_back(test::read_sample_run(w));
    check_unique_indices(w, 300);
  }
  BOOST_TEST(torch::equal(out[0], out[1]));
  BOOST_TEST(torch::equal(out[0], out[2]));
  auto r = run(scorch_cmd(2) + " sample" + base + " --workdir " + d / "ws" + " --set eval.balance=static");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(torch::equal(test::read_sample_run(d / "ws"), out[0]));
  // Another seed gives other samples; the run name keeps them apart.
  r = run(scorch_cmd(1) + " sample" + base + " --workdir " + d / "w1" + " --set eval.seed=5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(!torch::equal(test::read_sample_run(d / "w1"), out[0]));
  BOOST_TEST(std::distance(fs::directory_iterator(d / "w1/samples"), fs::directory_iterator{}) == 2);
  // A per-sample sampler (no Langevin corrector) at batch sizes 40 and 64: the same samples
  // up to float round-off.
  r = run(scorch_cmd(2) + " sample" + base + " --workdir " + d / "b40" + " --set sampling.corrector=none");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " sample" + base + " --workdir " + d / "b64" +
          " --set sampling.corrector=none --set eval.batch_size=64");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  auto a = test::read_sample_run(d / "b40"), b = test::read_sample_run(d / "b64");
  BOOST_TEST(torch::allclose(a, b, 1e-5, 1e-5), (a - b).abs().max().item<double>());
  // The mixture's mean (0.3 (-2, 0) + 0.7 (2, 1) = (0.8, 0.7)) within 5 standard errors.
  BOOST_TEST(std::abs(out[0].mean(0)[0].item<double>() - 0.8) < 5 * 1.9 / std::sqrt(300.0));
}

BOOST_AUTO_TEST_CASE(killed_or_stopped_runs_finish_with_exactly_n_unique_samples) {
  test::TempDir d("farmkill");
  auto c = mixture(2000, 50);  // 40 batches
  c.model.num_scales = 3000;   // ~0.1-0.3 s per batch
  const auto base = job(d, c);
  const auto w = d / "w";
  const std::string count_files = "$(ls " + w + "/samples/*/batch_*.h5 2>/dev/null | wc -l)";
  // SIGKILL of the whole job (launcher and ranks: Open MPI puts each rank in a process group of
  // its own, so the session is killed, as Slurm kills a job step) once a few batches are
  // written; the rerun starts once every process of the killed job is gone (a rank that
  // outlives its launcher still holds the run directory's lock, and a rerun is refused).
  auto r = run("bash -c 'setsid " + scorch_cmd(2) + " sample" + base + " --workdir " + w +
               " > " + d / "log1" + " 2>&1 & pid=$!; for i in $(seq 600); do [ " + count_files +
               " -ge 4 ] && break; sleep 0.05; done; " + test::kill_session_and_wait() + "'");
  BOOST_TEST(r.out.find("rc=137") != std::string::npos, r.out);
  r = run("ls " + w + "/samples/*/batch_*.h5 | wc -l");
  const int done_before = std::stoi(r.out);
  BOOST_TEST(done_before >= 4);
  BOOST_TEST(done_before < 40, "the run finished before it was killed: make it slower");
  r = run(scorch_cmd(2) + " sample" + base + " --workdir " + w);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  std::smatch m;
  BOOST_REQUIRE(std::regex_search(r.out, m, std::regex(R"(40 batches \((\d+) already done\), (\d+) computed)")));
  BOOST_TEST(std::stoi(m[1]) >= done_before);
  BOOST_TEST(std::stoi(m[1]) + std::stoi(m[2]) == 40);
  check_unique_indices(w, 2000);
  r = run("ls -a " + test::newest_sample_run(w).first + " | grep -c tmp || true");
  BOOST_TEST(std::stoi(r.out) == 0, "temporaries left behind");

  // SIGUSR1 (Slurm's warning): the batches in hand finish, exit status 3, a rerun finishes.
  const auto w2 = d / "w2";
  const std::string count2 = "$(ls " + w2 + "/samples/*/batch_*.h5 2>/dev/null | wc -l)";
  r = run("bash -c '" + scorch_cmd(2) + " sample" + base + " --workdir " + w2 + " & pid=$!; for i in $(seq 600); do [ " +
          count2 + " -ge 2 ] && break; sleep 0.05; done; kill -USR1 $pid; wait $pid; echo rc=$?'");
  BOOST_TEST(r.out.find("rc=3") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("stopped by a signal") != std::string::npos, r.out);
  r = run(scorch_cmd(1) + " sample" + base + " --workdir " + w2);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  check_unique_indices(w2, 2000);
  // The resumed run's samples are those of an uninterrupted run.
  r = run(scorch_cmd(2) + " sample" + base + " --workdir " + d / "ref");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(torch::equal(test::read_sample_run(w), test::read_sample_run(d / "ref")));
  BOOST_TEST(torch::equal(test::read_sample_run(w2), test::read_sample_run(d / "ref")));
}

// 8200 samples of 65,536 float32 values: 2.15 GB, more than the 2 GiB that one gather could
// carry, with each rank holding one batch (300 x 256 KiB) at a time.
BOOST_AUTO_TEST_CASE(a_run_larger_than_2_gib_completes_with_bounded_memory) {
  test::TempDir d("farmbig");
  const int64_t D = 65536, n = 8200;
  Config c;
  c.model.name = "analytic_gmm";
  c.model.gmm_means = {std::vector<double>(D, 0.0)};
  c.model.gmm_stds = {0.5};
  c.model.gmm_weights = {1.0};
  c.model.num_scales = 2;
  c.data.dim = D;
  c.eval.num_samples = n;
  c.eval.batch_size = 300;
  const auto base = job(d, c);
  auto r = run(scorch_cmd(2) + " sample" + base + " --workdir " + d / "w");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out.substr(0, 4000));
  const auto [dir, plan] = test::newest_sample_run(d / "w");
  int64_t bytes = 0, rows = 0;
  for (const auto& b : scorch::farm::batches(plan)) {
    auto f = h5::File::open_read(b.path);
    auto s = h5::shape(f.id(), "samples");
    rows += s[0];
    bytes += s[0] * s[1] * 4;
  }
  BOOST_TEST(rows == n);
  BOOST_TEST(bytes > (int64_t{1} << 31));
  const double peak = last_number(r.out, "peak resident memory per rank:");
  // The same batches, 7x fewer of them: the peak does not grow with the run.
  r = run(scorch_cmd(2) + " sample" + base + " --workdir " + d / "small" + " --set eval.num_samples=1200");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out.substr(0, 4000));
  const double small = last_number(r.out, "peak resident memory per rank:");
  BOOST_TEST_MESSAGE("peak resident memory per rank: " << peak << " MiB for 2.15 GB of samples, " << small
                                                       << " MiB for 0.31 GB");
  BOOST_TEST(peak < 1.1 * small + 64);
  BOOST_TEST(peak < 2048.0);
}

BOOST_AUTO_TEST_CASE(fid_statistics_are_world_size_invariant_and_exact_on_known_sets) {
  test::TempDir d("farmfid");
  auto cfg = test::tiny_image_config(d / "a.h5", 300, 1);
  test::tiny_image_config(d / "b.h5", 200, 2);
  cfg.eval.batch_size = 64;
  const auto base = job(d, cfg) + " --feature-net " + feature_net(d);
  auto r = run(scorch_cmd(1) + " eval fid-stats" + base + " --data " + d / "a.h5" + " --out " + d / "a1.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " eval fid-stats" + base + " --data " + d / "a.h5" + " --out " + d / "a2.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(!fs::exists(d / "a2.npz.parts"));
  auto s1 = io::read_npz(d / "a1.npz"), s2 = io::read_npz(d / "a2.npz");
  BOOST_TEST(torch::allclose(s1.at("mu"), s2.at("mu"), 1e-12, 1e-14));
  BOOST_TEST(torch::allclose(s1.at("sigma"), s2.at("sigma"), 1e-12, 1e-14));
  BOOST_TEST(s1.at("sigma").sizes() == (std::vector<int64_t>{12, 12}));
  BOOST_TEST(s1.at("features").sizes() == (std::vector<int64_t>{300, 12}));
  // The statistics are those of the features the file carries.
  eval::Moments ma;
  ma.add(s1.at("features"));
  BOOST_TEST(torch::allclose(ma.covariance(), s1.at("sigma"), 1e-10, 1e-12));
  // A set against its own statistics: FID 0, KID ~0.
  r = run(scorch_cmd(2) + " eval fid" + base + " --workdir " + d / "w" + " --ref " + d / "a1.npz" + " --data " + d / "a.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(std::abs(last_number(r.out, "fid")) < 1e-5);
  BOOST_TEST(r.out.find(" is ") != std::string::npos);
  BOOST_TEST(std::abs(last_number(r.out, "kid")) < 0.05);
  // Another set: the CLI's FID equals the Frechet distance of the two files' features.
  r = run(scorch_cmd(2) + " eval fid-stats" + base + " --data " + d / "b.h5" + " --out " + d / "b.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " eval fid" + base + " --workdir " + d / "w" + " --ref " + d / "a1.npz" + " --data " + d / "b.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  eval::Moments mb;
  mb.add(io::read_npz(d / "b.npz").at("features"));
  const double direct = eval::frechet_distance(mb.mean(), mb.covariance(), ma.mean(), ma.covariance()).value;
  BOOST_TEST(last_number(r.out, "fid") == direct, boost::test_tools::tolerance(1e-5));
  BOOST_TEST(direct > 1e-4);
  // score_sde's statistics file of the same reference set (its pool_3 features, float32, in
  // a compressed-or-not .npz, no mu/sigma): the same FID, and KID from its features.
  io::write_npz(d / "a_score_sde.npz", {{"pool_3", s1.at("features").to(torch::kFloat32)},
                                          {"logits", torch::zeros({300, 4})}});
  r = run(scorch_cmd(2) + " eval fid" + base + " --workdir " + d / "w" + " --ref " + d / "a_score_sde.npz" +
          " --data " + d / "b.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("score_sde statistics (300 images, 12 features)") != std::string::npos, r.out);
  eval::Moments m32;
  m32.add(s1.at("features").to(torch::kFloat32).to(torch::kFloat64));
  BOOST_TEST(last_number(r.out, "fid") ==
                 eval::frechet_distance(mb.mean(), mb.covariance(), m32.mean(), m32.covariance()).value,
             boost::test_tools::tolerance(1e-5));
  BOOST_TEST(r.out.find(" kid ") != std::string::npos, r.out);
  io::write_npz(d / "neither.npz", {{"images", torch::zeros({3, 2})}});
  r = run(scorch_cmd(1) + " eval fid" + base + " --workdir " + d / "w" + " --ref " + d / "neither.npz" + " --data " +
          d / "b.h5");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("neither.npz: neither 'mu' and 'sigma' arrays") != std::string::npos, r.out);
  // Statistics of another network are refused by name.
  r = run(scorch_cmd(1) + " train-classifier" + job(d, cfg) + " --out " + d / "clf.h5" +
          " --set classifier.epochs=1 --set classifier.batch_size=32 --set classifier.nf=4");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(1) + " eval fid" + job(d, cfg) + " --feature-net " + d / "clf.h5" + " --workdir " + d / "w" +
          " --ref " + d / "a1.npz" + " --data " + d / "b.h5");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("another feature network") != std::string::npos, r.out);
  // The classifier as a feature network: its own statistics, FID of a set against itself 0.
  r = run(scorch_cmd(2) + " eval fid-stats" + job(d, cfg) + " --feature-net " + d / "clf.h5" + " --data " + d / "a.h5" +
          " --out " + d / "ca.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " eval fid" + job(d, cfg) + " --feature-net " + d / "clf.h5" + " --workdir " + d / "w" +
          " --ref " + d / "ca.npz" + " --data " + d / "a.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(std::abs(last_number(r.out, "fid")) < 1e-4);
}

// The two standard Inception files, by their interfaces: small TorchScript modules of the
// same interfaces written by Debian's python3-torch (tests/fixtures/inception_interfaces.py,
// random weights) give through scorch (2 ranks, grey images repeated to RGB) the features
// Python gives; FID equals pytorch-fid's formula with scipy's sqrtm; IS the one of the
// probabilities Python computes.
BOOST_AUTO_TEST_CASE(standard_inception_interfaces_give_the_features_python_gives) {
  if (std::system("/usr/bin/python3 -c 'import torch, h5py, scipy' > /dev/null 2>&1") != 0) {
    BOOST_TEST_MESSAGE("python3-torch, python3-h5py or python3-scipy is not installed: skipped");
    return;
  }
  test::TempDir d("farminception");
  auto cfg = test::tiny_image_config(d / "a.h5", 40, 1);
  {
    // Another distribution (darker), so that the FID is far from 0.
    auto g = at::make_generator<at::CPUGeneratorImpl>(2);
    data::write_images(d / "b.h5", torch::randint(0, 128, {30, 8, 8, 1}, g, torch::kInt64).to(torch::kUInt8),
                       torch::arange(30) % 10);
  }
  cfg.eval.batch_size = 16;
  cfg.eval.is_splits = 4;
  const std::string script = std::string(SCORCH_SOURCE_DIR) + "/tests/fixtures/inception_interfaces.py";
  auto r = run("/usr/bin/python3 " + script + " " + d.path() + " " + d / "a.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto py = io::read_npz(d / "python_features.npz");
  struct Case {
    std::string file, recognised, key;
  };
  for (const Case& c : {Case{"nvidia.pt", "NVIDIA TF-Inception TorchScript", "nvidia_features"},
                        Case{"pytorch_fid.pt", "pytorch-fid InceptionV3 TorchScript", "fid_features"}}) {
    BOOST_TEST_CONTEXT(c.file) {
      const auto base = job(d, cfg) + " --feature-net " + d / c.file;
      r = run(scorch_cmd(2) + " eval fid-stats" + base + " --data " + d / "a.h5" + " --out " + d / (c.file + ".a.npz"));
      BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
      BOOST_TEST(r.out.find("feature network: " + c.recognised) != std::string::npos, r.out);
      const auto ours = io::read_npz(d / (c.file + ".a.npz")).at("features");
      const auto theirs = py.at(c.key);
      BOOST_REQUIRE(ours.sizes() == theirs.sizes());
      BOOST_TEST(torch::allclose(ours, theirs, 1e-5, 1e-6), (ours - theirs).abs().max().item<double>());
      r = run(scorch_cmd(1) + " eval fid-stats" + base + " --data " + d / "b.h5" + " --out " + d / (c.file + ".b.npz"));
      BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
      r = run(scorch_cmd(2) + " eval fid" + base + " --workdir " + d / "w" + " --ref " + d / (c.file + ".a.npz") +
              " --data " + d / "b.h5");
      BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
      auto p = run("/usr/bin/python3 " + script + " fid " + d / (c.file + ".b.npz") + " " + d / (c.file + ".a.npz"));
      BOOST_REQUIRE_MESSAGE(p.code == 0, p.out);
      const double python_fid = last_number(p.out, "python fid");
      BOOST_TEST(python_fid > 1e-2);
      BOOST_TEST(record_result(r.out, "fid") == python_fid, boost::test_tools::tolerance(1e-6));
      if (c.file == "nvidia.pt") {
        // IS from the module's probabilities without the output bias (StyleGAN2-ADA's IS).
        const auto probs = py.at("nvidia_probs");
        r = run(scorch_cmd(2) + " eval fid" + base + " --workdir " + d / "w" + " --ref " + d / (c.file + ".b.npz") +
                " --data " + d / "a.h5");
        BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
        const auto is = eval::inception_score(probs.to(torch::kFloat64).clamp_min(1e-30).log(), 4);
        BOOST_TEST(record_result(r.out, "is") == is.mean, boost::test_tools::tolerance(1e-5));
        BOOST_TEST(is.mean > 1.0);
      } else {
        BOOST_TEST(r.out.find(" is ") == std::string::npos, r.out);  // pytorch-fid's has no logits
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(fid_of_a_sample_run_uses_cached_features_on_rerun) {
  test::TempDir d("farmrun");
  auto cfg = test::tiny_image_config(d / "img.h5", 64, 4);
  cfg.eval.num_samples = 24;
  const auto base = job(d, cfg);
  const auto w = d / "w";
  auto r = run(scorch_cmd(1) + " train" + base + " --workdir " + w + " --set training.n_iters=2");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string feat = " --feature-net " + feature_net(d);
  r = run(scorch_cmd(2) + " eval fid" + feat + " --workdir " + w + " --ref " + d / "none.npz");
  BOOST_TEST(r.code != 0);  // no such reference file: refused before any work
  r = run(scorch_cmd(1) + " eval fid-stats" + base + feat + " --data " + d / "img.h5" + " --out " + d / "ref.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " eval fid" + feat + " --workdir " + w + " --ref " + d / "ref.npz");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("no sample run for this checkpoint") != std::string::npos, r.out);
  r = run(scorch_cmd(2) + " sample --workdir " + w);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " eval fid" + feat + " --workdir " + w + " --ref " + d / "ref.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const double first = last_number(r.out, "fid");
  BOOST_TEST(r.out.find("(from 24 samples, not 50,000: biased upwards, not comparable to a published FID-50k)") !=
                 std::string::npos,
             r.out);
  BOOST_TEST(std::isfinite(first));
  BOOST_TEST(first > 0);
  const auto dir = test::newest_sample_run(w).first;
  {
    // Provenance: the record beside the run and the rows of eval_log.csv name every input by
    // its SHA-256 (as sha256sum prints it).
    std::smatch m;
    BOOST_REQUIRE_MESSAGE(std::regex_search(r.out, m, std::regex(R"(provenance -> (\S+\.json))")), r.out);
    BOOST_TEST(m[1].str().rfind(dir + "/eval-", 0) == 0, m[1].str());
    std::ifstream in(m[1].str());
    const auto j = nlohmann::json::parse(in);
    BOOST_TEST(j["results"]["fid"]["value"].get<double>() == first, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(j["results"]["fid"]["note"].get<std::string>().find("from 24 samples") == 0);
    const std::string ck = w + "/checkpoints/ckpt_000000002.h5";
    BOOST_TEST(j["checkpoint"]["file"].get<std::string>() == ck);
    BOOST_TEST(j["checkpoint"]["sha256"].get<std::string>() == test::sha256sum(ck));
    BOOST_TEST(j["checkpoint"]["weights"].get<std::string>().find("EMA (decay") == 0);
    BOOST_TEST(j["step"].get<int64_t>() == 2);
    BOOST_TEST(j["n"].get<int64_t>() == 24);
    BOOST_TEST(j["seeds"].get<std::string>().find("i = 0..23") != std::string::npos, j["seeds"]);
    BOOST_TEST(j["sampler"]["sampling.method"].get<std::string>() == "pc");
    BOOST_TEST(j["nfe"]["min"].get<double>() >= 20);
    BOOST_TEST(j["nfe"]["min"].get<double>() <= j["nfe"]["max"].get<double>());
    BOOST_TEST(j["feature_net"]["sha256"].get<std::string>() == test::sha256sum(d / "feat.pt"));
    BOOST_TEST(j["feature_net"]["interface"].get<std::string>().find("torchscript") == 0);
    BOOST_TEST(j["reference"]["sha256"].get<std::string>() == test::sha256sum(d / "ref.npz"));
    BOOST_TEST(j["reference"]["n"].get<int64_t>() == 64);
    BOOST_TEST(!j["scorch"]["commit"].get<std::string>().empty());
    std::ifstream el(w + "/eval_log.csv");
    std::string row, metrics;
    std::getline(el, row);
    while (std::getline(el, row)) {
      const auto f = test::csv_fields(row);
      BOOST_REQUIRE(f.size() == 26u);
      metrics += f[2] + " ";
      BOOST_TEST(f[10] == test::sha256sum(ck));
      BOOST_TEST(f[15] == test::sha256sum(d / "feat.pt"));
      BOOST_TEST(f[18] == test::sha256sum(d / "ref.npz"));
      BOOST_TEST(f[24] == m[1].str());
    }
    BOOST_TEST(metrics == "fid is kid ");
  }
  bool stats = false;
  for (const auto& e : fs::directory_iterator(dir)) stats |= e.path().filename().string().rfind("fid_stats-", 0) == 0;
  BOOST_TEST(stats);
  r = run(scorch_cmd(1) + " eval fid" + feat + " --workdir " + w + " --ref " + d / "ref.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("3 batches (3 already done), 0 computed") != std::string::npos, r.out);
  BOOST_TEST(last_number(r.out, "fid") == first, boost::test_tools::tolerance(1e-9));
}

// eval.seed_sets = 3: three runs whose samples are those of one run three times as long
// (set k = samples k*n .. (k+1)*n-1, bitwise), each evaluated on its own (the same FID as
// `eval fid --run` of that set), and the summary's minimum, mean and standard deviation
// those of the three values.
BOOST_AUTO_TEST_CASE(seed_sets_are_slices_of_one_long_run_with_min_mean_and_std) {
  test::TempDir d("farmsets");
  auto cfg = test::tiny_image_config(d / "img.h5", 64, 4);
  cfg.eval.num_samples = 16;
  cfg.sampling.corrector = "none";
  const auto base = job(d, cfg);
  const auto w = d / "w";
  auto r = run(scorch_cmd(1) + " train" + base + " --workdir " + w + " --set training.n_iters=2");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " sample --workdir " + w + " --set eval.num_samples=48");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto long_run = test::read_sample_run(w, "images");
  r = run(scorch_cmd(2) + " sample --workdir " + w + " --set eval.seed_sets=3");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("seed set 3 of 3: samples 32..47") != std::string::npos, r.out);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(w + "/samples")) {
    std::ifstream in(e.path() / "manifest.json");
    const auto m = nlohmann::json::parse(in);
    if (m["num_samples"].get<int64_t>() != 16) continue;
    const int64_t k = m["seed_set"].get<int64_t>();
    BOOST_TEST_CONTEXT("set " << k) {
      BOOST_TEST(m["first_index"].get<int64_t>() == 16 * k);
      scorch::farm::Plan plan;
      plan.dir = e.path().string();
      plan.num_items = 16;
      plan.batch_size = cfg.eval.batch_size;
      BOOST_TEST(torch::equal(scorch::farm::read_batches(plan, "images"), long_run.narrow(0, 16 * k, 16)));
    }
    if (names.size() <= static_cast<size_t>(k)) names.resize(static_cast<size_t>(k) + 1);
    names[static_cast<size_t>(k)] = e.path().filename().string();
  }
  BOOST_REQUIRE(names.size() == 3u);
  // A rerun computes nothing; eval fid evaluates each set and summarises.
  r = run(scorch_cmd(1) + " sample --workdir " + w + " --set eval.seed_sets=3");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  size_t skipped = 0;
  for (size_t at = 0; (at = r.out.find("2 batches (2 already done), 0 computed", at)) != std::string::npos; ++at) ++skipped;
  BOOST_TEST(skipped == 3u, r.out);
  const std::string feat = " --feature-net " + feature_net(d);
  r = run(scorch_cmd(1) + " eval fid-stats" + base + feat + " --data " + d / "img.h5" + " --out " + d / "ref.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " eval fid" + feat + " --workdir " + w + " --ref " + d / "ref.npz" +
          " --set eval.seed_sets=3");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  std::vector<double> fids;
  for (int k = 1; k <= 3; ++k) fids.push_back(last_number(r.out, "seed set " + std::to_string(k) + ": fid"));
  for (size_t k = 0; k < 3; ++k) {
    auto one = run(scorch_cmd(1) + " eval fid" + feat + " --workdir " + w + " --ref " + d / "ref.npz" + " --run " +
                   names[k]);
    BOOST_REQUIRE_MESSAGE(one.code == 0, one.out);
    BOOST_TEST(last_number(one.out, "fid") == fids[k], boost::test_tools::tolerance(1e-5));
  }
  const auto t = torch::tensor(fids, torch::kFloat64);
  BOOST_TEST(!(fids[0] == fids[1] && fids[1] == fids[2]));
  BOOST_TEST(last_number(r.out, "\nfid") == t.mean().item<double>(), boost::test_tools::tolerance(1e-5));
  BOOST_TEST(last_number(r.out, "fid_min") == t.min().item<double>(), boost::test_tools::tolerance(1e-5));
  BOOST_TEST(last_number(r.out, "fid_std") == t.std().item<double>(), boost::test_tools::tolerance(1e-4));
  std::smatch m;
  BOOST_REQUIRE_MESSAGE(std::regex_search(r.out, m, std::regex(R"(provenance of the 3 sets -> (\S+))")), r.out);
  std::ifstream in(m[1].str());
  const auto j = nlohmann::json::parse(in);
  BOOST_TEST(j["seed_sets"].size() == 3u);
  BOOST_TEST(j["results"]["fid_min"]["value"].get<double>() == t.min().item<double>(),
             boost::test_tools::tolerance(1e-6));
  BOOST_TEST(j["n"].get<int64_t>() == 48);
}

// eval sweep over every 2nd checkpoint (the newest among them): FID and bits/dim of each,
// equal to `eval fid` / `eval bpd` of that checkpoint; the table, plots and best marked; a
// rerun reads the records and adds no row.
BOOST_AUTO_TEST_CASE(sweep_evaluates_every_nth_checkpoint_and_resumes_from_its_records) {
  BOOST_TEST(cli::sweep_selection(3, 2) == (std::vector<size_t>{0, 2}));
  BOOST_TEST(cli::sweep_selection(4, 2) == (std::vector<size_t>{1, 3}));
  BOOST_TEST(cli::sweep_selection(1, 5) == (std::vector<size_t>{0}));
  BOOST_TEST(cli::sweep_selection(0, 1).empty());
  test::TempDir d("farmsweep");
  auto cfg = test::tiny_image_config(d / "img.h5", 64, 4);
  cfg.eval.num_samples = 16;
  cfg.eval.bpd_num_images = 8;
  cfg.eval.bpd_num_repeats = 1;
  cfg.eval.rtol = 1e-3;
  cfg.eval.atol = 1e-3;
  cfg.training.snapshot_freq = 2;
  const auto base = job(d, cfg);
  const auto w = d / "w";
  auto r = run(scorch_cmd(1) + " train" + base + " --workdir " + w + " --set training.n_iters=6");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string feat = " --feature-net " + feature_net(d);
  r = run(scorch_cmd(1) + " eval fid-stats" + base + feat + " --data " + d / "img.h5" + " --out " + d / "ref.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string sweep = scorch_cmd(2) + " eval sweep --workdir " + w + feat + " --ref " + d / "ref.npz" +
                            " --every 2 --metric both";
  r = run(sweep);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("2 of its 3 checkpoints") != std::string::npos, r.out);
  std::ifstream in(w + "/eval/sweep-both.csv");
  std::string header, row;
  std::getline(in, header);
  BOOST_TEST(header == "step,checkpoint,fid,fid_record,bpd,bpd_record");
  std::vector<int64_t> steps;
  std::vector<double> fids, bpds;
  while (std::getline(in, row)) {
    const auto f = test::csv_fields(row);
    BOOST_REQUIRE(f.size() == 6u);
    steps.push_back(std::stoll(f[0]));
    fids.push_back(std::stod(f[2]));
    bpds.push_back(std::stod(f[4]));
  }
  BOOST_TEST(steps == (std::vector<int64_t>{2, 6}));
  for (size_t k = 0; k < steps.size(); ++k) {
    const std::string ck = fmt::format(" --ckpt {}/checkpoints/ckpt_{:09d}.h5", w, steps[k]);
    auto one = run(scorch_cmd(1) + " eval fid --workdir " + w + ck + feat + " --ref " + d / "ref.npz");
    BOOST_REQUIRE_MESSAGE(one.code == 0, one.out);
    BOOST_TEST(last_number(one.out, "fid") == fids[k], boost::test_tools::tolerance(1e-5));
    one = run(scorch_cmd(1) + " eval bpd --workdir " + w + ck);
    BOOST_REQUIRE_MESSAGE(one.code == 0, one.out);
    BOOST_TEST(last_number(one.out, "bpd") == bpds[k], boost::test_tools::tolerance(1e-3));
  }
  const size_t best = fids[0] <= fids[1] ? 0 : 1;
  BOOST_TEST(last_number(r.out, "best_fid") == fids[best], boost::test_tools::tolerance(1e-5));
  BOOST_TEST(last_number(r.out, "best_fid_step") == static_cast<double>(steps[best]));
  BOOST_TEST(fs::file_size(w + "/eval/sweep-fid.png") > 1000u);
  BOOST_TEST(fs::file_size(w + "/eval/sweep-bpd.png") > 1000u);
  // A rerun reads every result from its record: nothing computed, no row added.
  auto rows = [&] {
    std::ifstream el(w + "/eval_log.csv");
    return std::count(std::istreambuf_iterator<char>(el), {}, '\n');
  };
  const auto before = rows();
  r = run(sweep);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  size_t reused = 0;
  for (size_t at = 0; (at = r.out.find("already evaluated", at)) != std::string::npos; ++at) ++reused;
  BOOST_TEST(reused == 4u, r.out);
  BOOST_TEST(rows() == before);
  BOOST_TEST(last_number(r.out, "best_fid") == fids[best], boost::test_tools::tolerance(1e-6));
}

// The farm's bits/dim per item equal the direct computation on the same items with the
// same noise streams (repeat k of batch c draws from (seed, k, c)).
BOOST_AUTO_TEST_CASE(bpd_from_the_farm_equals_the_direct_computation) {
  test::TempDir d("farmbpd");
  auto c = mixture(10, 16);
  c.model.num_scales = 1000;
  c.eval.bpd_num_images = 40;
  c.eval.bpd_num_repeats = 2;
  c.eval.rtol = 1e-4;
  c.eval.atol = 1e-4;
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  auto pts = torch::randn({50, 2}, g) + torch::tensor({2.0f, 1.0f});
  data::write_points(d / "pts.h5", pts, {});
  c.data.path = d / "pts.h5";
  const auto base = job(d, c);
  auto r = run(scorch_cmd(3) + " eval bpd" + base + " --workdir " + d / "w");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("3 batches (0 already done), 3 computed") != std::string::npos, r.out);
  auto f = h5::File::open_read(d / "w/eval/bpd_000000000.h5");
  auto farm_bpd = h5::read_tensor(f.id(), "bpd", "bpd");  // [R, N]
  BOOST_TEST(farm_bpd.sizes() == (std::vector<int64_t>{2, 40}));
  auto sde = sde::make_sde(c);
  models::AnalyticGMM gmm(c.model);
  models::ScoreFn score = [&](const torch::Tensor& x, const torch::Tensor& t) { return gmm.score(*sde, x, t); };
  for (int64_t chunk = 0; chunk < 3; ++chunk) {
    const int64_t b0 = chunk * 16, b = std::min<int64_t>(16, 40 - b0);
    for (int64_t k = 0; k < 2; ++k) {
      auto gen = make_generator(derive_seed(static_cast<uint64_t>(c.seed), Stream::kLikelihood,
                                            {static_cast<uint64_t>(k), static_cast<uint64_t>(chunk)}));
      auto x = pts.slice(0, b0, b0 + b);
      auto e = likelihood::rademacher({b, 2}, gen);
      auto res = likelihood::logp_ode(score, *sde, x, e, {c.eval.rtol, c.eval.atol});
      auto want = likelihood::bits_per_dim(res.logp, 2, 0.0).to(torch::kFloat64);
      BOOST_TEST(torch::allclose(farm_bpd[k].slice(0, b0, b0 + b), want, 1e-9, 1e-9));
    }
  }
  BOOST_TEST(last_number(r.out, "bpd") == farm_bpd.mean().item<double>(), boost::test_tools::tolerance(1e-3));
  // A rerun computes nothing and prints the same result.
  auto again = run(scorch_cmd(2) + " eval bpd" + base + " --workdir " + d / "w");
  BOOST_REQUIRE_MESSAGE(again.code == 0, again.out);
  BOOST_TEST(again.out.find("3 batches (3 already done), 0 computed") != std::string::npos, again.out);
  BOOST_TEST(last_number(again.out, "bpd") == last_number(r.out, "bpd"));
}

// Guided sampling through the farm: class_label = balanced gives sample i class i mod 2,
// saved as /labels, and at guidance scale 0 (the exact conditional score) every sample lies
// in its class's component; classifier guidance with the mixture's exact posterior at scale
// 1 puts an unconditional model's samples into class 0. DPM-Solver++ reports NFE 20.
BOOST_AUTO_TEST_CASE(guided_samples_carry_their_labels_and_follow_their_class) {
  test::TempDir d("farmguided");
  auto c = mixture(64, 16);
  c.model.num_classes = 2;
  c.sampling.method = "dpm_solver";
  c.sampling.steps = 20;
  c.sampling.class_label = "balanced";
  const auto w = " --workdir " + d / "w";
  auto r = run(scorch_cmd(2) + " sample" + job(d, c) + w);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("NFE per item 20.0") != std::string::npos, r.out);
  auto [dir, plan] = test::newest_sample_run(d / "w");
  BOOST_TEST(dir.find("dpm_solver20-cbalanced") != std::string::npos, dir);
  auto labels = scorch::farm::read_batches(plan, "labels");
  auto x = scorch::farm::read_batches(plan, "samples").to(torch::kFloat64);
  BOOST_TEST(torch::equal(labels, torch::arange(64, torch::kInt64).remainder(2)));
  auto m0 = torch::tensor({-2.0, 0.0}, torch::kFloat64), m1 = torch::tensor({2.0, 1.0}, torch::kFloat64);
  auto nearer1 = ((x - m1).pow(2).sum(1) < (x - m0).pow(2).sum(1)).to(torch::kInt64);
  BOOST_TEST(torch::equal(nearer1, labels));
  // Classifier guidance of the unconditional mixture with its exact posterior.
  c.model.num_classes = 0;
  c.sampling.class_label = "0";
  c.sampling.classifier = "exact";
  r = run(scorch_cmd(2) + " sample" + job(d, c, "clf.toml") + w);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  auto y = test::read_sample_run(d / "w").to(torch::kFloat64);
  BOOST_TEST(((y - m0).pow(2).sum(1) < (y - m1).pow(2).sum(1)).all().item<bool>());
  // A label outside the classes is refused before any work.
  c.sampling.class_label = "2";
  c.sampling.classifier = "";
  c.model.num_classes = 2;
  r = run(scorch_cmd(1) + " sample" + job(d, c, "bad.toml") + w);
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("sampling.class_label") != std::string::npos, r.out);
}

// `scorch inpaint` on points: the first coordinate is known (an HDF5 /mask [1, 0]); on 2
// ranks every row comes back with it unchanged, bitwise, and the second filled in.
BOOST_AUTO_TEST_CASE(inpaint_keeps_the_known_coordinates_through_the_farm) {
  test::TempDir d("farminpaint");
  auto c = mixture(16, 16);
  const auto jobfile = job(d, c);
  auto r = run(scorch_cmd(1) + " prepare mixture" + jobfile + " --out " + d / "pts.h5 --count 40");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  h5::write_atomically(d / "mask.h5", [](hid_t f) { h5::write_tensor(f, "mask", torch::tensor({1.0f, 0.0f})); });
  r = run(scorch_cmd(2) + " inpaint" + jobfile + " --workdir " + d / "w" + " --data " + d / "pts.h5" + " --mask " +
          d / "mask.h5" + " --out " + d / "out.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  auto data = data::load(d / "pts.h5").points;
  auto f = h5::File::open_read(d / "out.h5");
  auto out = h5::read_tensor(f.id(), "samples", d / "out.h5");
  BOOST_TEST(out.sizes() == data.sizes());
  BOOST_TEST(torch::equal(out.select(1, 0), data.select(1, 0)));
  BOOST_TEST(!torch::allclose(out.select(1, 1), data.select(1, 1)));
  BOOST_TEST(torch::isfinite(out).all().item<bool>());
  BOOST_TEST(!fs::exists(d / "out.h5.parts"));
  // A mask of the wrong size is named.
  h5::write_atomically(d / "bad.h5", [](hid_t f) { h5::write_tensor(f, "mask", torch::ones({3})); });
  r = run(scorch_cmd(1) + " inpaint" + jobfile + " --workdir " + d / "w" + " --data " + d / "pts.h5" + " --mask " +
          d / "bad.h5");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("bad.h5: /mask has 3 entries") != std::string::npos, r.out);
  // NaN and fractional masks are refused, counted; nothing is written.
  const std::string base = scorch_cmd(1) + " inpaint" + jobfile + " --workdir " + d / "w" + " --data " + d / "pts.h5";
  h5::write_atomically(d / "nan.h5", [](hid_t f) { h5::write_tensor(f, "mask", torch::tensor({std::nanf(""), 0.0f})); });
  r = run(base + " --mask " + d / "nan.h5");
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("nan.h5: /mask holds NaN in 1 of 2 entries") != std::string::npos, r.out);
  h5::write_atomically(d / "half.h5", [](hid_t f) { h5::write_tensor(f, "mask", torch::tensor({0.5f, 0.0f})); });
  r = run(base + " --mask " + d / "half.h5");
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("half.h5: /mask holds 1 of 2 entries that are neither 0 nor 1 (e.g. 0.5)") != std::string::npos,
             r.out);
  BOOST_TEST(!fs::exists(d / "w/samples"));
  // Default outputs are named after the mask: two masks, two files.
  h5::write_atomically(d / "other.h5", [](hid_t f) { h5::write_tensor(f, "mask", torch::tensor({0.0f, 1.0f})); });
  BOOST_REQUIRE(run(base + " --mask " + d / "mask.h5").code == 0);
  BOOST_REQUIRE(run(base + " --mask " + d / "other.h5").code == 0);
  r = run("ls " + d / "w/samples/");
  BOOST_TEST(std::regex_search(r.out, std::regex(R"(inpaint_\d+-[a-z_-]+-mask[0-9a-f]{8}\.h5\n(.|\n)*inpaint_\d+-[a-z_-]+-mask[0-9a-f]{8}\.h5)")),
             r.out);
}

// A noise-conditional classifier trains on perturbed images (2 ranks) and is refused as a
// FID feature network by name.
BOOST_AUTO_TEST_CASE(noise_conditional_classifier_trains_and_is_not_a_feature_net) {
  test::TempDir d("farmnoisy");
  auto cfg = test::tiny_image_config(d / "a.h5", 128, 1);
  const auto base = job(d, cfg);
  auto r = run(scorch_cmd(2) + " train-classifier --noise-conditional" + base + " --out " + d / "nc.h5" +
               " --set classifier.epochs=1 --set classifier.batch_size=32 --set classifier.nf=4");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("noise-conditional") != std::string::npos, r.out);
  r = run(scorch_cmd(1) + " eval fid-stats" + base + " --feature-net " + d / "nc.h5" + " --data " + d / "a.h5" +
          " --out " + d / "s.npz");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("noise-conditional") != std::string::npos, r.out);
}

// `scorch colorize` on 8x8 RGB images with a (briefly trained) U-Net: every output pixel
// keeps the input's grey level (R+G+B)/3 to float precision, the colours are sampled, and
// the grid "grey | result | original" is written.
BOOST_AUTO_TEST_CASE(colorize_keeps_the_grey_levels_through_the_farm) {
  test::TempDir d("farmcolor");
  auto cfg = test::tiny_image_config(d / "gray.h5", 64, 3);
  auto imgs = torch::randint(0, 256, {64, 8, 8, 3}, torch::kInt64).to(torch::kUInt8);
  data::write_images(d / "rgb.h5", imgs, torch::Tensor());
  cfg.data.path = d / "rgb.h5";
  cfg.data.num_channels = 3;
  cfg.training.n_iters = 2;
  cfg.training.batch_size = 8;
  cfg.model.num_scales = 10;
  cfg.eval.batch_size = 4;
  const auto base = job(d, cfg);
  auto r = run(scorch_cmd(1) + " train" + base + " --workdir " + d / "w");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " colorize --workdir " + d / "w" + " --data " + d / "rgb.h5" + " --count 8 --out " +
          d / "col.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(fs::exists(d / "col.png"));
  auto f = h5::File::open_read(d / "col.h5");
  auto out = h5::read_tensor(f.id(), "samples", d / "col.h5");  // [8,3,8,8] in [0,1]
  auto in = data::images_to_unit(imgs.slice(0, 0, 8));
  BOOST_TEST((out.mean(1) - in.mean(1)).abs().max().item<double>() < 1e-5);
  BOOST_TEST((out - in).abs().max().item<double>() > 0.01);
  // A grey-scale model cannot colour.
  r = run(scorch_cmd(1) + " colorize --workdir " + d / "w" + " --data " + d / "rgb.h5" + " --set data.num_channels=1");
  BOOST_TEST(r.code != 0);
}

// Hostile reruns: a batch file whose index is right but whose data are damaged is computed
// again (not counted as done, then failing every reader); a second identical run into the
// same run directory is refused while the first holds it, and a run of other settings in
// the same workdir goes on beside it.
BOOST_AUTO_TEST_CASE(damaged_batch_data_are_computed_again_and_one_run_directory_has_one_run) {
  test::TempDir d("farmhostile");
  auto c = mixture(40, 10);  // 4 batches
  const auto base = job(d, c);
  const auto w = d / "w";
  auto r = run(scorch_cmd(1) + " sample" + base + " --workdir " + w);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto good = test::read_sample_run(w);
  const auto dir = test::newest_sample_run(w).first;
  const std::string victim = dir + "/batch_000001.h5";
  {  // flip one byte inside the first chunk of /samples (its Fletcher-32 no longer matches)
    auto f = h5::File::open_read(victim);
    h5::Handle ds(H5Dopen2(f.id(), "samples", H5P_DEFAULT), H5Dclose);
    h5::Handle space(H5Dget_space(ds.id()), H5Sclose);
    haddr_t addr = 0;
    hsize_t size = 0;
    BOOST_REQUIRE(H5Dget_chunk_info(ds.id(), space.id(), 0, nullptr, nullptr, &addr, &size) >= 0);
    f.close();
    std::fstream io(victim, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(static_cast<std::streamoff>(addr + size / 2));
    char ch = 0;
    io.get(ch);
    io.seekp(static_cast<std::streamoff>(addr + size / 2));
    io.put(static_cast<char>(ch ^ 0x5a));
  }
  r = run(scorch_cmd(2) + " sample" + base + " --workdir " + w);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find(victim + " cannot be read") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("4 batches (3 already done), 1 computed") != std::string::npos, r.out);
  BOOST_TEST(torch::equal(test::read_sample_run(w), good));

  // One run directory, one run: the second identical command is refused while the first works.
  auto slow = mixture(2000, 50);
  slow.model.num_scales = 3000;
  const auto sjob = job(d, slow, "slow.toml");
  const auto w2 = d / "w2";
  const std::string count = "$(ls " + w2 + "/samples/*/batch_*.h5 2>/dev/null | wc -l)";
  r = run("bash -c '" + scorch_cmd(1) + " sample" + sjob + " --workdir " + w2 + " > " + d / "first.log" +
          " 2>&1 & pid=$!; for i in $(seq 900); do [ " + count + " -ge 2 ] && break; sleep 0.05; done; " +
          scorch_cmd(1) + " sample" + sjob + " --workdir " + w2 + "; echo second=$?; " + scorch_cmd(1) + " sample" +
          sjob + " --workdir " + w2 + " --set eval.seed=7 --set eval.num_samples=100; echo other=$?; wait $pid; "
          "echo first=$?'");
  BOOST_TEST(r.out.find("second=1") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("is in use by another scorch process (scorch sample") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("other=0") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("first=0") != std::string::npos, r.out);
  const auto log = test::read_file(d / "first.log");
  BOOST_TEST(log.find("40 batches (0 already done), 40 computed") != std::string::npos, log);
}

BOOST_AUTO_TEST_SUITE_END()
