// The guides as a user meets them: every `sh`/`bash` code block of README.md and of the
// guides beside the code (*/README.md) is read as a shell script would be, and each scorch
// command line in it is checked against the real binary: the subcommand exists, every option
// it passes is one that command's --help lists, every --set key is one `scorch info --keys`
// lists, and every job file and script it names exists. Commands that read nothing and cost
// nothing (info --keys, info --config JOB, --version, --help) are run as written, from the
// checkout, and must succeed. Every relative link and picture of every guide must resolve.
// GPU and cluster lines are checked like any other (their options must exist too); they are
// not run here.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "cli/cli_common.h"
#include "test_paths.h"

namespace fs = std::filesystem;
using scorch::test::run;

namespace {

// The project's Markdown guides: README.md and every README.md below it, except what runs and
// builds leave (build*/, runs/, third_party/, data/prepared/).
std::vector<fs::path> guides() {
  std::vector<fs::path> out;
  const fs::path root = SCORCH_SOURCE_DIR;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const auto rel = fs::relative(it->path(), root).generic_string();
    if (it->is_directory() && (rel.rfind("build", 0) == 0 || rel == "runs" || rel == "third_party" || rel == ".git" ||
                               rel == "data/prepared")) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && it->path().filename() == "README.md") out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Block {
  fs::path file;
  int line;  // of the opening fence
  std::string text;
};

// The ```sh and ```bash blocks of a Markdown file.
std::vector<Block> shell_blocks(const fs::path& file) {
  std::vector<Block> out;
  std::istringstream in(read(file));
  std::string line;
  int n = 0;
  bool inside = false, shell = false;
  Block cur;
  while (std::getline(in, line)) {
    ++n;
    if (line.rfind("```", 0) == 0) {
      if (!inside) {
        const std::string lang = line.substr(3);
        inside = true;
        shell = lang == "sh" || lang == "bash";
        cur = Block{file, n, ""};
      } else {
        inside = false;
        if (shell) out.push_back(cur);
      }
      continue;
    }
    if (inside && shell) cur.text += line + "\n";
  }
  return out;
}

// A block's commands: continuation lines joined, comments dropped (a # at the start of a word,
// outside quotes), split at ;, &&, || and |.
std::vector<std::pair<int, std::string>> commands_of(const Block& b) {
  std::vector<std::pair<int, std::string>> out;
  std::istringstream in(b.text);
  std::string line, joined;
  int n = b.line, start = 0;
  while (std::getline(in, line)) {
    ++n;
    if (joined.empty()) start = n;
    // Drop a comment.
    char quote = 0;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quote) {
        if (c == quote) quote = 0;
      } else if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == '#' && (i == 0 || line[i - 1] == ' ')) {
        line.resize(i);
        break;
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (!line.empty() && line.back() == '\\') {
      joined += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    joined += line;
    std::string part;
    quote = 0;
    for (size_t i = 0; i <= joined.size(); ++i) {
      const char c = i < joined.size() ? joined[i] : ';';
      if (quote) {
        if (c == quote) quote = 0;
        part += c;
        continue;
      }
      if (c == '\'' || c == '"') quote = c;
      const bool sep = c == ';' || c == '|' || (c == '&' && i + 1 < joined.size() && joined[i + 1] == '&');
      if (sep) {
        if (part.find_first_not_of(' ') != std::string::npos) out.emplace_back(start, part);
        part.clear();
        if (c == '&' || (c == '|' && i + 1 < joined.size() && joined[i + 1] == '|')) ++i;
        continue;
      }
      part += c;
    }
    joined.clear();
  }
  return out;
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// A word without the brackets and quotes that mark optional or quoted parts in the guides.
std::string bare(std::string w) {
  while (!w.empty() && (w.front() == '[' || w.front() == '(' || w.front() == '"' || w.front() == '\''))
    w.erase(w.begin());
  while (!w.empty() && (w.back() == ']' || w.back() == ')' || w.back() == '"' || w.back() == '\'' || w.back() == ','))
    w.pop_back();
  return w;
}

bool is_scorch(const std::string& w) {
  const auto b = bare(w);
  return b == "scorch" || (b.size() > 7 && b.compare(b.size() - 7, 7, "/scorch") == 0);
}

// `scorch <path> --help`, cached: its exit status and text.
const scorch::test::Run& help_of(const std::string& path) {
  static std::map<std::string, scorch::test::Run> cache;
  auto it = cache.find(path);
  if (it == cache.end())
    it = cache.emplace(path, run(std::string(SCORCH_BIN) + (path.empty() ? "" : " " + path) + " --help", false)).first;
  return it->second;
}

// The subcommand names a --help lists under "Subcommands:" (CLI11).
std::set<std::string> subcommands_of(const std::string& help) {
  std::set<std::string> out;
  const auto at = help.find("Subcommands:");
  if (at == std::string::npos) return out;
  std::istringstream in(help.substr(at));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    if (line.rfind("  ", 0) != 0) break;
    const auto w = words(line);
    if (!w.empty()) out.insert(w[0]);
  }
  return out;
}

const std::set<std::string>& config_keys() {
  static const std::set<std::string> keys = [] {
    std::set<std::string> k;
    const auto r = run(std::string(SCORCH_BIN) + " info --keys", false);
    BOOST_REQUIRE_EQUAL(r.code, 0);
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
      const auto w = words(line);
      if (!w.empty() && w[0].find('.') != std::string::npos) k.insert(w[0]);
      if (!w.empty() && w[0] == "seed") k.insert("seed");
    }
    BOOST_REQUIRE_GT(k.size(), 50u);
    return k;
  }();
  return keys;
}

struct Checked {
  int scorch_lines = 0, options = 0, keys = 0, files = 0, ran = 0;
  std::vector<std::string> problems;  // "README.md:12: `scorch sample` has no option --x ..."
};

// Checks one command line that runs scorch; returns the subcommand path it named.
std::string check_scorch_line(const std::vector<std::string>& w, size_t at, const std::string& where, Checked& c) {
  std::string path;
  size_t i = at + 1;
  // Subcommand words: as long as the current help lists the next word as a subcommand.
  while (i < w.size()) {
    const auto& h = help_of(path);
    if (h.code != 0) {
      c.problems.push_back(where + ": `scorch " + path + " --help` failed");
      return path;
    }
    const auto subs = subcommands_of(h.out);
    const auto word = bare(w[i]);
    if (subs.count(word)) {
      path += (path.empty() ? "" : " ") + word;
      ++i;
      continue;
    }
    // A word that is neither an option nor a subcommand where subcommands are required.
    if (!subs.empty() && word.rfind("-", 0) != 0 && path.empty())
      c.problems.push_back(where + ": `scorch " + word + "` is not a subcommand of scorch");
    break;
  }
  const std::string help = help_of(path).out;
  ++c.scorch_lines;
  for (; i < w.size(); ++i) {
    std::string word = bare(w[i]);
    if (word.rfind("--", 0) != 0) {
      // Job files named in a command must exist in the checkout.
      if (std::regex_match(word, std::regex(R"(jobs/[A-Za-z0-9_]+\.toml)"))) {
        if (!fs::exists(fs::path(SCORCH_SOURCE_DIR) / word)) c.problems.push_back(where + ": " + word + " does not exist");
        ++c.files;
      }
      continue;
    }
    const auto eq = word.find('=');
    const std::string opt = word.substr(0, eq);
    if (opt == "--") break;
    if (opt != "--help" && opt != "--version") {
      const std::regex listed("(^|[ ,])" + opt + "([ ,=\n]|$)");
      if (!std::regex_search(help, listed))
        c.problems.push_back(where + ": `scorch " + path + "` has no option " + opt + " (not in its --help)");
      ++c.options;
    }
    if (opt == "--set") {
      // --set key=value [key=value ...] (CLI11 takes several values after one --set).
      std::vector<std::string> values;
      if (eq != std::string::npos) values.push_back(word.substr(eq + 1));
      for (size_t j = i + 1; j < w.size() && bare(w[j]).rfind("-", 0) != 0; ++j) {
        const auto v = bare(w[j]);
        if (v.find('=') == std::string::npos) break;
        values.push_back(v);
        i = j;
      }
      for (const auto& v : values) {
        const std::string key = v.substr(0, v.find('='));
        if (key == "..." || key.find('.') == std::string::npos) continue;  // placeholder
        if (!config_keys().count(key)) c.problems.push_back(where + ": --set " + key + " is not a configuration key");
        ++c.keys;
      }
    }
  }
  return path;
}

// True for a command line that reads nothing and writes nothing: run it as written.
bool cheap(const std::vector<std::string>& w, size_t at, const std::string& path) {
  if (at != 0 || w.empty()) return false;  // under mpirun or a wrapper: not run here
  std::vector<std::string> rest(w.begin() + static_cast<long>(at) + 1, w.end());
  for (auto& r : rest) r = bare(r);
  auto has = [&](const std::string& x) { return std::find(rest.begin(), rest.end(), x) != rest.end(); };
  if (path.empty()) return rest.size() == 1 && (has("--version") || has("--help"));
  if (has("--help")) return true;
  if (path == "info" && rest.size() == 2 && has("--keys")) return true;
  if (path == "info" && rest.size() == 3 && has("--config") &&
      std::regex_match(rest.back(), std::regex(R"(jobs/[A-Za-z0-9_]+\.toml)")))
    return true;
  return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(docs)

BOOST_AUTO_TEST_CASE(every_guide_command_matches_the_binary) {
  const auto files = guides();
  BOOST_REQUIRE_GE(files.size(), 5u);  // README.md and the guides beside the code
  Checked c;
  for (const auto& file : files) {
    const auto rel = fs::relative(file, SCORCH_SOURCE_DIR).generic_string();
    for (const auto& block : shell_blocks(file)) {
      for (const auto& [line, cmd] : commands_of(block)) {
        const auto w = words(cmd);
        const std::string where = rel + ":" + std::to_string(line);
        for (size_t k = 0; k < w.size(); ++k) {
          const auto b = bare(w[k]);
          // Scripts of the checkout that a guide runs must exist.
          if (std::regex_match(b, std::regex(R"((jobs|slurm|tests(/[a-z]+)?)/[A-Za-z0-9_]+\.(sh|sbatch))"))) {
            if (!fs::exists(fs::path(SCORCH_SOURCE_DIR) / b)) c.problems.push_back(where + ": " + b + " does not exist");
            ++c.files;
          }
          if (!is_scorch(w[k])) continue;
          const std::string path = check_scorch_line(w, k, where, c);
          if (cheap(w, k, path)) {
            std::string as_written = std::string(SCORCH_BIN);
            for (size_t j = k + 1; j < w.size(); ++j) as_written += " " + w[j];
            const auto r = run("cd " + std::string(SCORCH_SOURCE_DIR) + " && " + as_written, false);
            if (r.code != 0) c.problems.push_back(where + ": `" + cmd + "` exited " + std::to_string(r.code));
            ++c.ran;
          }
          break;
        }
      }
    }
  }
  BOOST_TEST_MESSAGE("docs: " << files.size() << " guides, " << c.scorch_lines << " scorch command lines, " << c.options
                              << " options, " << c.keys << " --set keys, " << c.files << " files checked, " << c.ran
                              << " commands run");
  for (const auto& p : c.problems) BOOST_ERROR(p);
  // The guides document the commands a user runs: far more than a handful.
  BOOST_TEST(c.scorch_lines >= 40);
  BOOST_TEST(c.options >= 80);
  BOOST_TEST(c.keys >= 10);
  BOOST_TEST(c.ran >= 3);
}

BOOST_AUTO_TEST_CASE(every_link_and_picture_resolves) {
  const std::regex link(R"(\]\(([^)#\s]+)(#[^)]*)?\))");
  int links = 0;
  for (const auto& file : guides()) {
    const auto text = read(file);
    for (std::sregex_iterator it(text.begin(), text.end(), link), end; it != end; ++it) {
      const std::string target = (*it)[1];
      if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) continue;
      const auto resolved = file.parent_path() / target;
      BOOST_CHECK_MESSAGE(fs::exists(resolved), fs::relative(file, SCORCH_SOURCE_DIR).generic_string()
                                                    << ": link to " << target << " does not resolve");
      ++links;
    }
  }
  BOOST_TEST(links >= 10);
}

// The checker itself: a right line passes; a wrong option, key, subcommand and job file are
// each found.
BOOST_AUTO_TEST_CASE(the_checker_finds_wrong_options_keys_subcommands_and_files) {
  auto check = [](const std::string& line) {
    Checked c;
    const auto w = words(line);
    const auto at = static_cast<size_t>(std::find_if(w.begin(), w.end(), is_scorch) - w.begin());
    const auto path = check_scorch_line(w, at, "self-test", c);
    return std::make_pair(path, c);
  };
  auto [path, ok] = check("mpirun -np 2 build/scorch eval fid --workdir runs/x --set eval.num_samples=4 "
                          "sampling.steps=20 --config jobs/fashion_mnist.toml [--ckpt FILE]");
  BOOST_TEST(path == "eval fid");
  BOOST_TEST(ok.problems.empty());
  BOOST_TEST(ok.options == 4);
  BOOST_TEST(ok.keys == 2);
  BOOST_TEST(ok.files == 1);
  BOOST_TEST(check("scorch sample --worktree runs/x").second.problems.size() == 1u);
  BOOST_TEST(check("scorch sample --set eval.num_sample=4").second.problems.size() == 1u);
  BOOST_TEST(check("scorch smaple --workdir runs/x").second.problems.size() == 1u);
  BOOST_TEST(check("scorch info --config jobs/no_such_job.toml").second.problems.size() == 1u);
  BOOST_TEST(check("scorch bench allreduce --max-bytes 1M").second.problems.empty());
  auto cmds = commands_of(Block{"x.md", 1, "a --b \\\n  --c # --d\ne && f | g\n"});
  BOOST_REQUIRE_EQUAL(cmds.size(), 4u);
  BOOST_TEST(cmds[0].second.find("--c") != std::string::npos);
  BOOST_TEST(cmds[0].second.find("--d") == std::string::npos);
}

// The folders' declared order (src/README.md, DEVELOPERS' guide): core <- sde, models, losses
// <- sampling, likelihood <- farm, eval <- train <- cli; optim and dist know only tensors, io
// and data know no models, interop sits above models. Each may include only the folders
// listed.
const std::map<std::string, std::set<std::string>>& allowed_includes() {
  static const std::map<std::string, std::set<std::string>> m = [] {
    using S = std::set<std::string>;
    const S base{"core", "sde", "models", "losses"};
    S sampling = base;
    S likelihood = base;
    likelihood.insert("sampling");
    S farm = likelihood;
    farm.insert({"likelihood", "dist", "io", "data"});
    S eval = farm;
    eval.insert("farm");
    S train = eval;
    train.insert({"eval", "optim", "interop"});
    S cli = train;
    cli.insert("train");
    return std::map<std::string, S>{
        {"core", {}},
        {"sde", {"core"}},
        {"models", {"core", "sde"}},
        {"losses", {"core", "sde", "models"}},
        {"optim", {"core"}},
        {"dist", {"core"}},
        {"io", {"core"}},
        {"data", {"core", "dist", "io"}},
        {"interop", {"core", "io", "sde", "models"}},
        {"sampling", sampling},
        {"likelihood", likelihood},
        {"farm", farm},
        {"eval", eval},
        {"train", train},
        {"cli", cli},
    };
  }();
  return m;
}

// "scorch/<folder>/" includes of `text` that `folder` may not use.
std::vector<std::string> wrong_way_includes(const std::string& folder, const std::string& text) {
  std::vector<std::string> out;
  const std::regex inc(R"re(#include\s+"scorch/([a-z_]+)/([^"]+)")re");
  const auto& ok = allowed_includes().at(folder);
  for (std::sregex_iterator it(text.begin(), text.end(), inc), end; it != end; ++it) {
    const std::string to = (*it)[1];
    if (to != folder && !ok.count(to)) out.push_back("scorch/" + to + "/" + std::string((*it)[2]));
  }
  return out;
}

BOOST_AUTO_TEST_CASE(includes_point_down_the_declared_order) {
  const fs::path root = SCORCH_SOURCE_DIR;
  int files = 0;
  for (const auto& [folder, ok] : allowed_includes()) {
    for (const auto& dir : {root / "src" / folder, root / "include" / "scorch" / folder}) {
      BOOST_REQUIRE_MESSAGE(fs::is_directory(dir), dir << " is missing");
      for (const auto& e : fs::directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        for (const auto& bad : wrong_way_includes(folder, read(e.path())))
          BOOST_ERROR(fs::relative(e.path(), root).generic_string() << " (" << folder << ") includes " << bad
                                                                    << ", which the declared order puts above it");
        ++files;
      }
    }
  }
  // Every folder of src/ is in the table (a new folder must declare its place).
  for (const auto& e : fs::directory_iterator(root / "src"))
    if (e.is_directory()) BOOST_CHECK_MESSAGE(allowed_includes().count(e.path().filename().string()),
                                              "src/" << e.path().filename().string() << " is not in the declared order");
  BOOST_TEST(files > 100);
  // The check itself finds an arrow pointing up.
  BOOST_TEST(wrong_way_includes("io", "#include \"scorch/models/model.h\"\n#include \"scorch/core/error.h\"").size() ==
             1u);
  BOOST_TEST(wrong_way_includes("train", "#include \"scorch/sampling/sampler.h\"").empty());
  BOOST_TEST(wrong_way_includes("models", "#include \"scorch/losses/loss.h\"").size() == 1u);
  BOOST_TEST(wrong_way_includes("farm", "#include \"scorch/train/trainer.h\"").size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
