// The `scorch` binary end to end, as a user runs it: --help, errors for bad job files
// (naming key and file, also under mpirun without hanging), and train -> info -> sample ->
// eval bpd on 2 ranks, with sampling independent of the number of ranks.
#include <unistd.h>

#include <array>
#include <cmath>
#include <fstream>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "cli/cli_common.h"
#include "common.h"
#include <ATen/CPUGeneratorImpl.h>

#include "scorch/data/dataset.h"
#include "scorch/data/image_grid.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/ema_snapshots.h"
#include "scorch/io/hdf5.h"
#include "test_paths.h"

using namespace scorch;
using scorch::test::run;
using scorch::test::scorch_cmd;
using scorch::test::points_job;
namespace fs = std::filesystem;

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(help_explains_every_subcommand) {
  auto r = run(scorch_cmd(1) + " --help");
  BOOST_TEST(r.code == 0);
  for (const char* s : {"prepare", "train", "sample", "eval", "info"}) BOOST_TEST(r.out.find(s) != std::string::npos);
  r = run(scorch_cmd(1) + " train --help");
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("--set") != std::string::npos);
  BOOST_TEST(r.out.find("--workdir") != std::string::npos);
  r = run(scorch_cmd(1) + " eval bpd --help");
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("--ckpt") != std::string::npos);
  r = run(scorch_cmd(1) + " info --keys");
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("training.snapshot_freq") != std::string::npos);
  for (const char* key : {"sampling.guidance_scale", "sampling.class_label", "sampling.classifier", "sampling.steps",
                          "sampling.eta", "training.loss", "training.label_dropout", "model.num_classes"}) {
    BOOST_TEST(r.out.find(key) != std::string::npos, key);
  }
  for (const char* cmd : {"inpaint", "colorize"}) {
    r = run(scorch_cmd(1) + " " + cmd + " --help");
    BOOST_TEST(r.code == 0);
    BOOST_TEST(r.out.find("--data") != std::string::npos);
  }
  BOOST_TEST(run(scorch_cmd(1) + " frobnicate").code != 0);
  // --version names what the binary was built against.
  r = run(scorch_cmd(1) + " --version");
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find(std::string("libtorch: ") + SCORCH_TORCH_VERSION + "\n") != std::string::npos, r.out);
  for (const char* k : {"scorch: ", "commit: ", "build_type: ", "cuda: ", "nccl: ", "gpus: ", "mpi: Open MPI v4", "hdf5: 1."})
    BOOST_TEST(r.out.find(k) != std::string::npos, k);
#ifdef SCORCH_HAVE_NCCL
  // The libnccl.so.2 loaded at run time is the one compiled against (libtorch_cuda's).
  BOOST_TEST(r.out.find("nccl: " SCORCH_NCCL_VERSION " (headers " SCORCH_NCCL_VERSION ")") != std::string::npos, r.out);
#endif
#ifdef SCORCH_HAVE_CUDA
  BOOST_TEST(r.out.find("gpus: " + std::to_string(torch::cuda::device_count()) + " visible") != std::string::npos, r.out);
#endif
  r = run(scorch_cmd(1) + " export --help");
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("--state-dict") != std::string::npos);
  r = run(scorch_cmd(1) + " bench --help");
  BOOST_TEST(r.out.find("data") != std::string::npos);
  r = run(scorch_cmd(1) + " bench net --help");
  BOOST_TEST(r.out.find("--precision") != std::string::npos);
  r = run(scorch_cmd(1) + " bench allreduce --help");
  BOOST_TEST(r.out.find("--device") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_job_files_fail_before_work_naming_key_and_file) {
  test::TempDir d("clibad");
  test::write_file(d / "bad.toml", "[training]\nbatch_size = 8\nlearning_rate = 3\n");
  for (int ranks : {1, 2}) {
    auto r = run(scorch_cmd(ranks) + " train --config " + d / "bad.toml" + " --workdir " + d / "w");
    BOOST_TEST_INFO(r.out);
    BOOST_TEST(r.code != 0);
    BOOST_TEST(r.out.find("training.learning_rate") != std::string::npos);
    BOOST_TEST(r.out.find(d / "bad.toml:3") != std::string::npos);
  }
  BOOST_TEST(!fs::exists(d / "w/checkpoints"));
  auto r = run(scorch_cmd(1) + " train --workdir " + d / "w" + " --set model.ch_mult=1");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("model.ch_mult") != std::string::npos);
  BOOST_TEST(r.out.find("array") != std::string::npos);
  r = run(scorch_cmd(1) + " sample --workdir " + d / "nothing");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("no checkpoint") != std::string::npos);
  r = run(scorch_cmd(1) + " prepare fashion-mnist --raw " + d / "nowhere" + " --out " + d / "out");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("nowhere") != std::string::npos);
}

// What needs a GPU stops before any work where there is none, naming the key and what was
// found (a CUDA build: LibTorch's version and 0 GPUs; a CPU build: a CPU LibTorch, no NCCL);
// dist.device = "auto" in a CUDA build says once that it computes on the CPU.
BOOST_AUTO_TEST_CASE(gpu_settings_without_a_gpu_stop_before_any_work) {
  if (torch::cuda::is_available()) {
    BOOST_TEST_MESSAGE("a GPU is visible: the refusals are not exercised");
    return;
  }
  test::TempDir d("cligpu");
  const auto job = points_job(d);
  for (const std::string set : {"dist.device=cuda", "dist.backend=nccl"}) {
    BOOST_TEST_CONTEXT(set) {
      auto r = run(scorch_cmd(2) + " train --config " + job + " --workdir " + d / "w" + " --set " + set);
      BOOST_TEST_INFO(r.out);
      BOOST_TEST(r.code != 0);
      const std::string key = set.substr(0, set.find('='));
      BOOST_TEST(r.out.find(key + " = \"" + set.substr(set.find('=') + 1) + "\"") != std::string::npos);
#ifdef SCORCH_HAVE_CUDA
      BOOST_TEST(r.out.find("0 GPUs") != std::string::npos);
#else
      BOOST_TEST((r.out.find("CPU LibTorch") != std::string::npos || r.out.find("without NCCL") != std::string::npos));
#endif
      BOOST_TEST(!fs::exists(d / "w/checkpoints"));
    }
  }
  auto r = run(scorch_cmd(2) + " train --config " + job + " --workdir " + d / "w" + " --set training.n_iters=2");
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  size_t lines = 0;
  for (size_t at = r.out.find("dist.device = \"auto\""); at != std::string::npos;
       at = r.out.find("dist.device = \"auto\"", at + 1))
    ++lines;
#ifdef SCORCH_HAVE_CUDA
  BOOST_TEST(lines == 1u);
  BOOST_TEST(r.out.find("computes on the CPU") != std::string::npos);
#else
  BOOST_TEST(lines == 0u);
#endif
}

BOOST_AUTO_TEST_CASE(train_info_sample_eval_on_two_ranks) {
  test::TempDir d("cli");
  auto job = points_job(d);
  auto w = d / "run";
  auto r = run(scorch_cmd(2) + " train --config " + job + " --workdir " + w);
  BOOST_TEST_INFO(r.out);
  BOOST_REQUIRE(r.code == 0);
  BOOST_TEST(fs::exists(w + "/checkpoints/ckpt_000000020.h5"));
  BOOST_TEST(fs::exists(w + "/checkpoints/ckpt_000000030.h5"));
  BOOST_TEST(fs::exists(w + "/config.toml"));
  BOOST_TEST(r.out.find("img/s") != std::string::npos);

  // Training again resumes and has nothing left to do; more iterations continue.
  r = run(scorch_cmd(2) + " train --config " + job + " --workdir " + w + " --set training.n_iters=35");
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("resumed from") != std::string::npos);
  BOOST_TEST(fs::exists(w + "/checkpoints/ckpt_000000035.h5"));

  r = run(scorch_cmd(1) + " info --workdir " + w);
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(std::regex_search(r.out, std::regex(R"(step\s+35)")));
  BOOST_TEST(r.out.find("parameters") != std::string::npos);

  r = run(scorch_cmd(2) + " sample --workdir " + w);
  BOOST_TEST_INFO(r.out);
  BOOST_REQUIRE(r.code == 0);
  const auto run_dir = test::newest_sample_run(w).first;
  BOOST_TEST(run_dir.find("/samples/s000000035-pc-euler_maruyama-none-") != std::string::npos, run_dir);
  auto two = test::read_sample_run(w);
  BOOST_TEST(two.sizes() == (std::vector<int64_t>{40, 2}));
  BOOST_TEST(torch::isfinite(two).all().item<bool>());
  // A rerun finds every batch done and computes nothing.
  r = run(scorch_cmd(2) + " sample --workdir " + w);
  BOOST_REQUIRE(r.code == 0);
  BOOST_TEST(r.out.find("3 batches (3 already done), 0 computed") != std::string::npos, r.out);
  // The same samples, bitwise, from one rank: each sample's noise depends on its index only.
  fs::remove_all(run_dir);
  r = run(scorch_cmd(1) + " sample --workdir " + w);
  BOOST_REQUIRE(r.code == 0);
  BOOST_TEST(torch::equal(test::read_sample_run(w), two));

  r = run(scorch_cmd(2) + " eval bpd --workdir " + w, /*with_stderr=*/false);
  BOOST_TEST_INFO(r.out);
  BOOST_REQUIRE(r.code == 0);
  std::smatch m;
  BOOST_REQUIRE(std::regex_search(r.out, m, std::regex(R"(bpd (-?[0-9.]+)\n$)")));
  double bpd = std::stod(m[1]);
  BOOST_TEST(std::isfinite(bpd));
  auto eval_file = w + "/eval/bpd_000000035.h5";
  BOOST_REQUIRE(fs::exists(eval_file));
  auto f = h5::File::open_read(eval_file);
  auto per_item = h5::read_tensor(f.id(), "bpd", eval_file);
  BOOST_TEST(per_item.sizes() == (std::vector<int64_t>{2, 24}));
  BOOST_TEST(per_item.mean().item<double>() == bpd, boost::test_tools::tolerance(1e-3));
  farm::Plan bp;
  bp.dir = h5::get_attr_string(f.id(), "batches", eval_file);
  bp.num_items = 24;
  bp.batch_size = 16;
  BOOST_TEST(farm::read_batches(bp, "latents").sizes() == (std::vector<int64_t>{24, 2}));
  // The result is also a row of eval_log.csv at the checkpoint's step, with its provenance
  // (hashes as sha256sum prints them), and a JSON record beside its batch directory.
  {
    std::ifstream el(w + "/eval_log.csv");
    std::string header, row;
    std::getline(el, header);
    std::getline(el, row);
    BOOST_TEST(header ==
               "unix_time,step,metric,value,standard_error,n,nfe_mean,nfe_min,nfe_max,checkpoint,checkpoint_sha256,"
               "weights,sampler,seeds,feature_net,feature_net_sha256,feature_net_interface,reference,reference_sha256,"
               "reference_n,data,data_sha256,scorch_version,commit,record,settings");
    BOOST_TEST_INFO(row);
    const auto f = test::csv_fields(row);
    BOOST_REQUIRE(f.size() == 26u);
    BOOST_TEST(f[1] == "35");
    BOOST_TEST(f[2] == "bpd");
    BOOST_TEST(std::stod(f[3]) == bpd, boost::test_tools::tolerance(1e-4));
    BOOST_TEST(f[5] == "24");
    BOOST_TEST(std::stod(f[7]) <= std::stod(f[6]));
    BOOST_TEST(std::stod(f[6]) <= std::stod(f[8]));
    const std::string ck = w + "/checkpoints/ckpt_000000035.h5";
    BOOST_TEST(f[9] == ck);
    BOOST_TEST(f[10] == test::sha256sum(ck));
    BOOST_TEST(f[11].find("EMA (decay 0.9, ") == 0, f[11]);
    BOOST_TEST(f[12].find("eval.rtol = ") != std::string::npos, f[12]);
    BOOST_TEST(f[13].find("repeat k of batch c") != std::string::npos, f[13]);
    BOOST_TEST(f[21] == test::sha256sum(f[20]));
    BOOST_TEST(f[22] == SCORCH_PROJECT_VERSION);
    BOOST_TEST(f[24].rfind(w + "/eval/bpd-s000000035-", 0) == 0, f[24]);
    BOOST_TEST(f[24].substr(f[24].size() - 5) == ".json");
    std::ifstream rec(f[24]);
    const auto j = nlohmann::json::parse(rec);
    BOOST_TEST(j["results"]["bpd"]["value"].get<double>() == bpd, boost::test_tools::tolerance(1e-4));
    BOOST_TEST(j["checkpoint"]["sha256"].get<std::string>() == f[10]);
    BOOST_TEST(j["step"].get<int64_t>() == 35);
    BOOST_TEST(j["nfe"]["max"].get<double>() == std::stod(f[8]));
    BOOST_TEST(j["sampler"]["eval.hutchinson"].get<std::string>() == "rademacher");
    BOOST_TEST(j["scorch"]["commit"].get<std::string>() == f[23]);
  }
  // Checkpoints say what wrote them, in UTF-8 variable-length strings (h5py reads str).
  {
    const std::string ck = w + "/checkpoints/ckpt_000000035.h5";
    auto cf = h5::File::open_read(ck);
    BOOST_TEST(h5::get_attr_string(cf.id(), "build_libtorch", ck) == SCORCH_TORCH_VERSION);
    h5::Handle a(H5Aopen(cf.id(), "build_commit", H5P_DEFAULT), H5Aclose);
    h5::Handle t(H5Aget_type(a.id()), H5Tclose);
    BOOST_TEST(H5Tis_variable_str(t.id()) > 0);
    BOOST_TEST(H5Tget_cset(t.id()) == H5T_CSET_UTF8);
    if (std::system("/usr/bin/python3 -c 'import h5py' > /dev/null 2>&1") == 0) {
      BOOST_TEST(std::system(("/usr/bin/python3 -c \"import h5py; a = h5py.File('" + ck +
                              "', 'r').attrs; assert isinstance(a['build_commit'], str) and "
                              "isinstance(a['format'], str), a['format']\"").c_str()) == 0);
    } else {
      BOOST_TEST_MESSAGE("python3-h5py is not installed: h5py's view of the attributes not checked");
    }
  }
}

// SIGUSR1 (what Slurm sends before the time limit) makes every rank stop at the same step,
// write a checkpoint and exit with status 3; the next `train` resumes from it.
BOOST_AUTO_TEST_CASE(signal_checkpoints_and_stops_then_resume_continues) {
  for (int ranks : {1, 2}) {
    test::TempDir d("clisig");
    auto job = points_job(d);
    auto w = d / "run";
    // Long enough that the signal arrives mid-run; the loop waits for the first log line.
    auto r = run("bash -c '" + scorch_cmd(ranks) + " train --config " + job + " --workdir " + w +
                 " --set training.n_iters=100000 --set training.snapshot_freq=100000 & pid=$!; "
                 "for i in $(seq 600); do [ -s " + w + "/train_log.csv ] && [ $(wc -l < " + w +
                 "/train_log.csv) -ge 2 ] && break; sleep 0.1; done; kill -USR1 $pid; wait $pid; echo rc=$?'");
    BOOST_TEST_INFO(r.out);
    BOOST_TEST(r.out.find("rc=3") != std::string::npos);
    BOOST_TEST(r.out.find("stop requested") != std::string::npos);
    std::smatch m;
    std::string ckpt_list;
    int64_t stopped_at = -1;
    for (const auto& e : fs::directory_iterator(w + "/checkpoints")) {
      std::string name = e.path().filename().string();
      if (std::regex_match(name, m, std::regex(R"(ckpt_(\d+)\.h5)"))) stopped_at = std::stoll(m[1]);
      ckpt_list += name + " ";
    }
    BOOST_TEST_INFO(ckpt_list);
    BOOST_TEST(stopped_at >= 10);
    BOOST_TEST(stopped_at < 100000);
    r = run(scorch_cmd(ranks) + " train --config " + job + " --workdir " + w +
            " --set training.n_iters=" + std::to_string(stopped_at + 5));
    BOOST_TEST_INFO(r.out);
    BOOST_TEST(r.code == 0);
    BOOST_TEST(r.out.find(fmt::format("resumed from {}/checkpoints/ckpt_{:09d}.h5", w, stopped_at)) != std::string::npos);
    BOOST_TEST(fs::exists(fmt::format("{}/checkpoints/ckpt_{:09d}.h5", w, stopped_at + 5)));
  }
}

// The exact mixture model from the CLI without training: PC and ODE sampling, bits/dim
// against the exact density, and encode -> decode returning the data (relative to the data
// scale: per-item error over the RMS norm of the data, and overall, below 1e-3).
BOOST_AUTO_TEST_CASE(analytic_mixture_encode_decode_round_trip) {
  test::TempDir d("gmm");
  Config c = test::mixture_2d();
  c.data.path = d / "pts.h5";
  c.eval.batch_size = 100;
  c.eval.num_samples = 300;
  c.eval.bpd_num_images = 400;
  c.eval.bpd_num_repeats = 1;
  test::write_file(d / "gmm.toml", to_toml(c));
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  auto which = torch::rand({400, 1}, g) < 0.3;
  auto pts = torch::where(which, torch::tensor({-2.0f, 0.0f}) + 0.5 * torch::randn({400, 2}, g),
                          torch::tensor({2.0f, 1.0f}) + 0.3 * torch::randn({400, 2}, g));
  data::write_points(d / "pts.h5", pts, {});
  auto base = " --config " + d / "gmm.toml" + " --workdir " + d / "w";
  auto r = run(scorch_cmd(1) + " train" + base);
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("nothing to train") != std::string::npos);
  for (const char* method : {"pc", "ode"}) {
    r = run(scorch_cmd(2) + " sample" + base + " --set sampling.method=" + method + " --set sampling.corrector=langevin");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    auto x = test::read_sample_run(d / "w");
    BOOST_TEST(x.sizes() == (std::vector<int64_t>{300, 2}));
    BOOST_TEST(std::abs(x.mean(0)[0].item<double>() - 0.8) < 0.25);  // 5 SE of the mean (std 1.9 / sqrt(300))
  }
  r = run(scorch_cmd(2) + " eval bpd" + base + " --set eval.hutchinson=gaussian");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  std::smatch m;
  BOOST_REQUIRE(std::regex_search(r.out, m, std::regex(R"(difference (-?[0-9.e+-]+)\))")));
  BOOST_TEST(std::abs(std::stod(m[1])) < 0.05);  // 400 points: Hutchinson noise only
  r = run(scorch_cmd(2) + " encode" + base + " --data " + d / "pts.h5" + " --out " + d / "lat.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " decode" + base + " --latents " + d / "lat.h5" + " --out " + d / "back.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  auto fz = h5::File::open_read(d / "lat.h5");
  auto z = h5::read_tensor(fz.id(), "latents", "latents");
  BOOST_TEST(z.sizes() == (std::vector<int64_t>{400, 2}));
  BOOST_TEST(std::abs(z.std().item<double>() - 1.0) < 0.1);  // latents follow the N(0, I) prior
  auto fb = h5::File::open_read(d / "back.h5");
  auto y = h5::read_tensor(fb.id(), "samples", "back");
  double rms = pts.pow(2).sum(1).mean().sqrt().item<double>();
  double worst = ((y - pts).pow(2).sum(1).sqrt() / rms).max().item<double>();
  double overall = ((y - pts).norm() / pts.norm()).item<double>();
  BOOST_TEST_MESSAGE("encode/decode: worst item " << worst << ", overall " << overall);
  BOOST_TEST(worst < 1e-3);
  BOOST_TEST(overall < 1e-3);
  // Garbage in: latents of the wrong shape are refused by name.
  auto bad = h5::File::create(d / "bad.h5");
  h5::write_tensor(bad.id(), "latents", torch::zeros({3, 5}));
  bad.close();
  r = run(scorch_cmd(1) + " decode" + base + " --latents " + d / "bad.h5");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("bad.h5") != std::string::npos);
}

// training.continuous = false: SMLD (vesde) and DDPM (vpsde) models train, checkpoint and
// sample with their discrete label conventions; sub-VP has no discrete form.
BOOST_AUTO_TEST_CASE(discrete_models_train_and_sample) {
  for (const char* sde_name : {"vpsde", "vesde"}) {
    test::TempDir d("disc");
    auto job = points_job(d);
    auto w = d / "run";
    auto sets = std::string(" --set training.continuous=false --set training.sde=") + sde_name;
    auto r = run(scorch_cmd(1) + " train --config " + job + " --workdir " + w + sets + " --set training.n_iters=12");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    r = run(scorch_cmd(1) + " sample --workdir " + w + " --set sampling.predictor=reverse_diffusion");
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
    auto x = test::read_sample_run(w);
    BOOST_TEST(x.size(0) == 40);
    BOOST_TEST(torch::isfinite(x).all().item<bool>());
  }
  test::TempDir d("disc");
  auto r = run(scorch_cmd(1) + " train --config " + points_job(d) + " --workdir " + d / "w" +
               " --set training.continuous=false --set training.sde=subvpsde");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("subvpsde has no discrete form") != std::string::npos);
}

// Sliced score matching and a class-conditional network with label dropout train through
// the real trainer on 2 ranks and resume; the class-conditional model then samples both
// classes with classifier-free guidance (labels saved), and its checkpoint holds the class
// embedding.
BOOST_AUTO_TEST_CASE(ssm_and_class_conditional_models_train_and_sample) {
  test::TempDir d("cond");
  auto job = points_job(d);
  auto r = run(scorch_cmd(2) + " train --config " + job + " --workdir " + d / "ssm" +
               " --set training.loss=ssm --set training.n_iters=12 --set training.ssm_projection=gaussian");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string cond = " --set model.num_classes=2 --set training.label_dropout=0.2";
  r = run(scorch_cmd(2) + " train --config " + job + " --workdir " + d / "c" + cond + " --set training.n_iters=20");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  auto st = io::load_checkpoint(d / "c/checkpoints/ckpt_000000020.h5");
  BOOST_TEST(st.params.count("class_embed.table.weight") == 1);
  BOOST_TEST(st.params.at("class_embed.table.weight").sizes() == (std::vector<int64_t>{3, 32}));
  r = run(scorch_cmd(2) + " sample --workdir " + d / "c" +
          " --set sampling.class_label=balanced --set sampling.guidance_scale=1.5 --set sampling.method=ddim"
          " --set sampling.steps=8");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  auto [dir, plan] = test::newest_sample_run(d / "c");
  auto labels = scorch::farm::read_batches(plan, "labels");
  BOOST_TEST(torch::equal(labels, torch::arange(40, torch::kInt64).remainder(2)));
  BOOST_TEST(torch::isfinite(scorch::farm::read_batches(plan, "samples")).all().item<bool>());
  // Data without /labels cannot train a class-conditional network.
  data::write_points(d / "nolabels.h5", torch::randn({64, 2}), torch::Tensor());
  r = run(scorch_cmd(1) + " train --config " + job + " --workdir " + d / "x" + cond + " --set data.path=" +
          d / "nolabels.h5");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("nolabels.h5: model.num_classes = 2") != std::string::npos, r.out);
}

// Post-hoc EMA (EDM2): two power-function profiles kept in training with snapshots every 2
// steps (ema.snapshot_kimg = 64 images); a run interrupted at step 6 and resumed holds
// bitwise the profiles and snapshots of one run straight through; `scorch ema` rebuilds a
// tracked profile from the snapshots (equal to the tracked one to float tolerance) as a
// checkpoint that samples (its weights named in the manifest) but does not resume training.
BOOST_AUTO_TEST_CASE(power_ema_profiles_resume_exactly_and_reconstruct_after_training) {
  test::TempDir d("phema");
  auto job = points_job(d);
  const std::string keep = " --set ema.sigma_rels=[0.05,0.10] --set ema.snapshot_kimg=0.064 --set training.snapshot_freq=6";
  auto r = run(scorch_cmd(2) + " train --config " + job + " --workdir " + d / "a" + keep + " --set training.n_iters=12");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " train --config " + job + " --workdir " + d / "b" + keep + " --set training.n_iters=6");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(2) + " train --config " + job + " --workdir " + d / "b" + keep + " --set training.n_iters=12");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("resumed from") != std::string::npos, r.out);
  const auto snaps = io::list_ema_snapshots(d / "a");
  BOOST_REQUIRE(snaps.size() == 6u);
  BOOST_TEST(snaps.front().first == 2);
  BOOST_TEST(snaps.back().first == 12);
  auto sa = io::load_checkpoint(d / "a/checkpoints/ckpt_000000012.h5");
  auto sb = io::load_checkpoint(d / "b/checkpoints/ckpt_000000012.h5");
  BOOST_REQUIRE(sa.power_ema.size() == 2u);
  BOOST_REQUIRE(sb.power_ema.size() == 2u);
  for (size_t k = 0; k < 2; ++k) {
    BOOST_TEST(sa.power_ema[k].num_updates == 12);
    BOOST_TEST(sa.power_ema[k].sigma_rel == (k == 0 ? 0.05 : 0.10));
    for (const auto& [name, t] : sa.power_ema[k].tensors) {
      BOOST_TEST_CONTEXT("profile " << k << " " << name) {
        BOOST_TEST(torch::equal(t, sb.power_ema[k].tensors.at(name)));
        BOOST_TEST(!torch::equal(t, sa.ema.at(name)));  // not the exponential EMA
      }
    }
  }
  for (int64_t step : {8, 12}) {
    auto a = io::load_ema_snapshot(io::ema_snapshot_path(d / "a", step));
    auto b = io::load_ema_snapshot(io::ema_snapshot_path(d / "b", step));
    BOOST_TEST(a.images == step * 32);
    for (size_t k = 0; k < 2; ++k) {
      for (const auto& [name, t] : a.profiles[k].tensors) BOOST_TEST(torch::equal(t, b.profiles[k].tensors.at(name)));
    }
  }
  // The tracked 0.10 profile, rebuilt from the snapshots of steps 2..12.
  const std::string out = d / "phema.h5";
  r = run(scorch_cmd(1) + " ema --workdir " + d / "a" + " --sigma-rel 0.10 --out " + out);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("from 12 profile snapshots (steps 2..12)") != std::string::npos, r.out);
  auto rec = io::load_checkpoint(out);
  BOOST_TEST(rec.step == 12);
  for (const auto& [name, t] : sa.power_ema[1].tensors) {
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(torch::allclose(rec.ema.at(name), t, 1e-4, 1e-5), (rec.ema.at(name) - t).abs().max().item<double>());
    }
  }
  r = run(scorch_cmd(2) + " sample --workdir " + d / "a" + " --ckpt " + out);
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  {
    auto [dir, plan] = test::newest_sample_run(d / "a");
    std::ifstream in(dir + "/manifest.json");
    const auto m = nlohmann::json::parse(in);
    BOOST_TEST(m["weights"].get<std::string>().find("power-function EMA sigma_rel 0.1 ") == 0, m["weights"]);
  }
  r = run(scorch_cmd(1) + " train --config " + job + " --workdir " + d / "c" + keep + " --ckpt " + out +
          " --set training.n_iters=14");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("holds a post-hoc EMA") != std::string::npos, r.out);
  r = run(scorch_cmd(1) + " ema --workdir " + d / "a" + " --sigma-rel 0.10 --step 7");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("no snapshot at that step") != std::string::npos, r.out);
  // A sweep over profiles at the newest snapshot: each reconstructed once, evaluated, plotted.
  r = run(scorch_cmd(2) + " eval sweep --workdir " + d / "a" + " --sigma-rel 0.06,0.10 --metric bpd");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(fs::exists(d / "a/ema/phema_000000012_sigma0.0600.h5"));
  BOOST_TEST(fs::file_size(d / "a/eval/sweep-sigma_rel-bpd.png") > 1000u);
  {
    std::ifstream in(d / "a/eval/sweep-sigma_rel-bpd.csv");
    std::string header, row;
    std::getline(in, header);
    BOOST_TEST(header == "sigma_rel,checkpoint,bpd,bpd_record");
    std::vector<double> bpds;
    while (std::getline(in, row)) bpds.push_back(std::stod(test::csv_fields(row).at(2)));
    BOOST_REQUIRE(bpds.size() == 2u);
    auto one = run(scorch_cmd(1) + " eval bpd --workdir " + d / "a" + " --ckpt " + d / "a/ema/phema_000000012_sigma0.1000.h5");
    BOOST_REQUIRE_MESSAGE(one.code == 0, one.out);
    std::smatch m;
    BOOST_REQUIRE(std::regex_search(one.out, m, std::regex(R"(bpd (-?[0-9.]+)\n$)")));
    BOOST_TEST(std::stod(m[1]) == bpds[1], boost::test_tools::tolerance(1e-3));
    BOOST_TEST(bpds[0] != bpds[1]);
  }
  r = run(scorch_cmd(1) + " train --config " + job + " --workdir " + d / "e" + " --set ema.sigma_rels=[0.5]");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("ema.sigma_rels[0] = 0.5") != std::string::npos, r.out);
}

// Hostile rerun of post-hoc EMA: after `--discard-newer` the dropped branch's snapshots lie
// beside its checkpoints and a reconstruction uses only the run's own history; a snapshot of
// another run dropped into ema/ is refused by name, as are a profile the stored ones cannot
// reconstruct, a negative --step and a missing folder; a gap in the snapshots is named.
BOOST_AUTO_TEST_CASE(post_hoc_ema_uses_only_the_runs_own_history) {
  test::TempDir d("phemahist");
  auto job = points_job(d);
  const std::string keep = " --set ema.sigma_rels=[0.05,0.10] --set ema.snapshot_kimg=0.064 --set training.snapshot_freq=4";
  const std::string a = d / "a";
  auto r = run(scorch_cmd(1) + " train --config " + job + " --workdir " + a + keep + " --set training.n_iters=12");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto old10 = io::load_ema_snapshot(io::ema_snapshot_path(a, 10), false);
  r = run(scorch_cmd(1) + " train --config " + job + " --workdir " + a + keep + " --ckpt " + a +
          "/checkpoints/ckpt_000000004.h5 --discard-newer --set optim.lr=0.01 --set training.n_iters=10");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  // Snapshots 6..12 of the dropped branch were moved; 6, 8, 10 are the new branch's.
  const auto snaps = io::list_ema_snapshots(a);
  BOOST_REQUIRE(!snaps.empty());
  BOOST_TEST(snaps.back().first == 10);
  const auto new10 = io::load_ema_snapshot(io::ema_snapshot_path(a, 10), false);
  BOOST_TEST(io::lineage_branch_at(new10.lineage, 10) != io::lineage_branch_at(old10.lineage, 10));
  BOOST_TEST(io::lineage_branch_at(new10.lineage, 4) == io::lineage_branch_at(old10.lineage, 4));
  BOOST_TEST(run("ls -R " + a + "/checkpoints/discarded-*").out.find("snapshot_000000012.h5") != std::string::npos);
  r = run(scorch_cmd(1) + " ema --workdir " + a + " --sigma-rel 0.10 --step 12");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("no snapshot at that step") != std::string::npos, r.out);
  r = run(scorch_cmd(1) + " ema --workdir " + a + " --sigma-rel 0.08");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("at step 10") != std::string::npos, r.out);
  // Another run's snapshot (same architecture) dropped in as the newest: refused by name.
  r = run(scorch_cmd(1) + " train --config " + job + " --workdir " + d / "b" + keep + " --set training.n_iters=14");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  fs::copy_file(io::ema_snapshot_path(d / "b", 14), io::ema_snapshot_path(a, 14));
  r = run(scorch_cmd(1) + " ema --workdir " + a + " --sigma-rel 0.08");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find(io::ema_snapshot_path(a, 14) + " (step 14) belongs to another training history") !=
             std::string::npos, r.out);
  fs::remove(io::ema_snapshot_path(a, 14));
  // A snapshot of another architecture whose history is unrecorded (written as version 1, as
  // before snapshots carried one): not checked by history (a warning), refused by its shapes.
  r = run(scorch_cmd(1) + " train --config " + job + " --workdir " + d / "c" + keep +
          " --set model.nf=16 --set training.n_iters=14");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string foreign = io::ema_snapshot_path(a, 14);
  fs::copy_file(io::ema_snapshot_path(d / "c", 14), foreign);
  test::as_older_version(foreign, 1, {"lineage"});
  r = run(scorch_cmd(1) + " ema --workdir " + a + " --sigma-rel 0.08 --out " + d / "arch.h5");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("training histories: that they belong to one history is not checked") != std::string::npos,
             r.out);
  BOOST_TEST(r.out.find("snapshots of another architecture") != std::string::npos, r.out);
  BOOST_TEST(r.out.find(foreign) != std::string::npos, r.out);
  BOOST_TEST(!fs::exists(d / "arch.h5"));
  fs::remove(foreign);
  // What the stored profiles cannot reconstruct, and bad options.
  r = run(scorch_cmd(1) + " ema --workdir " + a + " --sigma-rel 0.001");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("cannot reconstruct this profile: relative residual") != std::string::npos, r.out);
  r = run(scorch_cmd(1) + " ema --workdir " + a + " --sigma-rel 1e-300");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("nan") == std::string::npos, r.out);
  r = run(scorch_cmd(1) + " ema --workdir " + a + " --sigma-rel 0.08 --step -5");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("ema --step -5: expected a snapshot step") != std::string::npos, r.out);
  r = run(scorch_cmd(1) + " ema --workdir " + d / "missing" + " --sigma-rel 0.08");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("no such directory") != std::string::npos, r.out);
  // A snapshot missing from the middle is named.
  fs::remove(io::ema_snapshot_path(a, 6));
  r = run(scorch_cmd(1) + " ema --workdir " + a + " --sigma-rel 0.08 --out " + d / "gap.h5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("has none at step(s) 6") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(image_run_writes_a_png_grid) {
  test::TempDir d("cliimg");
  auto cfg = test::tiny_image_config(d / "img.h5", 32);
  test::write_file(d / "job.toml", to_toml(cfg));
  auto w = d / "run";
  auto r = run(scorch_cmd(1) + " train --config " + d / "job.toml" + " --workdir " + w +
               " --set training.n_iters=3 --set eval.num_samples=6");
  BOOST_TEST_INFO(r.out);
  BOOST_REQUIRE(r.code == 0);
  r = run(scorch_cmd(2) + " sample --workdir " + w);
  BOOST_TEST_INFO(r.out);
  BOOST_REQUIRE(r.code == 0);
  auto png = test::newest_sample_run(w).first + "/grid.png";
  BOOST_REQUIRE(fs::exists(png));
  BOOST_TEST(test::read_file(png).substr(1, 3) == "PNG");
  BOOST_TEST(test::read_sample_run(w, "images").sizes() == (std::vector<int64_t>{6, 8, 8, 1}));
}

BOOST_AUTO_TEST_SUITE_END()
