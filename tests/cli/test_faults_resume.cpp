// What resume does with what a killed or damaged run left, end to end with the real binary:
// train_log.csv and the TensorBoard files after kill -9 and a resume (decoded by a second,
// independent reader), a non-finite or misnamed newest checkpoint set aside, sample and eval
// refusing a bad newest checkpoint while naming the usable one, resume refusing an older
// --ckpt among newer ones and changed network keys, and `scorch info` telling a killed run
// from a live one.
#include "cli/faults_common.h"

using namespace scorch;
using namespace scorch::test::fault_helpers;
using scorch::test::points_job;
using scorch::test::run;
using scorch::test::scorch_cmd;

namespace {

// A second, minimal TensorBoard reader, written apart from io/tensorboard.cpp: a bitwise
// CRC-32C, TFRecord framing with both masked checksums verified, and the protobuf fields
// of Event (step 2, summary 5), Summary (value 1) and Value (tag 1, simple_value 2).
uint32_t crc32c_bitwise(const unsigned char* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}
uint32_t masked(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

struct TbScalar {
  int64_t step;
  std::string tag;
  float value;
};

uint64_t read_varint(const std::string& b, size_t& i) {
  uint64_t v = 0;
  for (int shift = 0; i < b.size(); shift += 7) {
    const auto byte = static_cast<unsigned char>(b[i++]);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) break;
  }
  return v;
}

// Calls f(field, wire, varint, bytes) for each field of message `b`.
template <class F>
void for_fields(const std::string& b, F&& f) {
  size_t i = 0;
  while (i < b.size()) {
    const uint64_t key = read_varint(b, i);
    const int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    uint64_t v = 0;
    std::string bytes;
    if (wire == 0) {
      v = read_varint(b, i);
    } else if (wire == 1) {
      bytes = b.substr(i, 8);
      i += 8;
    } else if (wire == 5) {
      bytes = b.substr(i, 4);
      i += 4;
    } else if (wire == 2) {
      const uint64_t n = read_varint(b, i);
      bytes = b.substr(i, n);
      i += n;
    } else {
      throw std::runtime_error("unknown wire type");
    }
    f(field, wire, v, bytes);
  }
}

// Every scalar of an event file; counts records whose checksums fail in `bad`.
std::vector<TbScalar> read_events(const std::string& path, int& records, int& bad, std::string& version) {
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  std::vector<TbScalar> out;
  size_t i = 0;
  while (i + 12 <= all.size()) {
    uint64_t n = 0;
    uint32_t lc = 0, dc = 0;
    std::memcpy(&n, all.data() + i, 8);
    std::memcpy(&lc, all.data() + i + 8, 4);
    const auto* u = reinterpret_cast<const unsigned char*>(all.data());
    if (lc != masked(crc32c_bitwise(u + i, 8)) || i + 16 + n > all.size()) {
      ++bad;
      break;
    }
    const std::string data = all.substr(i + 12, n);
    std::memcpy(&dc, all.data() + i + 12 + n, 4);
    bad += dc != masked(crc32c_bitwise(u + i + 12, n));
    ++records;
    i += 16 + n;
    int64_t step = 0;
    std::string summary;
    for_fields(data, [&](int field, int, uint64_t v, const std::string& bytes) {
      if (field == 2) step = static_cast<int64_t>(v);
      if (field == 3) version = bytes;
      if (field == 5) summary = bytes;
    });
    for_fields(summary, [&](int field, int, uint64_t, const std::string& value) {
      if (field != 1) return;
      TbScalar s{step, "", 0.0f};
      for_fields(value, [&](int f, int, uint64_t, const std::string& b) {
        if (f == 1) s.tag = b;
        if (f == 2) std::memcpy(&s.value, b.data(), 4);
      });
      out.push_back(s);
    });
  }
  bad += i != all.size();
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(faults)

// train_log.csv after a kill -9 and a resume holds every logged step once, its header names
// the columns and every field parses; the TensorBoard files decode (with the reader above,
// its CRC-32C checked against the published vectors) into the CSV's values.
BOOST_AUTO_TEST_CASE(train_log_and_tensorboard_after_kill_and_resume) {
  const std::string digits = "123456789";
  const std::string zeros(32, '\0'), ones(32, '\xff');
  for (const auto& [text, want] : {std::pair{digits, 0xE3069283u}, std::pair{zeros, 0x8A9136AAu},
                                   std::pair{ones, 0x62A8AB43u}}) {
    BOOST_TEST(crc32c_bitwise(reinterpret_cast<const unsigned char*>(text.data()), text.size()) == want);
    BOOST_TEST(io::crc32c(text.data(), text.size()) == want);
  }
  test::TempDir d("tblog");
  auto job = points_job(d);
  const std::string w = d / "run";
  const std::string sets = "--set training.n_iters=600 --set training.snapshot_freq=100 --set training.log_freq=10";
  // SIGKILL of the whole job (launcher and ranks: each rank has a process group of its own, so
  // the session is killed) past the checkpoint of step 200; the rerun waits until none is left.
  auto r = run("bash -c 'setsid " + train_cmd(2, job, w, sets) + " > " + d / "log1" + " 2>&1 & pid=$!; " +
               wait_for_rows(w, 25) + test::kill_session_and_wait() + "'");
  BOOST_TEST(r.out.find("rc=137") != std::string::npos, r.out);
  r = run(train_cmd(2, job, w, sets));
  BOOST_TEST_INFO(r.out);
  BOOST_REQUIRE(r.code == 0);
  // The CSV: the header, 60 rows of steps 10..600 each once, every field a number.
  const auto& cols = train::train_log_columns();
  std::ifstream log(w + "/train_log.csv");
  std::string line;
  std::getline(log, line);
  BOOST_TEST(line == fmt::format("{}", fmt::join(cols, ",")));
  std::map<int64_t, std::vector<double>> rows;
  int n_rows = 0, bad_fields = 0;
  while (std::getline(log, line)) {
    std::vector<double> v;
    std::stringstream ss(line);
    std::string field;
    while (std::getline(ss, field, ',')) {
      char* end = nullptr;
      v.push_back(std::strtod(field.c_str(), &end));
      bad_fields += field.empty() || *end != '\0';
    }
    BOOST_TEST(v.size() == cols.size(), line);
    rows[static_cast<int64_t>(v[0])] = v;
    ++n_rows;
  }
  BOOST_TEST(bad_fields == 0);
  BOOST_TEST(n_rows == 60);
  BOOST_TEST(rows.size() == 60u);
  BOOST_TEST(rows.begin()->first == 10);
  BOOST_TEST(rows.rbegin()->first == 600);
  BOOST_TEST(rows.at(600)[6] == 600.0 * 32);  // images_seen
  BOOST_TEST(rows.at(600)[7] > 0.0);          // grad_norm
  BOOST_TEST(rows.at(600)[11] > 1.0);         // peak_mem_mb
  // TensorBoard: two files (the killed run's and the resumed one's), every record intact;
  // the newest value of each (step, tag) equals the CSV's.
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(w + "/tensorboard")) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  BOOST_TEST(files.size() == 2u);
  std::map<std::pair<int64_t, std::string>, float> tb;
  int records = 0, bad = 0;
  for (const auto& f : files) {
    std::string version;
    for (const auto& s : read_events(f, records, bad, version)) tb[{s.step, s.tag}] = s.value;
    BOOST_TEST(version == "brain.Event:2");
  }
  BOOST_TEST(bad == 0);
  BOOST_TEST(records > 60);
  int compared = 0, mismatched = 0;
  for (const auto& [step, v] : rows) {
    for (size_t c = 1; c < cols.size(); ++c) {
      auto it = tb.find({step, "train/" + cols[c]});
      if (it == tb.end()) {
        ++mismatched;
        continue;
      }
      if (cols[c] == "unix_time") continue;  // float32 holds it to ~2 minutes; the event's wall_time is exact
      const double tol = 1e-5 * std::abs(v[c]) + 0.006;  // the CSV's printed digits
      if (std::abs(static_cast<double>(it->second) - v[c]) > tol) {
        ++mismatched;
        BOOST_TEST_MESSAGE("step " << step << " " << cols[c] << ": csv " << v[c] << ", tensorboard " << it->second);
      }
      ++compared;
    }
  }
  BOOST_TEST(mismatched == 0);
  BOOST_TEST(compared == 60 * 11);
}

// Hostile rerun: a newest checkpoint holding NaN (valid checksums, e.g. from an older scorch)
// is set aside as *.nonfinite and training resumes from the newest finite one, saying so; a
// checkpoint whose name disagrees with its step is set aside as *.misnamed.
BOOST_AUTO_TEST_CASE(nonfinite_or_misnamed_newest_checkpoint_is_set_aside_on_resume) {
  test::TempDir d("nanresume");
  auto job = points_job(d);
  const std::string w = d / "run";
  BOOST_REQUIRE(run(train_cmd(1, job, w, "--set training.snapshot_freq=10")).code == 0);
  const std::string c30 = w + "/checkpoints/ckpt_000000030.h5";
  plant_nan(c30, "params");
  auto r = run(train_cmd(2, job, w, "--set training.snapshot_freq=10 --set training.n_iters=40"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("checkpoint " + c30 + " cannot be used and is set aside as " + c30 + ".nonfinite") !=
             std::string::npos);
  BOOST_TEST(r.out.find("holds NaN or Inf") != std::string::npos);
  BOOST_TEST(r.out.find("resumed from " + w + "/checkpoints/ckpt_000000020.h5 at step 20") != std::string::npos);
  BOOST_TEST(fs::exists(c30 + ".nonfinite"));
  BOOST_TEST(io::list_checkpoints(w).back().first == 40);
  BOOST_TEST(all_checkpoints_load(w) == 4);
  BOOST_TEST(state_of(w) == "finished");

  // A copy named for step 90 that holds step 40: set aside, not resumed from as step 90.
  const std::string c90 = w + "/checkpoints/ckpt_000000090.h5";
  fs::copy_file(w + "/checkpoints/ckpt_000000040.h5", c90);
  r = run(scorch_cmd(1) + " sample --workdir " + w);
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("its name says step 90 but it holds step 40") != std::string::npos);
  BOOST_TEST(r.out.find("pass --ckpt " + w + "/checkpoints/ckpt_000000040.h5") != std::string::npos);
  r = run(train_cmd(1, job, w, "--set training.snapshot_freq=10 --set training.n_iters=50"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("set aside as " + c90 + ".misnamed") != std::string::npos);
  BOOST_TEST(r.out.find("resumed from " + w + "/checkpoints/ckpt_000000040.h5 at step 40") != std::string::npos);
}

// Hostile rerun: sample and eval on a corrupt newest checkpoint name the earlier one that
// verifies and --ckpt; a checkpoint of another model placed as the newest is refused by
// sample and eval, naming the key and both values.
BOOST_AUTO_TEST_CASE(sample_and_eval_refuse_a_bad_newest_checkpoint_naming_the_usable_one) {
  test::TempDir d("badnewest");
  auto job = points_job(d);
  const std::string w = d / "run", other = d / "other";
  BOOST_REQUIRE(run(train_cmd(1, job, w)).code == 0);                           // steps 20, 30
  BOOST_REQUIRE(run(train_cmd(1, job, other, "--set model.nf=16")).code == 0);  // another network
  const std::string c30 = w + "/checkpoints/ckpt_000000030.h5", c20 = w + "/checkpoints/ckpt_000000020.h5";
  fs::copy_file(c30, d / "c30.h5");
  fs::resize_file(c30, fs::file_size(c30) / 2);
  for (const std::string cmd : {" sample", " eval bpd"}) {
    auto r = run(scorch_cmd(1) + cmd + " --workdir " + w);
    BOOST_TEST_INFO(r.out);
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.out.find(c30) != std::string::npos);
    BOOST_TEST(r.out.find("the newest checkpoint that verifies is " + c20 + " (step 20): pass --ckpt " + c20) !=
               std::string::npos);
  }
  fs::remove(c30);
  fs::copy_file(other + "/checkpoints/ckpt_000000030.h5", c30);
  for (const std::string cmd : {" sample", " eval bpd"}) {
    auto r = run(scorch_cmd(1) + cmd + " --workdir " + w);
    BOOST_TEST_INFO(r.out);
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.out.find(c30 + " is not a checkpoint of the run in '" + w + "': model.nf = 32 (config.toml), 16 "
                          "(checkpoint)") != std::string::npos);
    BOOST_TEST(!fs::exists(w + "/samples"));
  }
  fs::remove(c30);
  fs::copy_file(d / "c30.h5", c30);
  BOOST_TEST(run(scorch_cmd(1) + " sample --workdir " + w).code == 0);
}

// Hostile rerun: train --ckpt OLDER among newer checkpoints is refused unless --discard-newer
// (which moves them aside, never deletes, and names the right checkpoint at the end); keys
// that change what the network means are refused on resume, safe ones pass.
BOOST_AUTO_TEST_CASE(resume_refuses_older_ckpt_among_newer_and_semantic_key_changes) {
  test::TempDir d("branch");
  auto job = points_job(d);
  const std::string w = d / "run";
  BOOST_REQUIRE(run(train_cmd(1, job, w, "--set training.snapshot_freq=10 --set training.n_iters=40")).code == 0);
  const std::string c20 = w + "/checkpoints/ckpt_000000020.h5";
  const auto log_before = test::read_file(w + "/train_log.csv");
  auto r = run(train_cmd(2, job, w, "--ckpt " + c20 + " --set training.n_iters=60"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("holds 2 newer checkpoint(s)") != std::string::npos);
  BOOST_TEST(r.out.find("--discard-newer") != std::string::npos);
  BOOST_TEST(io::list_checkpoints(w).size() == 4u);
  BOOST_TEST(test::read_file(w + "/train_log.csv") == log_before);
  r = run(train_cmd(2, job, w, "--ckpt " + c20 + " --discard-newer --set training.n_iters=25"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("moved 2 checkpoint(s) newer than step 20 and what their steps made") != std::string::npos);
  BOOST_TEST(r.out.find("log rows) to " + w + "/checkpoints/discarded-") != std::string::npos);
  // The dropped steps' train_log.csv rows went with them (21..40); the run's log goes on from 20.
  const auto dropped = run("cat " + w + "/checkpoints/discarded-*/train_log.csv").out;
  BOOST_TEST(dropped.find("\n40,") != std::string::npos, dropped);
  BOOST_TEST(test::read_file(w + "/train_log.csv").find("\n40,") == std::string::npos);
  BOOST_TEST(r.out.find("train: step 25 in " + w + " (checkpoint " + w + "/checkpoints/ckpt_000000025.h5)") !=
             std::string::npos);
  auto left = io::list_checkpoints(w);
  BOOST_REQUIRE(left.size() == 3u);
  BOOST_TEST(left.back().first == 25);
  r = run("ls " + w + "/checkpoints/discarded-*/");
  BOOST_TEST(r.out.find("ckpt_000000030.h5") != std::string::npos);
  BOOST_TEST(r.out.find("ckpt_000000040.h5") != std::string::npos);

  // Semantic keys: refused naming key, stored and new value; nothing trained.
  r = run(train_cmd(1, job, w, "--set training.sde=vesde --set model.sigma_max=5 --set training.n_iters=50"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("training.sde: 'vpsde' in the checkpoint, 'vesde' now") != std::string::npos);
  BOOST_TEST(r.out.find("model.sigma_max: 50.0 in the checkpoint, 5.0 now") != std::string::npos);
  BOOST_TEST(io::list_checkpoints(w).back().first == 25);
  r = run(train_cmd(1, job, w, "--set training.continuous=false --set training.n_iters=50"));
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("training.continuous: true in the checkpoint, false now") != std::string::npos, r.out);
  // Safe keys pass.
  r = run(train_cmd(1, job, w, "--set optim.lr=1e-3 --set training.n_iters=35 --set training.log_freq=5"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(io::list_checkpoints(w).back().first == 35);
}

// Hostile rerun: a run killed with SIGKILL leaves status.json "running"; `scorch info` tells
// it from a live one (the lock) and names the holder it recorded.
BOOST_AUTO_TEST_CASE(info_tells_a_killed_run_from_a_live_one) {
  test::TempDir d("deadrun");
  auto job = points_job(d);
  const std::string w = d / "run";
  auto r = run("bash -c '" + train_cmd(1, job, w, "--set training.n_iters=100000000 --set training.snapshot_freq=50") +
               " > " + d / "train.log" + " 2>&1 & pid=$!; " + wait_for_rows(w, 1) + "until ls " + w +
               "/checkpoints/ckpt_000000100.h5 >/dev/null 2>&1; do sleep 0.1; done; sleep 0.5; " + scorch_cmd(1) +
               " info --workdir " +
               w + "; kill -9 $pid; wait $pid; echo rc=$?; " + scorch_cmd(1) + " info --workdir " + w + "'");
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.out.find("rc=137") != std::string::npos);
  BOOST_TEST(std::regex_search(r.out, std::regex(R"(run +running \(pid \d+ on host .*, started )")));
  BOOST_TEST(std::regex_search(r.out, std::regex(R"(run +dead: status.json says running \(pid \d+ on host )")));
  BOOST_TEST(state_of(w) == "running");  // what the killed process left; info only reports
  // Hostile rerun: status.json says how far the run got (updated at every checkpoint).
  const auto st = nlohmann::json::parse(test::read_file(w + "/status.json"));
  BOOST_TEST(st.value("step", int64_t{0}) >= 100, st.dump());
  BOOST_TEST(st.value("checkpoint", std::string()).find("/checkpoints/ckpt_") != std::string::npos, st.dump());
  BOOST_TEST(std::regex_search(r.out, std::regex(R"(dead: .* it had reached step \d+ \(checkpoint .*ckpt_)")), r.out);
  // A missing folder is an error; a folder with no run is named; before the first checkpoint
  // the run's config.toml is described (not the built-in default model).
  r = run(scorch_cmd(1) + " info --workdir " + d / "missing");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("no such directory") != std::string::npos, r.out);
  fs::create_directories(d / "empty");
  r = run(scorch_cmd(1) + " info --workdir " + d / "empty");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("no run there") != std::string::npos, r.out);
  fs::create_directories(d / "fresh");
  fs::copy_file(w + "/config.toml", d / "fresh/config.toml");
  const auto want = run(scorch_cmd(1) + " info --config " + job);
  r = run(scorch_cmd(1) + " info --workdir " + d / "fresh");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("no checkpoint yet: the model of " + d / "fresh/config.toml") != std::string::npos, r.out);
  std::smatch m;
  BOOST_REQUIRE(std::regex_search(want.out, m, std::regex("model +[^\n]*")));
  BOOST_TEST(r.out.find(m.str()) != std::string::npos, r.out);
}

BOOST_AUTO_TEST_SUITE_END()
