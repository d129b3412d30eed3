// Moving aside what the steps after S made (see train/discard.h).
#include "scorch/train/discard.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "scorch/core/error.h"
#include "scorch/io/files.h"

namespace fs = std::filesystem;

namespace scorch::train {

namespace {

// The step a name of `sub` (relative to the workdir) belongs to, or -1 if it names no step.
int64_t step_of(const std::string& sub, const std::string& name) {
  static const std::vector<std::pair<std::string, std::regex>> patterns = {
      {"checkpoints", std::regex(R"(ckpt_(\d+)\.h5)")},
      {"ema", std::regex(R"(snapshot_(\d+)\.h5)")},
      {"ema", std::regex(R"(phema_(\d+)_sigma.*\.h5)")},
      {"samples", std::regex(R"(s(\d{9})-.+)")},
      {"samples", std::regex(R"(snapshot_(\d+)\.png)")},
      {"samples", std::regex(R"((?:inpaint|colorize)_(\d+)-.+)")},
      {"eval", std::regex(R"(bpd-s(\d{9})-.+)")},
      {"eval", std::regex(R"(bpd_(\d+)\.h5)")},
  };
  for (const auto& [dir, re] : patterns) {
    std::smatch m;
    if (dir == sub && std::regex_match(name, m, re)) return std::stoll(m[1]);
  }
  return -1;
}

// Moves the rows of `file` whose column `col` (0-based) is a step > `step` to `out` (same
// header). Returns how many.
int64_t move_rows(const std::string& file, size_t col, int64_t step, const std::string& out) {
  std::ifstream in(file);
  if (!in) return 0;
  std::string header, line, keep, moved;
  std::getline(in, header);
  int64_t n = 0;
  while (std::getline(in, line)) {
    size_t pos = 0;
    for (size_t i = 0; i < col && pos != std::string::npos; ++i) {
      pos = line.find(',', pos);
      if (pos != std::string::npos) ++pos;
    }
    int64_t s = -1;
    if (pos != std::string::npos) {
      try {
        s = std::stoll(line.substr(pos, line.find(',', pos) - pos));
      } catch (const std::exception&) {
        s = -1;  // not a step: kept
      }
    }
    if (s > step) {
      moved += line + "\n";
      ++n;
    } else {
      keep += line + "\n";
    }
  }
  if (n == 0) return 0;
  io::write_text_atomically(out, header + "\n" + moved);
  io::write_text_atomically(file, header + "\n" + keep);
  return n;
}

}  // namespace

std::vector<std::string> discard_after(const std::string& workdir, int64_t step, const std::string& dir) {
  std::vector<std::string> moved;
  fs::create_directories(dir);
  for (const char* sub : {"checkpoints", "ema", "samples", "eval"}) {
    const fs::path from = fs::path(workdir) / sub;
    std::error_code ec;
    if (!fs::is_directory(from, ec)) continue;
    std::vector<fs::path> here;
    for (const auto& e : fs::directory_iterator(from)) here.push_back(e.path());
    std::sort(here.begin(), here.end());
    for (const auto& p : here) {
      const std::string name = p.filename().string();
      int64_t s = step_of(sub, name);
      // A bits/dim record (eval/bpd-s<s>-<hash>.json) and the sweep's tables go with them.
      if (std::string(sub) == "eval" && name.rfind("sweep-", 0) == 0) s = step + 1;
      if (s <= step) continue;
      // Checkpoints at the top of `dir` (it lies in checkpoints/), the rest in subfolders.
      const fs::path to = std::string(sub) == "checkpoints" ? fs::path(dir) / name : fs::path(dir) / sub / name;
      fs::create_directories(to.parent_path());
      fs::rename(p, to);
      moved.push_back(to.string());
    }
  }
  if (const auto n = move_rows(workdir + "/train_log.csv", 0, step, dir + "/train_log.csv"); n > 0) {
    moved.push_back(fmt::format("{}/train_log.csv ({} rows)", dir, n));
  }
  if (const auto n = move_rows(workdir + "/eval_log.csv", 1, step, dir + "/eval_log.csv"); n > 0) {
    moved.push_back(fmt::format("{}/eval_log.csv ({} rows)", dir, n));
  }
  return moved;
}

}  // namespace scorch::train
