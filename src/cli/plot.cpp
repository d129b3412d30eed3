// `scorch plot`: the loss curve of a run as a PNG, from <workdir>/train_log.csv (each
// logged step's loss, and its running mean over up to 10 log lines).
#include <CLI/CLI.hpp>

#include <fstream>
#include <sstream>

#include "scorch/cli/commands.h"
#include "scorch/core/error.h"
#include "scorch/data/plot.h"

namespace scorch::cli {

namespace {

struct PlotOptions {
  std::string workdir, out;
};

int plot(const PlotOptions& opt, dist::Communicator& comm) {
  if (comm.rank() != 0) return 0;
  const std::string csv = opt.workdir + "/train_log.csv";
  std::ifstream in(csv);
  SCORCH_CHECK(in, "{}: no training log (train a model in --workdir first)", csv);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> cols;
  {
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cols.push_back(c);
  }
  auto col = [&](const std::string& name) {
    auto it = std::find(cols.begin(), cols.end(), name);
    SCORCH_CHECK(it != cols.end(), "{}: no '{}' column (header: {})", csv, name, line);
    return static_cast<size_t>(it - cols.begin());
  };
  const size_t cs = col("step"), cl = col("loss");
  data::Series raw{"loss", {}, {}, {170, 200, 230}}, avg{"running mean", {}, {}, {31, 80, 160}};
  int64_t row = 1;
  while (std::getline(in, line)) {
    ++row;
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) f.push_back(c);
    SCORCH_CHECK(f.size() == cols.size(), "{}:{}: {} fields, the header has {}", csv, row, f.size(), cols.size());
    raw.x.push_back(std::stod(f[cs]));
    raw.y.push_back(std::stod(f[cl]));
  }
  SCORCH_CHECK(!raw.x.empty(), "{}: no rows yet", csv);
  // Running mean over k rows: 10, or fewer for a short log (k = 1 draws the loss alone).
  const size_t k = std::clamp<size_t>(raw.y.size() / 10, 1, 10);
  avg.name = fmt::format("running mean ({} rows)", k);
  double sum = 0;
  for (size_t i = 0; i < raw.y.size(); ++i) {
    sum += raw.y[i];
    if (i >= k) sum -= raw.y[i - k];
    avg.x.push_back(raw.x[i]);
    avg.y.push_back(sum / static_cast<double>(std::min(i + 1, k)));
  }
  const std::string out = opt.out.empty() ? opt.workdir + "/loss.png" : opt.out;
  data::write_line_plot(out, "training loss of " + opt.workdir, "step", "loss", {raw, avg}, true);
  fmt::print("loss curve ({} rows, steps {}..{}) -> {}\n", raw.x.size(), raw.x.front(), raw.x.back(), out);
  return 0;
}

}  // namespace

Command plot_command() {
  return make_command<PlotOptions>(
      "plot", "draw the loss curve of a run (<workdir>/train_log.csv) as a PNG",
      [](CLI::App& app, PlotOptions& opt) {
        app.add_option("--workdir", opt.workdir, "run directory holding train_log.csv")->required();
        app.add_option("--out", opt.out, "PNG to write (default <workdir>/loss.png)");
      },
      [](const PlotOptions& opt, dist::Communicator& comm) { return plot(opt, comm); });
}

}  // namespace scorch::cli
