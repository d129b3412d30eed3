// The sampler farm end to end, through the real binary: samples bitwise equal on 1, 2 and 3
// ranks (and with static dealing), close at another batch size for a per-sample sampler; a
// run killed with SIGKILL or stopped with SIGUSR1 finishes on rerun with exactly N unique
// indices; a run larger than 2 GiB with bounded memory; guided samples, inpainting and
// colourisation through the farm; damaged batches computed again. The evaluations (FID, IS,
// KID, bits/dim, seed sets, sweeps) are in cli/test_farm_eval.cpp.
#include "cli/farm_common.h"

using namespace scorch;
using test::run;
using test::scorch_cmd;
namespace fs = std::filesystem;

using namespace scorch::test::farm_helpers;

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
  BOOST_TEST(std::regex_search(r.out, std::regex(R"(inpaint_\d+-[a-z_-]+-mask[0-9a-f]{8}-[0-9a-f]{8}\.h5\n(.|\n)*inpaint_\d+-[a-z_-]+-mask[0-9a-f]{8}-[0-9a-f]{8}\.h5)")),
             r.out);
  // Hostile rerun: the name covers every input: another --count, eval.seed or --data with the
  // same mask writes another file (the earlier results stay as they were).
  auto count_h5 = [&] {
    return std::count_if(fs::directory_iterator(d / "w/samples"), fs::directory_iterator{}, [](const auto& e) {
      return e.path().extension() == ".h5";
    });
  };
  BOOST_TEST(count_h5() == 2);
  BOOST_REQUIRE(run(base + " --mask " + d / "mask.h5" + " --count 8").code == 0);
  BOOST_REQUIRE(run(base + " --mask " + d / "mask.h5" + " --set eval.seed=7").code == 0);
  fs::copy_file(d / "pts.h5", d / "pts2.h5");
  BOOST_REQUIRE(run(scorch_cmd(1) + " inpaint" + jobfile + " --workdir " + d / "w" + " --data " + d / "pts2.h5" +
                    " --mask " + d / "mask.h5").code == 0);
  BOOST_TEST(count_h5() == 5);
  BOOST_REQUIRE(run(base + " --mask " + d / "mask.h5").code == 0);  // the same inputs: the same file
  BOOST_TEST(count_h5() == 5);
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
