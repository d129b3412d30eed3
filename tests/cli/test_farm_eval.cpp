// Distributed evaluation end to end, through the real binary: FID statistics equal on 1 and
// 2 ranks, FID of a set against itself 0, FID from a .npz equal to FID from features, the
// standard Inception interfaces giving Python's features, FID of a sample run with cached
// features, seed sets, the sweep over checkpoints and its records, and bits/dim from the farm
// equal to the direct computation on the same images.
#include "cli/farm_common.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/hdf5.h"
#include <torch/version.h>

using namespace scorch;
using test::run;
using test::scorch_cmd;
namespace fs = std::filesystem;

using namespace scorch::test::farm_helpers;

namespace {

// What the sweep cases evaluate: a run of tiny images (64, checkpoints every 2 steps up to
// `steps`) in d/w, the feature network and the reference statistics d/ref.npz of its data.
struct SweepCase {
  std::string base, w, feat;
};
SweepCase sweep_case(const test::TempDir& d, int64_t num_samples, int64_t bpd_images, int64_t steps) {
  auto cfg = test::tiny_image_config(d / "img.h5", 64, 4);
  cfg.eval.num_samples = num_samples;
  cfg.eval.bpd_num_images = bpd_images;
  cfg.eval.bpd_num_repeats = 1;
  cfg.eval.rtol = 1e-3;
  cfg.eval.atol = 1e-3;
  cfg.training.snapshot_freq = 2;
  SweepCase c{job(d, cfg), d / "w", " --feature-net " + feature_net(d)};
  auto r = run(scorch_cmd(1) + " train" + c.base + " --workdir " + c.w + " --set training.n_iters=" + std::to_string(steps));
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(1) + " eval fid-stats" + c.base + c.feat + " --data " + d / "img.h5" + " --out " + d / "ref.npz");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(farm)

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
// same interfaces written by the tests' Python's torch (tests/fixtures/inception_interfaces.py,
// random weights) give through scorch (2 ranks, grey images repeated to RGB) the features
// Python gives; FID equals pytorch-fid's formula with scipy's sqrtm; IS the one of the
// probabilities Python computes. A LibTorch older than that torch (1.13 against 2.x) refuses
// the modules, naming its version and what to do.
BOOST_AUTO_TEST_CASE(standard_inception_interfaces_give_the_features_python_gives) {
  if (std::system(SCORCH_PYTHON " -c 'import torch, h5py, scipy' > /dev/null 2>&1") != 0) {
    BOOST_TEST_MESSAGE(SCORCH_PYTHON " lacks torch, h5py or scipy (jobs/setup.sh --torch pip installs them): skipped");
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
  auto r = run(std::string(SCORCH_PYTHON) + " " + script + " " + d.path() + " " + d / "a.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  // PyTorch 2.x scripts operators LibTorch 1.13 lacks: there the modules are refused, naming
  // both versions and what to do (the features are compared where the versions agree).
  auto v = run(std::string(SCORCH_PYTHON) + " -c 'import torch; print(\"python torch\", torch.__version__.split(\".\")[0])'");
  if (last_number(v.out, "python torch") > TORCH_VERSION_MAJOR) {
    r = run(scorch_cmd(1) + " eval fid-stats" + job(d, cfg) + " --feature-net " + d / "nvidia.pt" + " --data " +
            d / "a.h5" + " --out " + d / "x.npz");
    BOOST_TEST_INFO(r.out);
    BOOST_TEST(r.code != 0);
    BOOST_TEST(r.out.find(d / "nvidia.pt") != std::string::npos);
    BOOST_TEST(r.out.find("saved by a newer PyTorch than " + std::string(TORCH_VERSION)) != std::string::npos);
    BOOST_TEST(!fs::exists(d / "x.npz"));
    return;
  }
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
      auto p = run(std::string(SCORCH_PYTHON) + " " + script + " fid " + d / (c.file + ".b.npz") + " " +
                   d / (c.file + ".a.npz"));
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
  const auto c = sweep_case(d, /*num_samples=*/16, /*bpd_images=*/8, /*steps=*/6);
  const std::string &w = c.w, &feat = c.feat;
  const std::string sweep = scorch_cmd(2) + " eval sweep --workdir " + w + feat + " --ref " + d / "ref.npz" +
                            " --every 2 --metric both";
  auto r = run(sweep);
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

// Hostile rerun: every result belongs to the checkpoint that made it. A hand-edited record
// is not trusted; after `train --ckpt OLDER --discard-newer` (other weights at the same step)
// the sweep computes the new steps again and the old branch's samples, records, bits/dim
// batches and log rows lie beside the moved checkpoints; a checkpoint file replaced by hand
// is sampled again; a checkpoint that vanishes during the sweep is skipped with the table
// still written.
BOOST_AUTO_TEST_CASE(results_belong_to_the_checkpoint_that_made_them) {
  test::TempDir d("farmlineage");
  const auto c = sweep_case(d, /*num_samples=*/8, /*bpd_images=*/4, /*steps=*/4);
  const std::string &base = c.base, &w = c.w, &feat = c.feat;
  const std::string sweep = scorch_cmd(1) + " eval sweep --workdir " + w + feat + " --ref " + d / "ref.npz" +
                            " --metric both";
  auto r = run(sweep);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const double fid4 = last_number(r.out, "best_fid_step") == 4 ? last_number(r.out, "best_fid") : -1;
  // The record of step 4's FID, edited by hand: not reused (its checksum), computed again.
  const auto sample4 = test::newest_sample_run(w).first;
  BOOST_REQUIRE(sample4.find("/s000000004-") != std::string::npos);
  std::string record;
  for (const auto& e : fs::directory_iterator(sample4)) {
    if (e.path().extension() == ".json" && e.path().filename().string().rfind("eval-", 0) == 0) record = e.path();
  }
  BOOST_REQUIRE(!record.empty());
  {
    auto j = nlohmann::json::parse(test::read_file(record));
    j["results"]["fid"]["value"] = 1.0;
    std::ofstream(record) << j.dump(2);
  }
  r = run(sweep);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find(record + ": not reused, its checksum does not match") != std::string::npos, r.out);
  BOOST_TEST(last_number(r.out, "best_fid") != 1.0);
  if (fid4 >= 0) BOOST_TEST(last_number(r.out, "best_fid") == fid4, boost::test_tools::tolerance(1e-6));

  // Another branch from step 2 (another learning rate: other weights at steps 3 and 4).
  const auto old4 = io::load_checkpoint_header(w + "/checkpoints/ckpt_000000004.h5");
  r = run(scorch_cmd(1) + " train" + base + " --workdir " + w + " --ckpt " + w +
          "/checkpoints/ckpt_000000002.h5 --discard-newer --set optim.lr=0.01 --set training.n_iters=4");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("a new branch of its history") != std::string::npos, r.out);
  const auto new4 = io::load_checkpoint_header(w + "/checkpoints/ckpt_000000004.h5");
  BOOST_TEST(new4.identity != old4.identity);
  BOOST_TEST(io::lineage_branch_at(new4.lineage, 2) == io::lineage_branch_at(old4.lineage, 2));
  BOOST_TEST(io::lineage_branch_at(new4.lineage, 4) != io::lineage_branch_at(old4.lineage, 4));
  const auto moved = run("ls -R " + w + "/checkpoints/discarded-*/").out;
  BOOST_TEST(moved.find("ckpt_000000004.h5") != std::string::npos, moved);
  BOOST_TEST(moved.find(fs::path(sample4).filename().string()) != std::string::npos, moved);
  BOOST_TEST(moved.find("bpd-s000000004-") != std::string::npos, moved);
  BOOST_TEST(moved.find("bpd_000000004.h5") != std::string::npos, moved);
  BOOST_TEST(moved.find("eval_log.csv") != std::string::npos, moved);
  BOOST_TEST(moved.find("train_log.csv") != std::string::npos, moved);
  BOOST_TEST(!fs::exists(sample4));
  BOOST_TEST(test::read_file(w + "/eval_log.csv").find(",4,fid,") == std::string::npos);
  r = run(sweep);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  size_t reused = 0;
  for (size_t at = 0; (at = r.out.find("already evaluated", at)) != std::string::npos; ++at) ++reused;
  BOOST_TEST(reused == 2u, r.out);  // steps 2's FID and bits/dim only
  double swept4 = -1;
  {
    std::ifstream in(w + "/eval/sweep-both.csv");
    std::string row;
    while (std::getline(in, row)) {
      const auto f = test::csv_fields(row);
      if (f.at(0) == "4") swept4 = std::stod(f.at(4));
    }
  }
  auto one = run(scorch_cmd(1) + " eval bpd --workdir " + w);  // the new step 4, computed afresh
  BOOST_REQUIRE_MESSAGE(one.code == 0, one.out);
  BOOST_TEST(last_number(one.out, "bpd") == swept4, boost::test_tools::tolerance(1e-3));

  // Step 4's file replaced by hand with another run's step 4: its samples are not reused.
  r = run(scorch_cmd(1) + " train" + base + " --workdir " + d / "other" + " --set optim.lr=0.02 --set training.n_iters=4");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  fs::copy_file(d / "other/checkpoints/ckpt_000000004.h5", w + "/checkpoints/ckpt_000000004.h5",
                fs::copy_options::overwrite_existing);
  r = run(scorch_cmd(1) + " sample" + base + " --workdir " + w);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("holds results of this step from another checkpoint") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("0 to compute") == std::string::npos, r.out);

  // A checkpoint of an older format (version 3: no stored identity) keeps the names its results
  // had, and batches written before identities were recorded are reused for it (an upgrade
  // does not recompute a finished run).
  {
    test::as_older_version(w + "/checkpoints/ckpt_000000004.h5", 3, {"identity", "lineage"});
    r = run(scorch_cmd(1) + " sample" + base + " --workdir " + w);
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    const auto legacy_run = test::newest_sample_run(w).first;
    for (const auto& e : fs::directory_iterator(legacy_run)) {
      if (e.path().extension() != ".h5") continue;
      hid_t b = H5Fopen(e.path().c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
      BOOST_REQUIRE(b >= 0);
      H5Adelete(b, "checkpoint_identity");  // as the older scorch wrote them
      H5Fclose(b);
    }
    r = run(scorch_cmd(1) + " sample" + base + " --workdir " + w);
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    BOOST_TEST(r.out.find(": 1 already done, 0 to compute") != std::string::npos, r.out);  // 8 samples, one batch
    BOOST_TEST(test::newest_sample_run(w).first == legacy_run);
  }

  // A checkpoint deleted after the sweep listed it (a dangling name): skipped, table written.
  fs::create_symlink(w + "/gone.h5", w + "/checkpoints/ckpt_000000003.h5");
  r = run(scorch_cmd(1) + " eval sweep --workdir " + w + " --metric bpd");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("ckpt_000000003.h5 (step 3) is gone") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("skipped 1 checkpoint(s) deleted during the sweep") != std::string::npos, r.out);
  BOOST_TEST(fs::exists(w + "/eval/sweep-bpd.csv"));
}

// Hostile rerun: a feature network that raises, or returns a tuple holding a string, fails
// naming its file; a failed fid-stats leaves no empty cache folder (its farm lock) behind.
BOOST_AUTO_TEST_CASE(feature_net_failures_name_the_file_and_leave_nothing) {
  test::TempDir d("farmbadnet");
  auto cfg = test::tiny_image_config(d / "img.h5", 16, 4);
  const auto base = job(d, cfg);
  auto module = [&](const std::string& name, const std::string& body) {
    torch::jit::Module m("Bad");
    m.define(body);
    m.save(d / name);
    return d / name;
  };
  const auto raises = module("raises.pt", R"(
def forward(self, x):
    return torch.matmul(torch.flatten(x, 1), torch.ones(5, 7))
)");  // fails inside forward: the shapes do not multiply
  const auto stringy = module("stringy.pt", R"(
def forward(self, x):
    return ("features", torch.flatten(x, 1))
)");
  for (const auto& net : {raises, stringy}) {
    BOOST_TEST_CONTEXT(net) {
      const std::string out = d / (fs::path(net).stem().string() + ".npz");
      auto r = run(scorch_cmd(1) + " eval fid-stats" + base + " --feature-net " + net + " --data " + d / "img.h5" +
                   " --out " + out);
      BOOST_TEST(r.code != 0);
      BOOST_TEST(r.out.find(net + ": ") != std::string::npos, r.out);
      BOOST_TEST(!fs::exists(out));
      size_t left = 0;
      for (const auto& e : fs::directory_iterator(d.path())) left += e.path().string().find(".parts-") != std::string::npos;
      BOOST_TEST(left == 0u);
    }
  }
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

BOOST_AUTO_TEST_SUITE_END()
