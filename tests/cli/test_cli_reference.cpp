// The `scorch` binary on the reference's files and on real-format inputs: a score_sde_pytorch
// checkpoint imported, sampled on 2 ranks and resumed; image folders converted identically on
// 1 and 2 ranks; hostile inputs refused at once, naming the problem.
#include <array>
#include <filesystem>
#include <regex>

#include "cli/cli_common.h"
#include "scorch/data/dataset.h"
#include "scorch/data/image_grid.h"
#include "scorch/io/hdf5.h"

using namespace scorch;
using test::run;
using test::scorch_cmd;
namespace fs = std::filesystem;

BOOST_AUTO_TEST_SUITE(cli_reference)

// A score_sde_pytorch checkpoint (tests/fixtures) imported, sampled on 2 ranks and resumed.
BOOST_AUTO_TEST_CASE(import_then_sample_and_resume_training) {
  test::TempDir d("cliimport");
  const std::string fx = std::string(SCORCH_SOURCE_DIR) + "/tests/fixtures/";
  data::write_images(d / "img.h5", torch::randint(0, 256, {16, 8, 8, 3}).to(torch::kUInt8), torch::Tensor());
  const std::string sets = " --set data.path=\\\"" + d / "img.h5" +
                           "\\\" --set eval.num_samples=4 --set eval.batch_size=2"
                           " --set training.batch_size=4 --set training.snapshot_freq=100";
  const std::string w = d / "run";
  auto r = run(scorch_cmd(1) + " import --from score-sde-pytorch " + fx + "ncsnpp_ve.pth --config " + fx +
               "ncsnpp_ve.toml" + sets + " --workdir " + w);  // -> <workdir>/checkpoints/ckpt_<step>.h5
  BOOST_TEST_INFO(r.out);
  BOOST_REQUIRE(r.code == 0);
  BOOST_TEST(r.out.find("step 3") != std::string::npos);
  BOOST_TEST(fs::exists(w + "/checkpoints/ckpt_000000003.h5"));

  r = run(scorch_cmd(1) + " info --workdir " + w);
  BOOST_TEST(r.out.find("12719 parameters") != std::string::npos, r.out);

  r = run(scorch_cmd(2) + " sample --workdir " + w + " --set model.num_scales=10");  // fewer steps than trained
  BOOST_TEST_INFO(r.out);
  BOOST_REQUIRE(r.code == 0);
  BOOST_TEST(test::newest_sample_run(w).second.num_items == 4);

  r = run(scorch_cmd(1) + " train --workdir " + w + " --set training.n_iters=5");
  BOOST_TEST_INFO(r.out);
  BOOST_REQUIRE(r.code == 0);
  BOOST_TEST(r.out.find("resumed from") != std::string::npos);
  BOOST_TEST(fs::exists(w + "/checkpoints/ckpt_000000005.h5"));

  // The wrong job file: refused by name, nothing written.
  r = run(scorch_cmd(1) + " import --from score-sde-pytorch " + fx + "ncsnpp_ve.pth --config " + fx +
          "ddpmpp_vp.toml --out " + d / "wrong.h5");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("does not fit the network of " + fx + "ddpmpp_vp.toml") != std::string::npos, r.out);
  BOOST_TEST(!fs::exists(d / "wrong.h5"));

  // Hostile rerun: scorch's own export records its config; importing it back under another
  // SDE (same tensors: it would fit) is refused naming the key and both values.
  r = run(scorch_cmd(1) + " export --workdir " + w + " --out " + d / "exported.pth");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run(scorch_cmd(1) + " import --from score-sde-pytorch " + d / "exported.pth" + " --config " + fx +
          "ncsnpp_ve.toml" + sets + " --set training.sde=vpsde --out " + d / "vp.h5");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("was exported by scorch from a model with other network keys") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("training.sde: 'vesde' in " + d / "exported.pth" + ", 'vpsde' in") != std::string::npos, r.out);
  BOOST_TEST(!fs::exists(d / "vp.h5"));
  r = run(scorch_cmd(1) + " import --from score-sde-pytorch " + d / "exported.pth" + " --config " + fx +
          "ncsnpp_ve.toml" + sets + " --out " + d / "same.h5");
  BOOST_TEST(r.code == 0, r.out);
}

// Image folders convert to the same file on 1 and 2 ranks.
BOOST_AUTO_TEST_CASE(prepare_images_is_rank_invariant) {
  test::TempDir d("cliimages");
  fs::create_directories(d / "imgs");
  for (int i = 0; i < 7; ++i) {
    auto px = torch::randint(0, 256, {12, 16, 3}).to(torch::kUInt8).contiguous();
    data::write_png_grid(d / ("imgs/" + std::to_string(i) + ".png"), px.unsqueeze(0), 1);
  }
  for (int ranks : {1, 2}) {
    auto r = run(scorch_cmd(ranks) + " prepare images --dir " + d / "imgs" + " --resolution 8 --out " + d /
                 ("r" + std::to_string(ranks) + ".h5"));
    BOOST_TEST_INFO(r.out);
    BOOST_REQUIRE(r.code == 0);
  }
  auto one = data::load(d / "r1.h5").images, two = data::load(d / "r2.h5").images;
  BOOST_TEST(one.sizes() == torch::IntArrayRef({7, 8, 8, 3}));
  BOOST_TEST(torch::equal(one, two));
}

// Hostile rerun: the README's integer class label is accepted; an output the disk cannot
// hold, a batch memory cannot hold, int8 images, --threads -5, a 6 kB path and a read-only
// workdir each fail at once with a message naming the value, the key or the file.
BOOST_AUTO_TEST_CASE(hostile_inputs_fail_at_once_naming_the_problem) {
  test::TempDir d("hostile");
  test::write_file(d / "gmm.toml", to_toml(test::mixture_2d()));
  const std::string gmm = " --config " + d / "gmm.toml";
  Config cfg;
  apply_override(cfg, "sampling.class_label=7");
  BOOST_TEST(cfg.sampling.class_label == "7");
  apply_override(cfg, "sampling.class_label=\"3\"");
  BOOST_TEST(cfg.sampling.class_label == "3");
  BOOST_TEST(test::error_of([&] { apply_override(cfg, "sampling.class_label=1.5"); }).find("must be a string") !=
             std::string::npos);

  auto r = run(scorch_cmd(1) + " sample" + gmm + " --workdir " + d / "w" + " --set eval.num_samples=1000000000000000");
  BOOST_TEST(r.code == 1);
  BOOST_TEST(std::regex_search(r.out, std::regex(R"(the samples need about [0-9.e+]+ TB \(16 B per sample\), but the file system of .* has [0-9.]+ [kMGT]?B free)")),
             r.out);
  BOOST_TEST(!fs::exists(d / "w/samples"));
  // A long run (output not a terminal) prints its plan and, after the first batch, a progress
  // line with the pace and an ETA, not only after the first tenth of the batches.
  r = run(scorch_cmd(1) + " sample" + gmm + " --workdir " + d / "p" +
          " --set eval.num_samples=300 --set eval.batch_size=1 --set model.num_scales=5");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("300 samples in 300 batches of 1") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("samples: 1/300 batches dealt (0%), rank 0 finished batch 0 (1 of its own)") != std::string::npos,
             r.out);
  r = run(scorch_cmd(1) + " sample" + gmm + " --workdir " + d / "w" +
          " --set eval.num_samples=10 --set eval.batch_size=100000000000000");
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("eval.batch_size = 100000000000000: one batch's sampler state needs about") != std::string::npos,
             r.out);

  r = run(scorch_cmd(1) + " --threads -5 info --keys");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("--threads takes a whole number of threads from 1 to 65536, got '-5'") != std::string::npos,
             r.out);
  BOOST_TEST(r.out.find("1.79") == std::string::npos, r.out);

  const std::string deep = d / std::string(6000, 'x');
  r = run(scorch_cmd(1) + " sample" + gmm + " --workdir " + deep + " --set eval.num_samples=10");
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("File name too long") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("characters; Linux allows 4096 in a path and 255 in one name") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("filesystem error") == std::string::npos, r.out);

  h5::write_atomically(d / "int8.h5", [](hid_t f) {
    h5::Handle space(H5Screate_simple(4, std::array<hsize_t, 4>{2, 4, 4, 1}.data(), nullptr), H5Sclose);
    h5::Handle ds(H5Dcreate2(f, "images", H5T_NATIVE_INT8, space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    std::array<int8_t, 32> v{};
    H5Dwrite(ds.id(), H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  });
  BOOST_TEST(test::error_of([&] { data::inspect(d / "int8.h5", 0, false); })
                 .find("int8.h5: /images must be uint8 (0..255 per channel), stored as int8 (signed 8-bit integers)") !=
             std::string::npos);

  // A read-only workdir (a read-only bind mount: root ignores permission bits).
  fs::create_directories(d / "ro");
  if (::getuid() == 0 && run("mount --bind " + d / "ro" + " " + d / "ro" + " && mount -o remount,bind,ro " + d / "ro").code == 0) {
    r = run(scorch_cmd(1) + " sample" + gmm + " --workdir " + d / "ro" + " --set eval.num_samples=10");
    run("umount " + d / "ro");
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.out.find("the workdir '" + d / "ro" + "' is not writable: Read-only file system") != std::string::npos,
               r.out);
  }
}

BOOST_AUTO_TEST_SUITE_END()
