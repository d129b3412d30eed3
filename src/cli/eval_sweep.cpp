// `scorch eval sweep`: a metric against training step. Every N-th checkpoint of a run (the
// newest always among them) is sampled through the farm and evaluated (FID of its sample
// sets and/or bits/dim), each result logged with its provenance as `eval fid` / `eval bpd`
// log it; then a table, <workdir>/eval/sweep-<metric>.csv and a PNG plot per metric with
// the best checkpoint marked. One command that a requeued job simply reruns: finished
// sample batches are skipped, and a checkpoint whose JSON record exists is read from it.
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "scorch/cli/evaluation.h"
#include "scorch/cli/provenance.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/stop.h"
#include "scorch/dist/sharding.h"
#include "scorch/data/plot.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/ema_snapshots.h"
#include "scorch/io/files.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

// The value of `metric` in a JSON record: the value itself, or the seed sets' mean.
double record_value(const std::string& record, const std::string& metric) {
  verify_record(record);
  std::ifstream in(record);
  SCORCH_CHECK(in, "{}: the evaluation's record is missing", record);
  const auto j = nlohmann::json::parse(in);
  const auto& r = j.at("results");
  if (r.contains(metric)) return r[metric].at("value").get<double>();
  SCORCH_CHECK(r.contains(metric + "_mean"), "{}: no '{}' result", record, metric);
  return r[metric + "_mean"].at("value").get<double>();
}

}  // namespace

std::vector<size_t> sweep_selection(size_t count, int64_t every) {
  std::vector<size_t> out;
  if (count == 0) return out;
  const auto n = static_cast<int64_t>(count);
  for (int64_t i = (n - 1) % every; i < n; i += every) out.push_back(static_cast<size_t>(i));
  return out;
}

namespace {

struct Row {
  double x;          // the step, or the profile's sigma_rel
  std::string ckpt;  // the checkpoint evaluated
  std::string fid_record{}, bpd_record{};
  double fid = std::nan(""), bpd = std::nan("");
};

// Samples and evaluates checkpoint `ckpt` (collective); rank 0 reads the values from the records.
int evaluate_checkpoint(const SweepOptions& o, dist::Communicator& comm, bool fid, bool bpd, Row& row) {
  Common c = o.fid.common;
  c.ckpt = row.ckpt;
  if (fid) {
    if (const int rc = sample_sets(c, comm); rc != 0) return rc;
    FidOptions f = o.fid;
    f.common = c;
    f.reuse_records = true;
    if (const int rc = eval_fid(f, comm, &row.fid_record); rc != 0) return rc;
    if (comm.rank() == 0) row.fid = record_value(row.fid_record, "fid");
  }
  if (bpd) {
    if (const int rc = eval_bpd(c, comm, /*reuse_records=*/true, &row.bpd_record); rc != 0) return rc;
    if (comm.rank() == 0) row.bpd = record_value(row.bpd_record, "bpd");
  }
  return 0;
}

// The table, <workdir>/eval/sweep-<what>.csv and a plot per metric, the best (lowest) marked. Rank 0.
void report(const std::string& workdir, const std::string& axis, const std::string& what, bool fid, bool bpd,
            const std::vector<Row>& rows) {
  std::vector<std::string> metrics;
  if (fid) metrics.push_back("fid");
  if (bpd) metrics.push_back("bpd");
  auto value = [](const Row& r, const std::string& m) { return m == "fid" ? r.fid : r.bpd; };
  auto x_text = [&](double x) { return axis == "step" ? fmt::format("{}", static_cast<int64_t>(x)) : fmt::format("{}", x); };
  std::string table = fmt::format("{:>10}", axis);
  for (const auto& m : metrics) table += fmt::format(" {:>12}", m);
  table += "  checkpoint\n";
  std::string csv = axis + ",checkpoint";
  for (const auto& m : metrics) csv += "," + m + "," + m + "_record";
  csv += "\n";
  for (const auto& r : rows) {
    table += fmt::format("{:>10}", x_text(r.x));
    csv += fmt::format("{},\"{}\"", x_text(r.x), r.ckpt);
    for (const auto& m : metrics) {
      table += fmt::format(" {:>12.6f}", value(r, m));
      csv += fmt::format(",{:.9g},\"{}\"", value(r, m), m == "fid" ? r.fid_record : r.bpd_record);
    }
    table += "  " + r.ckpt + "\n";
    csv += "\n";
  }
  fmt::print("{}", table);
  const std::string csv_path = fmt::format("{}/eval/sweep-{}.csv", workdir, what);
  fs::create_directories(workdir + "/eval");
  io::write_text_atomically(csv_path, csv);
  std::string last;
  for (const auto& m : metrics) {
    const Row* best = nullptr;
    data::Series curve, mark;
    curve.name = m == "fid" ? "FID" : "bits/dim";
    curve.markers = true;
    for (const auto& r : rows) {
      curve.x.push_back(r.x);
      curve.y.push_back(value(r, m));
      if (std::isfinite(value(r, m)) && (!best || value(r, m) < value(*best, m))) best = &r;
    }
    SCORCH_CHECK(best, "eval sweep: no finite {} among the {} checkpoints", m, rows.size());
    const double bv = value(*best, m);
    mark.name = fmt::format("best: {} ({:.4g})", x_text(best->x), bv);  // fits the legend's 20 characters
    mark.x = {best->x};
    mark.y = {bv};
    mark.markers = true;
    mark.rgb[0] = 214;
    mark.rgb[1] = 39;
    mark.rgb[2] = 40;
    const std::string stem = axis == "step" ? m : axis + "-" + m;
    const std::string png = fmt::format("{}/eval/sweep-{}.png", workdir, stem);
    data::write_line_plot(png, fmt::format("{} against {}: {}", curve.name, axis, workdir), axis, curve.name,
                          {curve, mark}, false);
    fmt::print("best {}: {} {} ({}): {:.6f}; plot -> {}\n", m, axis, x_text(best->x), best->ckpt, bv, png);
    last += fmt::format("{}best_{} {:.6f} best_{}_{} {}", last.empty() ? "" : " ", m, bv, m, axis, x_text(best->x));
  }
  fmt::print("table -> {}\n{}\n", csv_path, last);
}

}  // namespace

int eval_sweep(const SweepOptions& o, dist::Communicator& comm) {
  install_stop_handlers();
  const std::string& workdir = o.fid.common.workdir;
  SCORCH_CHECK(!workdir.empty(), "eval sweep: pass --workdir (the run whose checkpoints are swept)");
  SCORCH_CHECK(o.metric == "fid" || o.metric == "bpd" || o.metric == "both",
               "eval sweep: --metric {}: expected fid, bpd or both", o.metric);
  SCORCH_CHECK(o.every >= 1, "eval sweep: --every {}: expected a positive number of checkpoints", o.every);
  const bool fid = o.metric != "bpd", bpd = o.metric != "fid";
  SCORCH_CHECK(!fid || !o.fid.ref.empty(), "eval sweep --metric {}: FID needs --ref (reference statistics)", o.metric);
  std::vector<Row> rows;
  if (!o.sigma_rels.empty()) {
    // Post-hoc EMA profiles at one snapshot step, each reconstructed once (then reused).
    const auto snaps = io::list_ema_snapshots(workdir);
    SCORCH_CHECK(!snaps.empty(), "eval sweep --sigma-rel: {}/ema holds no EMA snapshot (train with ema.sigma_rels)",
                 workdir);
    const int64_t step = o.step >= 0 ? o.step : snaps.back().first;
    if (comm.rank() == 0) {
      spdlog::info("sweep of {}: {} post-hoc EMA profiles at step {}, {}", workdir, o.sigma_rels.size(), step, o.metric);
    }
    for (double s : o.sigma_rels) {
      Row row{.x = s, .ckpt = default_ema_checkpoint(workdir, step, s)};
      if (comm.rank() == 0 && !fs::exists(row.ckpt)) reconstruct_ema(workdir, s, step, row.ckpt);
      comm.barrier();
      if (const int rc = evaluate_checkpoint(o, comm, fid, bpd, row); rc != 0) return rc;
      rows.push_back(row);
    }
    if (comm.rank() == 0) report(workdir, "sigma_rel", fmt::format("sigma_rel-{}", o.metric), fid, bpd, rows);
    return 0;
  }
  const auto all = io::list_checkpoints(workdir);
  SCORCH_CHECK(!all.empty(), "eval sweep: {}/checkpoints holds no checkpoint", workdir);
  const auto pick = sweep_selection(all.size(), o.every);
  if (comm.rank() == 0) {
    spdlog::info("sweep of {}: {} of its {} checkpoints (every {}{}), {}", workdir, pick.size(), all.size(), o.every,
                 o.every > 1 ? ", the newest among them" : "", o.metric);
  }
  std::vector<std::string> gone;  // deleted while the sweep ran (a live run's checkpoint.keep)
  for (size_t k = 0; k < pick.size(); ++k) {
    const auto& [step, path] = all[pick[k]];
    if (dist::broadcast_string(comm, fs::exists(path) ? "1" : "0", 0) == "0") {
      if (comm.rank() == 0) spdlog::warn("sweep: {} (step {}) is gone (deleted since the sweep began): skipped", path, step);
      gone.push_back(path);
      continue;
    }
    if (comm.rank() == 0) spdlog::info("sweep: checkpoint {} of {}: {} (step {})", k + 1, pick.size(), path, step);
    Row row{.x = static_cast<double>(step), .ckpt = path};
    try {
      if (const int rc = evaluate_checkpoint(o, comm, fid, bpd, row); rc != 0) return rc;
    } catch (const std::exception& e) {
      if (fs::exists(path)) throw;
      spdlog::warn("sweep: {} (step {}) was deleted while it was evaluated ({}): skipped", path, step, message_of(e));
      gone.push_back(path);
      comm.barrier();
      continue;
    }
    rows.push_back(row);
  }
  SCORCH_CHECK(!rows.empty(), "eval sweep: every selected checkpoint of {} was deleted while the sweep ran", workdir);
  if (comm.rank() == 0) {
    report(workdir, "step", o.metric, fid, bpd, rows);
    if (!gone.empty()) {
      fmt::print("skipped {} checkpoint(s) deleted during the sweep: {}\n", gone.size(), fmt::join(gone, ", "));
    }
  }
  return 0;
}

}  // namespace scorch::cli
