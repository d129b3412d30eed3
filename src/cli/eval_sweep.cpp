// `scorch eval sweep`: a metric against training step. Every N-th checkpoint of a run (the
// newest always among them) is sampled through the farm and evaluated (FID of its sample
// sets and/or bits/dim), each result logged with its provenance as `eval fid` / `eval bpd`
// log it; then a table, <workdir>/eval/sweep-<metric>.csv and a PNG plot per metric with
// the best checkpoint marked. One command that a requeued job simply reruns: finished
// sample batches are skipped, and a checkpoint whose JSON record exists is read from it.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "scorch/cli/evaluation.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/stop.h"
#include "scorch/data/plot.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/files.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

// The value of `metric` in a JSON record: the value itself, or the seed sets' mean.
double record_value(const std::string& record, const std::string& metric) {
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

int eval_sweep(const SweepOptions& o, dist::Communicator& comm) {
  install_stop_handlers();
  const std::string& workdir = o.fid.common.workdir;
  SCORCH_CHECK(!workdir.empty(), "eval sweep: pass --workdir (the run whose checkpoints are swept)");
  SCORCH_CHECK(o.metric == "fid" || o.metric == "bpd" || o.metric == "both",
               "eval sweep: --metric {}: expected fid, bpd or both", o.metric);
  SCORCH_CHECK(o.every >= 1, "eval sweep: --every {}: expected a positive number of checkpoints", o.every);
  const bool fid = o.metric != "bpd", bpd = o.metric != "fid";
  SCORCH_CHECK(!fid || !o.fid.ref.empty(), "eval sweep --metric {}: FID needs --ref (reference statistics)", o.metric);
  const auto all = io::list_checkpoints(workdir);
  SCORCH_CHECK(!all.empty(), "eval sweep: {}/checkpoints holds no checkpoint", workdir);
  const auto pick = sweep_selection(all.size(), o.every);
  if (comm.rank() == 0) {
    spdlog::info("sweep of {}: {} of its {} checkpoints (every {}{}), {}", workdir, pick.size(), all.size(), o.every,
                 o.every > 1 ? ", the newest among them" : "", o.metric);
  }
  struct Row {
    int64_t step;
    std::string ckpt, fid_record, bpd_record;
    double fid = std::nan(""), bpd = std::nan("");
  };
  std::vector<Row> rows;
  for (size_t k = 0; k < pick.size(); ++k) {
    const auto& [step, path] = all[pick[k]];
    if (comm.rank() == 0) spdlog::info("sweep: checkpoint {} of {}: {} (step {})", k + 1, pick.size(), path, step);
    Row row{step, path, "", ""};
    Common c = o.fid.common;
    c.ckpt = path;
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
    rows.push_back(row);
  }
  if (comm.rank() != 0) return 0;
  // The table, the CSV and a plot per metric, the best (lowest) checkpoint marked.
  std::vector<std::string> metrics;
  if (fid) metrics.push_back("fid");
  if (bpd) metrics.push_back("bpd");
  std::string table = fmt::format("{:>10}", "step");
  for (const auto& m : metrics) table += fmt::format(" {:>12}", m);
  table += "  checkpoint\n";
  for (const auto& r : rows) {
    table += fmt::format("{:>10}", r.step);
    for (const auto& m : metrics) table += fmt::format(" {:>12.6f}", m == "fid" ? r.fid : r.bpd);
    table += "  " + r.ckpt + "\n";
  }
  fmt::print("{}", table);
  std::string csv = "step,checkpoint";
  for (const auto& m : metrics) csv += "," + m + "," + m + "_record";
  csv += "\n";
  for (const auto& r : rows) {
    csv += fmt::format("{},\"{}\"", r.step, r.ckpt);
    if (fid) csv += fmt::format(",{:.9g},\"{}\"", r.fid, r.fid_record);
    if (bpd) csv += fmt::format(",{:.9g},\"{}\"", r.bpd, r.bpd_record);
    csv += "\n";
  }
  const std::string tag = o.metric;
  const std::string csv_path = fmt::format("{}/eval/sweep-{}.csv", workdir, tag);
  fs::create_directories(workdir + "/eval");
  io::write_text_atomically(csv_path, csv);
  std::string last;
  for (const auto& m : metrics) {
    const Row* best = nullptr;
    data::Series curve, mark;
    curve.name = m == "fid" ? "FID" : "bits/dim";
    curve.markers = true;
    for (const auto& r : rows) {
      const double v = m == "fid" ? r.fid : r.bpd;
      curve.x.push_back(static_cast<double>(r.step));
      curve.y.push_back(v);
      if (std::isfinite(v) && (!best || v < (m == "fid" ? best->fid : best->bpd))) best = &r;
    }
    SCORCH_CHECK(best, "eval sweep: no finite {} among the {} checkpoints", m, rows.size());
    const double bv = m == "fid" ? best->fid : best->bpd;
    mark.name = fmt::format("best: step {} ({:.4f})", best->step, bv);
    mark.x = {static_cast<double>(best->step)};
    mark.y = {bv};
    mark.markers = true;
    mark.rgb[0] = 214;
    mark.rgb[1] = 39;
    mark.rgb[2] = 40;
    const std::string png = fmt::format("{}/eval/sweep-{}.png", workdir, m);
    data::write_line_plot(png, fmt::format("{} against training step: {}", curve.name, workdir), "step", curve.name,
                          {curve, mark}, false);
    fmt::print("best {}: step {} ({}): {:.6f}; plot -> {}\n", m, best->step, best->ckpt, bv, png);
    last += fmt::format("{}best_{} {:.6f} best_{}_step {}", last.empty() ? "" : " ", m, bv, m, best->step);
  }
  fmt::print("table -> {}\n{}\n", csv_path, last);
  return 0;
}

}  // namespace scorch::cli
