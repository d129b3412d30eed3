// The subcommands of `scorch`, one file each (src/cli/<command>.cpp). Every command
// declares its own options and runs on every rank of the communicator; `main` only walks
// the table below, parses and dispatches. Commands meet each other only through files in
// the workdir (config, checkpoints, samples).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scorch/dist/communicator.h"

namespace CLI {
class App;
}

namespace scorch::cli {

struct Command {
  std::string name;
  std::string help;
  // Adds the command's options (and nested subcommands) to `app`; they bind to state that
  // `run` reads.
  std::function<void(CLI::App& app)> declare;
  // Runs the command after parsing; returns the process exit status.
  std::function<int(dist::Communicator& comm)> run;
};

// A Command whose options live in one `Options` object shared by `declare` and `run`.
template <class Options>
Command make_command(std::string name, std::string help, std::function<void(CLI::App&, Options&)> declare,
                     std::function<int(const Options&, dist::Communicator&)> run) {
  auto opt = std::make_shared<Options>();
  return Command{std::move(name), std::move(help),
                 [opt, declare = std::move(declare)](CLI::App& app) { declare(app, *opt); },
                 [opt, run = std::move(run)](dist::Communicator& comm) { return run(*opt, comm); }};
}

Command prepare_command();
Command train_command();
Command train_classifier_command();
Command sample_command();
Command eval_command();
Command encode_command();
Command decode_command();
Command info_command();
Command import_command();
Command export_command();
Command bench_command();
Command preview_command();
Command plot_command();
Command inpaint_command();
Command colorize_command();
Command ema_command();

}  // namespace scorch::cli
