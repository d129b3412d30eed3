// What a flaky cluster and a hostile user do to `scorch train`, end to end with the real
// binary: a full disk, signals at random steps, a rank killed with -9, a process killed in
// the middle of a checkpoint write, a truncated newest checkpoint, a diverging run, two runs
// on one workdir, planted symlinks and poisoned --set values. Each test checks what must
// survive (the previous checkpoints, bitwise-equal resumes, untouched files), not only the
// exit status.
// Resume, logs and what a damaged workdir does are in cli/test_faults_resume.cpp.
#include "cli/faults_common.h"

using namespace scorch;
using namespace scorch::test::fault_helpers;
using scorch::test::points_job;
using scorch::test::run;
using scorch::test::scorch_cmd;

BOOST_AUTO_TEST_SUITE(faults)

// Defect 1: a full disk used to commit a truncated checkpoint as the newest. Now the write
// fails naming the file and ENOSPC, nothing is committed, no temporary is left, every
// checkpoint on disk loads, and status.json says failed.
BOOST_AUTO_TEST_CASE(full_disk_is_a_clean_error_and_keeps_the_previous_checkpoint) {
  test::TempDir d("fdisk");
  auto job = points_job(d);
  const std::string mnt = d / "small";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=600k") != 0) {
    BOOST_WARN_MESSAGE(false, "skipped: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
    return;
  }
  const std::string w = mnt + "/run";
  auto r = run(train_cmd(1, job, w, "--set training.snapshot_freq=1 --set training.n_iters=30"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("No space left on device") != std::string::npos);
  BOOST_TEST(std::regex_search(r.out, std::regex(R"(writing '.*/checkpoints/ckpt_\d+\.h5' failed; nothing was replaced)")));
  BOOST_TEST(r.out.find("checkpoint written: " + w) != std::string::npos);  // some fitted
  BOOST_TEST(all_checkpoints_load(w) >= 1);
  BOOST_TEST(temp_files(w + "/checkpoints").empty());
  BOOST_TEST(state_of(w) == "failed");
  ::umount(mnt.c_str());
}

// Defect 2 and the resume promise: a stop signal at a random moment checkpoints that step,
// exits 3 and records "stopped"; resuming ends bitwise where an uninterrupted run ends, and
// the train log holds every logged step once.
BOOST_AUTO_TEST_CASE(signal_at_a_random_step_resumes_bitwise) {
  test::TempDir d("sigrand");
  auto job = points_job(d);
  const std::string sets = "--set training.n_iters=3000 --set training.snapshot_freq=1000000 --set training.log_freq=50";
  auto r = run(train_cmd(1, job, d / "straight", sets));
  BOOST_REQUIRE(r.code == 0);
  std::mt19937 rng(std::random_device{}());
  const int delay_ms = std::uniform_int_distribution<int>(0, 400)(rng);
  for (const char* sig : {"TERM", "INT"}) {
    const std::string w = d / (std::string("cut_") + sig);
    r = run("bash -c '" + train_cmd(1, job, w, sets) + " & pid=$!; " + wait_for_rows(w, 1) +
            fmt::format("sleep {:.3f}; kill -{} $pid; wait $pid; echo rc=$?'", delay_ms / 1000.0, sig));
    BOOST_TEST_INFO(sig << " after " << delay_ms << " ms: " << r.out);
    BOOST_TEST(r.out.find("rc=3") != std::string::npos);
    BOOST_TEST(state_of(w) == "stopped");
    const auto stopped = io::list_checkpoints(w);
    BOOST_REQUIRE(stopped.size() == 1u);
    BOOST_TEST(stopped[0].first < 3000);
    r = run(train_cmd(1, job, w, sets));
    BOOST_TEST(r.code == 0);
    BOOST_TEST(state_of(w) == "finished");
    auto a = io::load_checkpoint(io::latest_checkpoint(d / "straight"));
    auto b = io::load_checkpoint(io::latest_checkpoint(w));
    BOOST_TEST(b.step == 3000);
    BOOST_TEST(test::maps_equal(a.params, b.params));
    BOOST_TEST(test::maps_equal(a.ema, b.ema));
    BOOST_TEST(test::maps_equal(a.exp_avg_sq, b.exp_avg_sq));
    std::ifstream log(w + "/train_log.csv");
    std::string line;
    std::set<long long> steps;
    int rows = 0;
    std::getline(log, line);
    while (std::getline(log, line)) {
      steps.insert(std::atoll(line.c_str()));
      ++rows;
    }
    BOOST_TEST(rows == static_cast<int>(steps.size()));  // no step logged twice
    BOOST_TEST(steps.count(3000) == 1u);
  }
}

// Defect 2: mpirun SIGKILLs the ranks about a second after it gets SIGTERM, so a slow
// checkpoint (held 3 s by a test hook) is lost and the status is 1. Through jobs/launch.sh the
// SIGTERM becomes SIGUSR1: the checkpoint is committed, the status is 3 and status.json says
// stopped.
BOOST_AUTO_TEST_CASE(sigterm_through_jobs_launch_checkpoints) {
  test::TempDir d("mpirunterm");
  auto job = points_job(d);
  const std::string w = d / "run";
  const std::string cmd = std::string("SCORCH_TEST_PAUSE_BEFORE_COMMIT_S=3 ") + SCORCH_SOURCE_DIR +
                          "/jobs/launch.sh " + std::string(SCORCH_MPIEXEC) + " -np 2 --oversubscribe " + SCORCH_BIN + " train --config " + job +
                          " --workdir " + w + " --set training.n_iters=100000000 --set training.snapshot_freq=100000000";
  auto r = run("bash -c '" + cmd + " & pid=$!; " + wait_for_rows(w, 1) + "kill -TERM $pid; wait $pid; echo rc=$?'");
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.out.find("rc=3") != std::string::npos);
  BOOST_TEST(state_of(w) == "stopped");
  BOOST_TEST(all_checkpoints_load(w) == 1);
}

// A rank killed with -9 ends the whole job quickly with a failure status (no hang).
BOOST_AUTO_TEST_CASE(kill_9_of_one_rank_ends_the_job) {
  test::TempDir d("kill9");
  auto job = points_job(d);
  const std::string w = d / "run";
  auto r = run("bash -c '" +
               train_cmd(2, job, w, "--set training.n_iters=100000000 --set training.snapshot_freq=100000000") +
               " & mp=$!; " + wait_for_rows(w, 1) +
               "victim=$(pgrep -P $mp | head -n 1); t0=$(date +%s%N); kill -9 $victim; wait $mp; rc=$?; "
               "echo rc=$rc ms=$(( ($(date +%s%N) - t0) / 1000000 ))'");
  BOOST_TEST_INFO(r.out);
  std::smatch m;
  BOOST_REQUIRE(std::regex_search(r.out, m, std::regex(R"(rc=(\d+) ms=(\d+))")));
  BOOST_TEST(std::stoi(m[1]) != 0);
  BOOST_TEST_MESSAGE("rank death to job exit: " << m[2] << " ms");
  BOOST_TEST(std::stoi(m[2]) < 30000);
}

// kill -9 in the middle of a checkpoint write (held open by a test hook before its rename):
// the previous checkpoint stays loadable, the next run removes the stray temporary, takes
// over the dead run's lock and resumes from the previous checkpoint.
BOOST_AUTO_TEST_CASE(kill_9_during_a_checkpoint_write_keeps_the_previous_one) {
  test::TempDir d("killwrite");
  auto job = points_job(d);
  const std::string w = d / "run";
  BOOST_REQUIRE(run(train_cmd(1, job, w, "--set training.n_iters=20")).code == 0);
  auto r = run("bash -c 'SCORCH_TEST_PAUSE_BEFORE_COMMIT_S=60 " + train_cmd(1, job, w, "--set training.n_iters=40") +
               " & pid=$!; for i in $(seq 600); do ls " + w +
               "/checkpoints | grep -q \"\\.tmp\\.\" && break; sleep 0.1; done; kill -9 $pid; wait $pid; echo rc=$?'");
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.out.find("rc=137") != std::string::npos);
  BOOST_TEST(temp_files(w + "/checkpoints").size() == 1u);
  auto ck = io::list_checkpoints(w);
  BOOST_REQUIRE(ck.size() == 1u);
  BOOST_TEST(ck[0].first == 20);
  BOOST_TEST(all_checkpoints_load(w) == 1);
  r = run(train_cmd(1, job, w, "--set training.n_iters=40"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("took over the workdir lock") != std::string::npos);
  BOOST_TEST(r.out.find("removed 1 temporary file") != std::string::npos);
  BOOST_TEST(r.out.find("resumed from " + w + "/checkpoints/ckpt_000000020.h5") != std::string::npos);
  BOOST_TEST(temp_files(w + "/checkpoints").empty());
  BOOST_TEST(io::list_checkpoints(w).back().first == 40);
}

// Defect 4: a truncated newest checkpoint is reported by name, renamed aside (never deleted)
// and the previous one is used; with none usable the run refuses to start from scratch.
BOOST_AUTO_TEST_CASE(truncated_newest_checkpoint_falls_back_to_the_previous) {
  test::TempDir d("fallback");
  auto job = points_job(d);
  const std::string w = d / "run";
  BOOST_REQUIRE(run(train_cmd(1, job, w, "--set training.snapshot_freq=10")).code == 0);
  const std::string newest = w + "/checkpoints/ckpt_000000030.h5";
  fs::resize_file(newest, fs::file_size(newest) / 2);
  auto r = run(train_cmd(2, job, w, "--set training.snapshot_freq=10"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(r.out.find("checkpoint " + newest + " cannot be used and is set aside as " + newest + ".corrupt") !=
             std::string::npos);
  BOOST_TEST(r.out.find("resumed from " + w + "/checkpoints/ckpt_000000020.h5") != std::string::npos);
  BOOST_TEST(fs::exists(newest + ".corrupt"));
  BOOST_TEST(all_checkpoints_load(w) == 3);
  // Every checkpoint damaged: refuse, naming them, and load nothing.
  for (const auto& [step, path] : io::list_checkpoints(w)) fs::resize_file(path, 100);
  r = run(train_cmd(1, job, w, "--set training.n_iters=50"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("no usable checkpoint") != std::string::npos);
  BOOST_TEST(io::list_checkpoints(w).empty());
}

// Defect 3: a diverging run (lr = 1e3) skips non-finite steps and then fails naming the step
// (or fails at once with on_nonfinite = stop); no checkpoint with a non-finite tensor exists.
// A checkpoint holding NaN (written by an older scorch) is refused by sample, naming it.
BOOST_AUTO_TEST_CASE(non_finite_steps_are_skipped_or_stop_and_never_checkpointed) {
  test::TempDir d("nan");
  auto job = points_job(d);
  const std::string huge = "--set optim.lr=1e3 --set training.n_iters=200 --set training.snapshot_freq=5 ";
  auto r = run(train_cmd(2, job, d / "skip", huge + "--set training.max_nonfinite=5"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("step skipped (1 in a row") != std::string::npos);
  BOOST_TEST(std::regex_search(r.out, std::regex(R"(step \d+: the gradients are not finite .*5 non-finite steps in a row)")));
  BOOST_TEST(state_of(d / "skip") == "failed");
  all_checkpoints_load(d / "skip");
  r = run(train_cmd(1, job, d / "stop", huge + "--set training.on_nonfinite=stop"));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("training.on_nonfinite = \"stop\"") != std::string::npos);
  all_checkpoints_load(d / "stop");

  // A NaN planted in a good checkpoint's weights (HDF5 recomputes the chunk checksum).
  BOOST_REQUIRE(run(train_cmd(1, job, d / "good")).code == 0);
  const auto path = io::latest_checkpoint(d / "good");
  plant_nan(path);
  r = run(scorch_cmd(1) + " sample --ckpt " + path);
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("holds NaN or Inf") != std::string::npos);
  BOOST_TEST(!fs::exists(d / "good/samples"));
}

// Defect 6: a second train on a busy workdir is refused (naming the holder) and does not
// touch the first run's files; the first finishes normally.
BOOST_AUTO_TEST_CASE(second_train_on_one_workdir_is_refused) {
  test::TempDir d("lock");
  auto job = points_job(d);
  const std::string w = d / "run";
  auto r = run("bash -c '" + train_cmd(1, job, w, "--set training.n_iters=100000000 --set training.snapshot_freq=1000") +
               " > " + d / "first.log" + " 2>&1 & pid=$!; " + wait_for_rows(w, 1) + train_cmd(2, job, w) +
               "; echo second=$?; kill -USR1 $pid; wait $pid; echo first=$?'");
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.out.find("second=1") != std::string::npos);
  BOOST_TEST(r.out.find("is in use by another scorch process (scorch train (1 ranks) on host") != std::string::npos);
  BOOST_TEST(r.out.find("first=3") != std::string::npos);
  // Printed once although both ranks of the second run failed.
  const auto first = r.out.find("scorch: error:");
  BOOST_TEST((first != std::string::npos && r.out.find("scorch: error:", first + 1) == std::string::npos));
  const auto log = test::read_file(d / "first.log");
  BOOST_TEST(log.find("error") == std::string::npos);
  all_checkpoints_load(w);
}

// Defect 7: symlinks planted where scorch writes (config.toml, status.json, train_log.csv,
// an old-style checkpoint temporary) are replaced or removed, never written through.
BOOST_AUTO_TEST_CASE(writes_never_follow_planted_symlinks) {
  test::TempDir d("symlink");
  auto job = points_job(d);
  const std::string w = d / "run";
  fs::create_directories(w + "/checkpoints");
  const std::string victim = d / "victim.txt";
  test::write_file(victim, "precious\n");
  for (const char* name : {"config.toml", "status.json", "train_log.csv", "checkpoints/ckpt_000000020.h5.tmp"}) {
    fs::create_symlink(victim, w + "/" + name);
  }
  auto r = run(train_cmd(1, job, w));
  BOOST_TEST_INFO(r.out);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(test::read_file(victim) == "precious\n");
  BOOST_TEST(!fs::is_symlink(w + "/config.toml"));
  BOOST_TEST(!fs::is_symlink(w + "/status.json"));
  BOOST_TEST(all_checkpoints_load(w) == 2);
}

// Defect 5 and 10: --set values with a newline, bytes that are not UTF-8, two keys or an
// overflowing integer are refused naming the key, before anything is written: the run's
// config.toml and checkpoints stay as they were, and later commands still work.
BOOST_AUTO_TEST_CASE(set_values_cannot_poison_the_run) {
  test::TempDir d("poison");
  auto job = points_job(d);
  const std::string w = d / "run";
  BOOST_REQUIRE(run(train_cmd(1, job, w)).code == 0);
  const auto config = test::read_file(w + "/config.toml");
  const auto ckpt = test::read_file(io::latest_checkpoint(w));
  for (const std::string bad : {"'training.n_iters=3\nseed = 7'", "'data.dataset=caf\xe9'",
                                "'training.n_iters=5, seed = 7'", "training.n_iters=99999999999999999999",
                                "training.n_iters=3x", "'data.dataset=\"a\"\nseed=1'"}) {
    auto r = run(train_cmd(2, job, w, "--set " + bad));
    BOOST_TEST_INFO(bad << ": " << r.out);
    BOOST_TEST(r.code != 0);
    BOOST_TEST((r.out.find("--set training.n_iters") != std::string::npos ||
                r.out.find("--set data.dataset") != std::string::npos));
  }
  // A run that fails for another reason (a missing data file) leaves config.toml alone too.
  auto r = run(train_cmd(1, job, w, "--set data.path=" + d / "missing.h5" + " --set training.n_iters=60"));
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find(d / "missing.h5") != std::string::npos);
  BOOST_TEST(test::read_file(w + "/config.toml") == config);
  BOOST_TEST(test::read_file(io::latest_checkpoint(w)) == ckpt);
  BOOST_TEST(run(scorch_cmd(1) + " info --workdir " + w).code == 0);
  r = run(scorch_cmd(1) + " --threads -5 info --keys");
  BOOST_TEST(r.code != 0);
  BOOST_TEST(r.out.find("--threads") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
