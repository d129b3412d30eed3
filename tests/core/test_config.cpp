// Configuration: unknown keys, wrong types and bad values are rejected naming the key and
// the file; --set takes TOML values; the resolved TOML round-trips exactly.
#include "common.h"
#include "scorch/core/config.h"
#include "scorch/core/error.h"

using namespace scorch;
using scorch::test::error_of;

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(defaults_validate_and_match_the_reference) {
  Config c = load_config("", {});
  BOOST_TEST(c.training.sde == "vpsde");
  BOOST_TEST(c.optim.lr == 2e-4);
  BOOST_TEST(c.optim.warmup == 5000);
  BOOST_TEST(c.optim.grad_clip == 1.0);
  BOOST_TEST(c.model.beta_min == 0.1);
  BOOST_TEST(c.model.beta_max == 20.0);
  BOOST_TEST(c.model.num_scales == 1000);
}

BOOST_AUTO_TEST_CASE(unknown_key_names_key_file_and_line) {
  test::TempDir d("cfg");
  test::write_file(d / "job.toml", "[training]\nbatch_size = 4\nbatch_sise = 8\n");
  auto msg = error_of([&] { load_config(d / "job.toml", {}); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("training.batch_sise") != std::string::npos);
  BOOST_TEST(msg.find(d / "job.toml:3") != std::string::npos);
  BOOST_TEST(msg.find("training.batch_size") != std::string::npos);  // lists the known keys
}

BOOST_AUTO_TEST_CASE(unknown_section_is_rejected) {
  test::TempDir d("cfg");
  test::write_file(d / "job.toml", "[trianing]\nbatch_size = 4\n");
  auto msg = error_of([&] { load_config(d / "job.toml", {}); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("trianing") != std::string::npos);
  BOOST_TEST(msg.find("job.toml") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(wrong_type_names_key_file_and_types) {
  test::TempDir d("cfg");
  test::write_file(d / "job.toml", "[training]\nbatch_size = \"large\"\n");
  auto msg = error_of([&] { load_config(d / "job.toml", {}); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("training.batch_size") != std::string::npos);
  BOOST_TEST(msg.find("job.toml:2") != std::string::npos);
  BOOST_TEST(msg.find("integer") != std::string::npos);
  BOOST_TEST(msg.find("string") != std::string::npos);

  test::write_file(d / "b.toml", "[model]\nch_mult = [1, 2.5]\n");
  msg = error_of([&] { load_config(d / "b.toml", {}); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("model.ch_mult") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(out_of_range_and_bad_choice) {
  auto msg = error_of([] { load_config("", {"training.batch_size=0"}); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("training.batch_size") != std::string::npos);
  BOOST_TEST(msg.find(">= 1") != std::string::npos);
  msg = error_of([] { load_config("", {"model.dropout=1.5"}); });
  BOOST_TEST(msg.find("model.dropout") != std::string::npos);
  msg = error_of([] { load_config("", {"training.sde=vpsdee"}); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("vpsdee") != std::string::npos);
  BOOST_TEST(msg.find("vesde, vpsde, subvpsde") != std::string::npos);
  msg = error_of([] { load_config("", {"model.beta_max=0.05"}); });
  BOOST_TEST(msg.find("model.beta_max") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(set_overrides_take_toml_values) {
  Config c = load_config("", {"model.ch_mult=[1,2]", "training.sde=vesde", "optim.lr=1e-3",
                              "training.reduce_mean=true", "data.path=\"/x y/z.h5\"", "optim.lr=3"});
  BOOST_TEST(c.model.ch_mult == (std::vector<int64_t>{1, 2}));
  BOOST_TEST(c.training.sde == "vesde");
  BOOST_TEST(c.optim.lr == 3.0);  // later overrides win; integers are accepted for floats
  BOOST_TEST(c.training.reduce_mean);
  BOOST_TEST(c.data.path == "/x y/z.h5");
  auto msg = error_of([] { load_config("", {"training.reduce_mean=yes"}); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("training.reduce_mean") != std::string::npos);
  BOOST_TEST(msg.find("boolean") != std::string::npos);
  msg = error_of([] { load_config("", {"training.nope=1"}); });
  BOOST_TEST(msg.find("training.nope") != std::string::npos);
  BOOST_TEST(msg.find("--set") != std::string::npos);
  msg = error_of([] { load_config("", {"no_equals_sign"}); });
  BOOST_TEST(msg.find("no_equals_sign") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(job_file_then_set_layering) {
  test::TempDir d("cfg");
  test::write_file(d / "job.toml", "seed = 3\n[optim]\nlr = 0.5\nwarmup = 10\n");
  Config c = load_config(d / "job.toml", {"optim.lr=0.25"});
  BOOST_TEST(c.seed == 3);
  BOOST_TEST(c.optim.lr == 0.25);
  BOOST_TEST(c.optim.warmup == 10);
  BOOST_TEST(c.optim.beta1 == 0.9);  // untouched default
}

BOOST_AUTO_TEST_CASE(resolved_toml_round_trips_exactly) {
  Config c = load_config("", {"optim.lr=0.00021", "model.ch_mult=[1,3,5]", "model.sigma_max=348.0",
                              "data.dataset=\"quote\\\"d\"", "model.dropout=0.1"});
  std::string text = to_toml(c);
  Config back;
  apply_toml_string(back, text, "roundtrip");
  validate(back);
  BOOST_TEST(back.optim.lr == 0.00021);
  BOOST_TEST(back.model.dropout == 0.1);
  BOOST_TEST(back.data.dataset == "quote\"d");
  BOOST_TEST(back.model.ch_mult == (std::vector<int64_t>{1, 3, 5}));
  back.sources = c.sources;
  BOOST_TEST(to_toml(back) == text);
}

// config.toml is read and diffed by people: floats in their shortest exact form (0.1, not
// 0.10000000000000001), integral floats still floats (50.0), and every value reads back
// bitwise, including 1/3, 1e-8 and 1e20.
BOOST_AUTO_TEST_CASE(floats_are_written_in_shortest_round_trip_form) {
  Config c;
  const std::string text = to_toml(c);
  BOOST_TEST_MESSAGE(text);
  for (const char* line : {"\nlr = 0.0002\n", "\nsnr = 0.16\n", "\nsigma_max = 50.0\n", "\nrtol = 1e-05\n",
                           "\nema_rate = 0.9999\n", "\nbatch_size = 128\n", "\n[sampling]\n"}) {
    BOOST_TEST(text.find(line) != std::string::npos, line);
  }
  BOOST_TEST(text.find("0000000") == std::string::npos);
  c.optim.lr = 1.0 / 3.0;
  c.optim.eps = 1e-8;
  c.model.sigma_max = 1e20;
  c.model.gmm_means = {{0.1, -2.5}, {1.0 / 7.0, 3.0}};
  Config back;
  apply_toml_string(back, to_toml(c), "roundtrip");
  BOOST_TEST(back.optim.lr == c.optim.lr);
  BOOST_TEST(back.optim.eps == c.optim.eps);
  BOOST_TEST(back.model.sigma_max == c.model.sigma_max);
  BOOST_TEST(back.model.gmm_means == c.model.gmm_means);
}

BOOST_AUTO_TEST_CASE(syntax_error_names_file_and_line) {
  test::TempDir d("cfg");
  test::write_file(d / "bad.toml", "[training]\nbatch_size = = 3\n");
  auto msg = error_of([&] { load_config(d / "bad.toml", {}); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("bad.toml:2") != std::string::npos);
  msg = error_of([&] { load_config(d / "missing.toml", {}); });
  BOOST_TEST(msg.find("missing.toml") != std::string::npos);
}

// Hostile rerun: sizes that are products of keys are refused when they wrap 64 bits (the
// wrapped product once passed the disk check and grew to the kernel's limit).
BOOST_AUTO_TEST_CASE(products_of_sizes_are_checked) {
  Config c;
  c.eval.num_samples = int64_t{1} << 62;
  c.eval.seed_sets = 4;
  auto msg = test::error_of([&] { validate(c); });
  BOOST_TEST(msg.find("eval.num_samples = 4611686018427387904 x eval.seed_sets = 4") != std::string::npos, msg);
  c.eval.seed_sets = 1;
  c.eval.num_samples = int64_t{1} << 54;
  msg = test::error_of([&] { validate(c); });
  BOOST_TEST(msg.find("more than 9007199254740992") != std::string::npos, msg);
  c.eval.num_samples = 50000;
  c.data.image_size = int64_t{1} << 32;
  msg = test::error_of([&] { validate(c); });
  BOOST_TEST(msg.find("data.image_size = 4294967296 squared") != std::string::npos, msg);
  BOOST_TEST(checked_mul(3, 5, "x") == 15);
  BOOST_TEST(test::error_of([] { checked_mul(INT64_MAX, 2, "a x b"); }).find("a x b: the product does not fit") !=
             std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
