// `yubin run`: the quick start. Prepares a self-contained state directory
// (generated config, self-signed certificate, LMDB store, demo domain and
// user with a printed password) and supervises every daemon that is built.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.h"
#include "cli/directory_commands.h"

namespace yubin::cli {

void add_run_command(CLI::App& app, Context& context, Action& action);
void add_config_commands(CLI::App& app, Context& context, Action& action);

}  // namespace yubin::cli
